"""StepSync, the repeated sync of a running step's `mount: true` folders, on every backend.

Each backend is a subclass of ``SyncContract`` overriding the ``store`` fixture, as in
test_contract.py. A file's age is set with os.utime, never waited for.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.errors import ArtifactNotFoundError
from dstack_prefect.storage import ArtifactStore, CountingProgress, StepSync

from .conftest import gen, s3_url

HOUR_AGO = time.time() - 3600


def _aged(root: Path) -> None:
    """Make every file under ``root`` an hour old: its stamp is then trusted by the next sync."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (HOUR_AGO, HOUR_AGO))


def _step(tmp_path: Path, tree: dict[str, Any] | None = None) -> Path:
    return gen(
        tmp_path / f"work-{uuid.uuid4().hex[:6]}", tree or {"ck": {"a.txt": "one\n", "b.bin": b"\x01" * 64}}
    )


def _sync(store: ArtifactStore, work: Path, run: str = "run-1", staging: Path | None = None) -> StepSync:
    return StepSync(store, run, "train", "train", work, ["ck"], staging=staging)


class SyncContract:
    """What a sync of a running step's mount folders does, on every store."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        raise NotImplementedError

    def test_a_sync_is_readable_as_synced_and_never_as_the_steps_manifest(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """ls/cp (resolve with synced=True) read the synced files; every reader of step
        manifests (get_manifest, list_manifests, find_manifests, resolve) does not see them."""
        work = _step(tmp_path)

        m = _sync(store, work).sync()

        assert m.synced and "synced" == m.extra["status"]
        assert [m] == store.resolve("run-1", synced=True)
        assert [] == store.list_manifests("run-1") == store.find_manifests("train")
        with pytest.raises(ArtifactNotFoundError):
            store.get_manifest("run-1", "train")
        with pytest.raises(ArtifactNotFoundError):
            store.resolve("run-1")
        store.copy_out(store.resolve("run-1", synced=True), "ck", tmp_path / "out")
        assert "one\n" == (tmp_path / "out" / "a.txt").read_text()

    def test_the_steps_own_manifest_wins_over_a_synced_one(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """Once the step stored its manifest, resolve(synced=True) reads that one, and
        drop_synced removes the synced one."""
        work = _step(tmp_path)
        _sync(store, work).sync()
        (work / "ck" / "a.txt").write_text("final\n")
        done = store.put_step("run-1", "train", "train", work, ["ck"], {"status": "done"})

        found = store.resolve("run-1", synced=True)
        store.drop_synced("run-1", "train")

        assert [done] == found
        assert [] == store.list_synced("run-1")

    def test_a_second_sync_hashes_only_what_changed(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Files whose size, mtime and inode are as the last sync saw them are not read again;
        a changed one is, and the synced manifest names its new content."""
        work = _step(tmp_path)
        _aged(work)
        sync = _sync(store, work)
        sync.sync()
        unchanged, changed = CountingProgress(), CountingProgress()

        sync.sync(progress=unchanged)
        (work / "ck" / "a.txt").write_text("two!\n")
        m = sync.sync(progress=changed)

        assert [0, 0] == unchanged.counts["hash"]
        assert [1, 5] == changed.counts["hash"]
        entry = next(f for f in m.files if f.path == "ck/a.txt")
        assert hashlib.sha256(b"two!\n").hexdigest() == entry.sha256

    def test_a_file_written_just_before_a_sync_is_hashed_again_by_the_next(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A file modified within 2 s of a sync could be written again in the same mtime tick,
        its stamp unchanged: the next sync reads it again (git's racy entries)."""
        work = _step(tmp_path)
        sync = _sync(store, work)
        sync.sync()
        again = CountingProgress()

        sync.sync(progress=again)

        assert 2 == again.counts["hash"][0]

    def test_a_file_written_while_it_is_synced_gets_the_digest_of_what_was_stored(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """The file changes after the sync hashed it and before it copied it: the entry's
        sha256 is that of the blob stored (the new content), never of content not stored."""
        work = _step(tmp_path, {"ck": {"a.txt": "old\n"}})
        target = work / "ck" / "a.txt"

        class Writer(CountingProgress):
            def advance(self, files: int, nbytes: int) -> None:
                super().advance(files, nbytes)
                if self.phase == "hash" and files:
                    target.write_text("new, longer\n")

        m = _sync(store, work, staging=tmp_path / "staging").sync(progress=Writer())

        assert hashlib.sha256(b"new, longer\n").hexdigest() == m.files[0].sha256
        store.copy_out(m, "ck/a.txt", tmp_path / "copy.txt")  # verified against that sha256
        assert "new, longer\n" == (tmp_path / "copy.txt").read_text()

    def test_a_file_gone_since_the_walk_is_left_out_not_an_error(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A file removed between the walk and its read is left out of that sync."""
        work = _step(tmp_path, {"ck": {"a.txt": "a\n", "b.txt": "b\n"}})

        class Remover(CountingProgress):
            def begin(self, phase: str, files: int, nbytes: int) -> None:
                super().begin(phase, files, nbytes)
                if phase == "hash":
                    (work / "ck" / "b.txt").unlink()

        m = _sync(store, work).sync(progress=Remover())

        assert ["ck/a.txt"] == [f.path for f in m.files]

    def test_no_staged_copy_is_left_behind(self, store: ArtifactStore, tmp_path: Path) -> None:
        """After a sync no `.tmp-` copy is left, in the staging folder or a local store."""
        _sync(store, _step(tmp_path), staging=tmp_path / "staging").sync()

        assert [] == list(tmp_path.rglob(".tmp-*"))

    def test_prune_keeps_what_a_synced_manifest_names_and_delete_run_removes_it(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A synced manifest is a reference for prune (even young blobs are not freed while it
        exists); delete_run removes it, and prune then frees its blobs."""
        _sync(store, _step(tmp_path)).sync()

        kept = store.prune(keep_young=False)
        deleted = store.delete_run("run-1")
        freed = store.prune(keep_young=False)

        assert 0 == kept.blobs
        assert 1 == deleted
        assert [] == store.list_synced("run-1")
        assert 2 == freed.blobs


class TestLocalSync(SyncContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(tmp_path / "store")

    def test_a_killed_sync_leaves_only_a_tmp_file_prune_removes(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A local store's copies wait as `.tmp-` files in its blob folder: what a killed sync
        leaves there is what prune removes."""
        _sync(store, _step(tmp_path)).sync()
        leftover = tmp_path / "store" / "blobs" / "sha256" / ".tmp-deadbeef0000-sync"
        leftover.write_bytes(b"half")

        r = store.prune(keep_young=False)

        assert 1 == r.partial
        assert not leftover.exists()


class TestFileUrlSync(SyncContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(f"file://{tmp_path}/store")


class TestMemorySync(SyncContract):
    @pytest.fixture
    def store(self) -> ArtifactStore:
        return ArtifactStore(f"memory://sync-{uuid.uuid4().hex[:8]}")


@pytest.mark.service("moto")
class TestS3Sync(SyncContract):
    @pytest.fixture
    def store(self, moto_server: dict[str, Any]) -> ArtifactStore:
        return ArtifactStore(s3_url(), moto_server)
