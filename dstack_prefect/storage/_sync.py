"""Syncing a running step's `mount: true` artifact folders to the store, again and again.

Old dstack mounted such a folder from the bucket, so what a step wrote there was stored as it
was written: checkpoints that outlive a crash or a spot interruption, files to look at while a
long run goes on. Here the engine repeats a sync while the step runs (``engine/_artifacts``):

* it walks the folders and hashes only the files whose (size, mtime, inode) changed since the
  previous sync, or that were written so close to it that a later write could keep the stamp
  (git's "racy" entries);
* it sends only the blobs the store lacks, each from a copy hashed as it is made, so a file
  written while the sync reads it never gets an entry whose sha256 differs from its blob;
* it writes the step's synced manifest, ``synced/<run>/<step>.json``, atomically and last.

A synced manifest is not a step's manifest: nothing that reads ``manifests/`` (reuse, the run's
results, tags, push and pull) sees it, and its ``extra.status`` is ``synced``. ``ls`` and
``cp`` read it for a step that stored no manifest (running, aborted, failed, crashed); prune
keeps the blobs it names; ``delete_run`` removes it, and so does the engine once the step's own
manifest is stored.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._backend import BLOB_DIR
from ._errors import translate_errors
from ._files import LocalFile, copy_hashed, run_parallel, sha256_file, walk_artifacts
from ._model import SYNCED, FileEntry, Manifest
from ._progress import NullProgress, Progress

if TYPE_CHECKING:
    from ._store import ArtifactStore

RACY_S = 2.0
"""A file modified less than this before a sync began is hashed again by the next sync: a write
in the same mtime tick (coarse on some filesystems) would leave its stamp as it was."""


@dataclass(frozen=True)
class _Seen:
    """What the last sync stored of one file, and whether its stamp can be trusted next time."""

    stamp: tuple[int, int, int]
    sha256: str
    size: int
    trusted: bool


class StepSync:
    """Repeated syncs of one step's artifact paths; each :meth:`sync` commits a synced manifest.

    ``artifact_paths`` are read as :meth:`ArtifactStore.put_step` reads them (relative to
    ``workdir``; absolute ones under ``absolute_root`` when given). One caller syncs at a time
    (not thread-safe). ``staging`` is the local folder where a non-local store's blobs are
    copied before they are sent (a temporary folder when None); a local store's are copied
    into its blob folder.
    """

    def __init__(
        self,
        store: ArtifactStore,
        run: str,
        step: str,
        workflow: str | None,
        workdir: Path,
        artifact_paths: Sequence[str],
        *,
        absolute_root: Path | None = None,
        staging: Path | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.key = store._synced_key(run, step)  # names checked now, not at the first sync
        self.store = store
        self.run, self.step, self.workflow = run, step, workflow
        self.workdir = Path(workdir)
        self.paths = list(artifact_paths)
        self.absolute_root = absolute_root
        self.staging = staging
        self.extra = dict(extra or {})
        self.count = 0
        self._seen: dict[str, _Seen] = {}

    def sync(self, *, final: bool = False, progress: Progress | None = None) -> Manifest:
        """Store what the paths hold now and commit the synced manifest (``final``: this is the
        sync after the step ended without storing its own, aborted or failed)."""
        with translate_errors(f"syncing the artifacts of {self.run}/{self.step}"):
            began = time.time()
            artifacts, local, skipped = walk_artifacts(self.workdir, self.paths, self.absolute_root)
            entries: dict[str, FileEntry] = {}
            seen: dict[str, _Seen] = {}
            fresh: list[LocalFile] = []
            for f in local:
                old = self._seen.get(f.path)
                if old is not None and old.trusted and old.stamp == f.stamp:
                    entries[f.path] = FileEntry(path=f.path, size=old.size, sha256=old.sha256, mode=f.mode)
                    seen[f.path] = old
                else:
                    fresh.append(f)
            with self.store._b.writing():  # a prune waits until the manifest names what is sent
                for f, digest, size, trusted in self._store_fresh(fresh, began, progress):
                    entries[f.path] = FileEntry(path=f.path, size=size, sha256=digest, mode=f.mode)
                    seen[f.path] = _Seen(f.stamp, digest, size, trusted)
                m = Manifest(
                    run=self.run,
                    step=self.step,
                    workflow=self.workflow,
                    artifacts=artifacts,
                    files=[entries[p] for p in sorted(entries)],
                    skipped=skipped,
                    extra={**self.extra, "status": SYNCED, "sync": self.count + 1, "final": final},
                )
                self.store._b.write_atomic(self.key, m.model_dump_json().encode())
            self._seen = seen
            self.count += 1
            return m

    def _store_fresh(
        self, fresh: list[LocalFile], began: float, progress: Progress | None
    ) -> list[tuple[LocalFile, str, int, bool]]:
        """Hash the changed files; send the blobs the store lacks, each from a hashed copy.

        Returns (file, sha256, size, trusted) for each file stored; one that vanished or cannot
        be read since the walk is left out of this sync (the next one tries it again).
        """
        prog = progress or NullProgress()
        prog.begin("hash", len(fresh), sum(f.size for f in fresh))

        def digest(f: LocalFile) -> tuple[str, int] | None:
            try:
                found = sha256_file(f.local)
            except OSError:
                return None
            prog.advance(1, found[1])
            return found

        hashed = [(f, d) for f, d in zip(fresh, run_parallel(digest, fresh), strict=True) if d is not None]
        have = self.store._b.existing_blobs({d for _, (d, _) in hashed})
        stored: list[tuple[LocalFile, str, int, bool]] = []
        lacking: list[tuple[LocalFile, str]] = []
        for f, (d, size) in hashed:
            if d in have:
                stored.append((f, d, size, f.mtime_ns / 1e9 < began - RACY_S))
            else:
                lacking.append((f, d))
        return stored + self._send(lacking, began, prog)

    def _send(
        self, lacking: list[tuple[LocalFile, str]], began: float, prog: Progress
    ) -> list[tuple[LocalFile, str, int, bool]]:
        """Copy each file while hashing the copy, then store the copy under its own digest:
        renamed into a local store's blob folder, uploaded to any other store."""
        if not lacking:
            return []
        b = self.store._b
        with self._staging_folder() as folder:
            staged: list[Path] = []

            def stage(item: tuple[LocalFile, str]) -> tuple[LocalFile, Path, str, int, bool] | None:
                f, first = item
                copy = folder / f".tmp-{uuid.uuid4().hex[:12]}-sync"
                staged.append(copy)
                try:
                    d, size = copy_hashed(f.local, copy)
                except OSError:
                    return None
                # a file that changed while it was read is hashed again by the next sync
                return f, copy, d, size, d == first and f.mtime_ns / 1e9 < began - RACY_S

            try:
                copies = [c for c in run_parallel(stage, lacking) if c is not None]
                unique = {d: (copy, size) for _f, copy, d, size, _t in copies}
                if b.is_local:
                    prog.begin("upload", len(unique), sum(size for _c, size in unique.values()))
                    b.adopt({d: copy for d, (copy, _s) in unique.items()})
                    prog.advance(len(unique), sum(size for _c, size in unique.values()))
                else:
                    b.upload_blobs([(copy, d) for d, (copy, _s) in unique.items()], prog)
            finally:
                for copy in staged:
                    with contextlib.suppress(OSError):
                        copy.unlink(missing_ok=True)
        return [(f, d, size, trusted) for f, _copy, d, size, trusted in copies]

    @contextlib.contextmanager
    def _staging_folder(self) -> Iterator[Path]:
        """Where copies wait to be stored: a local store's blob folder (a ``.tmp-`` file a killed
        sync leaves there is removed by prune), else ``staging`` or a temporary folder."""
        b = self.store._b
        if b.is_local:
            folder = Path(b.key(BLOB_DIR))
            folder.mkdir(parents=True, exist_ok=True)
            yield folder
        elif self.staging is not None:
            os.makedirs(self.staging, exist_ok=True)
            yield self.staging
        else:
            with tempfile.TemporaryDirectory(prefix="dstack-sync-") as tmp:
                yield Path(tmp)
