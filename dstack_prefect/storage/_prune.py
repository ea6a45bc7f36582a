"""Pruning: the blobs that no manifest, tag or cache manifest names, and what killed uploads left."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import translate_errors

if TYPE_CHECKING:
    from ._store import ArtifactStore

PRUNE_GRACE_S = 600.0


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or would), and the unreferenced blobs younger than the grace period.

    ``young`` counts those young blobs whether they were kept (``young_kept``, the default) or
    removed with the rest, so a dry run and a real run can say the same thing about them.
    ``partial`` counts what killed uploads left that was removed (or would be): temporary
    ``.tmp-`` files, and incomplete multipart uploads on S3.
    """

    blobs: int
    nbytes: int
    young: int
    young_nbytes: int
    young_kept: bool
    grace_s: float
    partial: int = 0


def prune(
    store: ArtifactStore,
    dry_run: bool,
    grace_s: float,
    *,
    keep_young: bool,
    on_wait: Callable[[], None] | None = None,
) -> PruneResult:
    """``ArtifactStore.prune``: delete the blobs of ``store`` nothing refers to."""
    with translate_errors("waiting for uploads to the store"), store._b.pruning(on_wait):
        return _prune_held(store, dry_run, grace_s, keep_young=keep_young)


def _prune_held(store: ArtifactStore, dry_run: bool, grace_s: float, *, keep_young: bool) -> PruneResult:
    refs = store.referenced_blobs()
    with translate_errors("pruning blobs"):
        now = time.time()
        details = store._b.blob_details()
        unused = [d for d in details if d not in refs]
        young = {d for d in unused if now - details[d][1] < grace_s}
        doomed = [d for d in unused if not keep_young or d not in young]
        min_age = grace_s if keep_young else 0
        tmp = store._b.stale_tmp_files(min_age)
        uploads = store._b.stale_uploads(min_age)
        if not dry_run:
            store._b.rm([store._b.blob_key(d) for d in doomed] + tmp)
            store._b.abort_uploads(uploads)
        return PruneResult(
            blobs=len(doomed),
            nbytes=sum(details[d][0] for d in doomed),
            young=len(young),
            young_nbytes=sum(details[d][0] for d in young),
            young_kept=keep_young,
            grace_s=grace_s,
            partial=len(tmp) + len(uploads),
        )
