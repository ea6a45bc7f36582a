"""push and pull: copying runs' manifests, or a tag with its manifests, between two stores."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from dstack_prefect.errors import StorageError

from . import _fetch
from ._errors import translate_errors
from ._fetch import TransferResult
from ._model import Manifest, Tag
from ._progress import Progress
from ._store import ArtifactStore


def transfer(
    src: ArtifactStore,
    dst: ArtifactStore,
    runs: Sequence[str] = (),
    tag: str | None = None,
    progress: Progress | None = None,
    *,
    force: bool = False,
    repair_hint: str | None = None,
) -> TransferResult:
    """Copy runs' manifests, or a tag with its manifests, from ``src`` to ``dst`` (push / pull).

    A manifest ``dst`` already holds unchanged is skipped with its blobs (a committed manifest
    implies its blobs); of the rest, only blobs ``dst`` lacks are copied, found by listing, not
    per file, each checked against its sha256 before it is sent (a corrupt one is removed from
    ``src`` and nothing is sent). Blobs first, then manifests, then the tag. ``manifests`` in
    the result counts the manifests written.

    A manifest or tag ``dst`` holds with other content (run names are drawn per machine and can
    collide) is refused with a StorageError before anything is copied, unless ``force``, which
    replaces them and also copies the blobs ``dst`` lacks for unchanged manifests (a blob
    removed there as damaged); a replaced tag of `-a` folders takes its internal run with it,
    as :meth:`ArtifactStore.add_tag` does. The result counts the blobs of unchanged manifests a plain
    transfer did not look for as ``unchecked``, not as there.

    A file ``src`` lacks or holds damaged is an error whose hint is ``repair_hint`` (how to put
    a good copy into ``src``: the CLI's pull says to push it again from a machine that has
    it), by default how to store it again or copy it (`dstack pull REF --force`, REF as
    ``runs`` or ``:tag`` name it).
    """
    if not runs and tag is None:
        msg = "transfer needs runs or a tag"
        raise ValueError(msg)
    manifests = [m for run in runs for m in src.resolve(run)]
    t = src.get_tag(tag) if tag is not None else None
    if t is not None:
        manifests += [m for m in t.manifests if (m.run, m.step) not in {(x.run, x.step) for x in manifests}]
    # dst._b.writing(): a prune of dst (a local store: a pull) waits until the manifests name the blobs
    with translate_errors(f"copying artifacts from {src.url} to {dst.url}"), dst._b.writing():
        # a manifest already in dst, identical, is committed there: its blobs are all present
        keys = [dst._manifest_key(m.run, m.step) for m in manifests]
        there = dst._b.read_many(keys)
        changed = [
            m for m, k in zip(manifests, keys, strict=True) if k not in there or not _same(there[k], m)
        ]
        # dst's other steps of these runs, by key: one that no longer parses is replaced too
        stale = [k for run in runs for k in dst._b.find_json("manifests", run) if k not in set(keys)]
        if not force:
            clashing = [m.label for m in changed if dst._manifest_key(m.run, m.step) in there]
            clashing += [dst._b.rel(k).removeprefix("manifests/").removesuffix(".json") for k in stale]
            _refuse_collisions(src, dst, clashing)
            _refuse_tag_collision(src, dst, t)
        # force also checks the blobs of unchanged manifests: it repairs a store that lost a damaged blob
        wanted = {f.sha256: (f, m) for m in (manifests if force else changed) for f in m.files}
        ref = f":{tag}" if tag is not None else runs[0] if len(runs) == 1 else None
        blobs, nbytes, skipped = _fetch.copy_blobs(
            src._b, dst._b, wanted, progress, ref=ref, hint=repair_hint
        )
        unchecked = len({f.sha256 for m in manifests for f in m.files} - set(wanted))
        dst._b.rm(stale)  # --force: the run is src's alone
        for m in changed:
            dst._write_manifest(m)
        if t is not None:
            old = dst._tag_or_none(dst._tag_key(t.tag))
            dst._b.write_atomic(dst._tag_key(t.tag), t.model_dump_json().encode())
            dst._drop_synthetic(old, keep=t.run)  # a replaced tag of -a folders takes its run along
    return TransferResult(
        manifests=len(changed), blobs=blobs, nbytes=nbytes, skipped=skipped, unchecked=unchecked
    )


def _same(data: bytes, m: Manifest) -> bool:
    """Whether ``data`` is manifest ``m``; a damaged one is not (so push or pull --force repairs it)."""
    try:
        return Manifest.model_validate_json(data) == m
    except ValidationError:
        return False


def _refuse_collisions(src: ArtifactStore, dst: ArtifactStore, clashing: Sequence[str]) -> None:
    """StorageError when ``dst`` holds a run of the same name with other steps or artifacts
    (``clashing``: their ``run/step`` labels): copying would mix two runs silently."""
    if clashing:
        shown = ", ".join(clashing[:3])
        more = f" and {len(clashing) - 3} more" if len(clashing) > 3 else ""
        msg = (
            f"{dst.url} already holds another run of the same name: {shown}{more} differ from {src.url} "
            "(run names are drawn per machine and can collide)"
        )
        raise StorageError(msg, hint=f"pass --force to replace the run with the one from {src.url}")


def _refuse_tag_collision(src: ArtifactStore, dst: ArtifactStore, t: Tag | None) -> None:
    """StorageError when ``dst`` holds another tag of the same name: copying would move it silently."""
    if t is None or not dst._b.exists(dst._tag_key(t.tag)):
        return
    other = dst.get_tag(t.tag)
    if other == t:
        return
    if other.run != t.run:
        msg = f"tag {t.tag!r} in {dst.url} names run {other.run}; the one in {src.url} names run {t.run}"
    else:
        msg = (
            f"tag {t.tag!r} in {dst.url} (made {other.created_at}) is not the one in {src.url} "
            f"(made {t.created_at})"
        )
    raise StorageError(msg, hint=f"pass --force to replace it with the one from {src.url}")
