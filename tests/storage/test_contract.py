"""One contract every artifact store backend passes: local folder, S3 on moto, memory://.

Each backend is a subclass of ``StoreContract`` that overrides the ``store`` fixture (and says
whether another process can see the store, for the kill test).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest

from dstack_prefect.errors import ArtifactNotFoundError, IntegrityError, StorageError, UnsafePathError
from dstack_prefect.storage import ArtifactStore, FileEntry, LsRow, Manifest, transfer

from .conftest import boto_client, gen, s3_url

TREE = {
    "out": {
        "model.bin": b"\x00weights" * 100,
        "run.sh": "#!/bin/sh\necho hi\n",
        "logs": {"a.log": "alpha\n", "b.log": "beta\n"},
        "copy.bin": b"\x00weights" * 100,
    }
}
SHA_A = "a" * 64


def _fs(store: ArtifactStore) -> tuple[Any, str]:
    """The raw fsspec filesystem and root under the store, for tests that damage it on purpose."""
    fs, root = fsspec.core.url_to_fs(store.url, **store.storage_options, skip_instance_cache=True)
    return fs, root.rstrip("/")


def _blob_keys(store: ArtifactStore) -> list[str]:
    fs, root = _fs(store)
    fs.invalidate_cache()
    try:
        return [k for k in fs.find(f"{root}/blobs") if not k.rsplit("/", 1)[-1].startswith(".")]
    except FileNotFoundError:
        return []


def _put_tree(
    store: ArtifactStore, tmp_path: Path, run: str = "run-1", tree: dict[str, Any] | None = None, **extra: Any
) -> Manifest:
    work = gen(tmp_path / f"work-{uuid.uuid4().hex[:6]}", tree or TREE)
    if (work / "out" / "run.sh").exists():
        os.chmod(work / "out" / "run.sh", 0o755)
    return store.put_step(run, "train", "train", work, ["out"], extra or {"status": "done"})


def _flip_byte(store: ArtifactStore, digest: str) -> str:
    """Damage the blob of ``digest`` in place (its first byte flipped); returns its key."""
    fs, root = _fs(store)
    key = f"{root}/blobs/sha256/{digest[:2]}/{digest[2:]}"
    data = bytearray(fs.cat_file(key))
    data[0] ^= 0xFF
    fs.pipe_file(key, bytes(data))
    return key


def _exists(store: ArtifactStore, key: str) -> bool:
    fs, _root = _fs(store)
    fs.invalidate_cache()
    return bool(fs.exists(key))


def _crafted(store: ArtifactStore, path: str, content: bytes = b"x", run: str = "evil") -> Manifest:
    """A manifest written by hand (not by put_step) naming ``path`` for a real blob."""
    import hashlib

    digest = hashlib.sha256(content).hexdigest()
    fs, root = _fs(store)
    fs.makedirs(f"{root}/blobs/sha256/{digest[:2]}", exist_ok=True)
    fs.pipe_file(f"{root}/blobs/sha256/{digest[:2]}/{digest[2:]}", content)
    return Manifest(
        run=run,
        step="s",
        workflow="w",
        artifacts=[path],
        files=[FileEntry(path=path, size=len(content), sha256=digest, mode=0o644)],
    )


class StoreContract:
    """The behaviour every store backend must have."""

    cross_process = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        raise NotImplementedError

    @pytest.fixture
    def local(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(tmp_path / "other-store")

    # round trip -------------------------------------------------------------------------
    def test_round_trip_keeps_content_and_modes(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Files come back byte for byte at their paths, with the executable bit kept."""
        m = _put_tree(store, tmp_path)
        target = tmp_path / "target"

        store.materialize([store.get_manifest("run-1", "train")], target)

        assert (target / "out/model.bin").read_bytes() == b"\x00weights" * 100
        assert (target / "out/logs/b.log").read_text() == "beta\n"
        assert os.stat(target / "out/run.sh").st_mode & 0o111
        assert not os.stat(target / "out/logs/a.log").st_mode & 0o111
        assert m.artifacts == ["out"]
        assert store.get_manifest("run-1", "train").extra == {"status": "done"}

    def test_identical_files_are_stored_once(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Two runs of the same tree, with a duplicated file inside, store each distinct content once."""
        _put_tree(store, tmp_path, "run-1")
        _put_tree(store, tmp_path, "run-2")

        assert len(_blob_keys(store)) == 4
        assert store.list_runs() == ["run-1", "run-2"]

    def test_blobs_without_manifest_show_no_step(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A step whose blobs are stored but whose manifest is not written does not exist for readers."""
        _crafted(store, "out/x")

        with pytest.raises(ArtifactNotFoundError, match="evil"):
            store.get_manifest("evil", "s")
        assert store.list_manifests("evil") == []
        assert store.list_runs() == []

    def test_find_manifests_newest_first_with_predicate(self, store: ArtifactStore, tmp_path: Path) -> None:
        """find_manifests filters by workflow and by extra metadata, newest first."""
        _put_tree(store, tmp_path, "run-1", cache_key="k1", status="done")
        _put_tree(store, tmp_path, "run-2", cache_key="k1", status="failed")
        _put_tree(store, tmp_path, "run-3", cache_key="k1", status="done")

        found = store.find_manifests(
            "train", lambda m: m.extra["status"] == "done" and m.extra["cache_key"] == "k1"
        )

        assert [m.run for m in found] == ["run-3", "run-1"]
        assert store.find_manifests("other") == []

    # integrity and safety ---------------------------------------------------------------
    def test_corrupt_blob_raises_integrity_error(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A blob with one byte flipped is refused before it is placed, naming the artifact path and run."""
        m = _put_tree(store, tmp_path)
        entry = next(e for e in m.files if e.path == "out/logs/a.log")
        _flip_byte(store, entry.sha256)

        with pytest.raises(IntegrityError, match=r"out/logs/a\.log.*run-1"):
            store.materialize([m], tmp_path / "target")
        assert not (tmp_path / "target/out/logs/a.log").exists()

    @pytest.mark.parametrize("read", ["materialize", "copy_out", "push"])
    def test_a_corrupt_blob_is_removed_when_read_and_an_upload_repairs_it(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path, read: str
    ) -> None:
        """The read that finds a damaged blob removes it and says how to store it again; the
        next read says the file is missing; uploading the same content again (a rerun) stores
        the blob again, and the old manifest reads fine."""
        m = _put_tree(store, tmp_path)
        entry = next(e for e in m.files if e.path == "out/logs/a.log")
        key = _flip_byte(store, entry.sha256)
        reads = {
            "materialize": lambda: store.materialize([m], tmp_path / f"t-{uuid.uuid4().hex[:6]}"),
            "copy_out": lambda: store.copy_out(m, "out/logs", tmp_path / f"t-{uuid.uuid4().hex[:6]}"),
            "push": lambda: transfer(store, ArtifactStore(tmp_path / f"s-{uuid.uuid4().hex[:6]}"), ["run-1"]),
        }

        with pytest.raises(IntegrityError, match=r"out/logs/a\.log.*run-1.*removed from the store") as bad:
            reads[read]()
        removed = not _exists(store, key)
        with pytest.raises(
            ArtifactNotFoundError, match=r"out/logs/a\.log.*run-1.*missing from the store"
        ) as gone:
            reads[read]()
        _put_tree(store, tmp_path, "run-2")
        reads[read]()

        assert removed
        assert "dstack run train --rerun train" in (bad.value.hint or "")
        assert bad.value.hint == gone.value.hint
        assert _exists(store, key)

    def test_a_damaged_cache_is_forgotten(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A cache folder whose blob is damaged restores as nothing (the step runs cold and saves
        a fresh one) instead of failing every later run."""
        work = gen(tmp_path / "w", {".cache": {"pip": {"wheel.whl": "w"}}})
        m = store.save_cache("repo1", "train", ".cache/pip", work)
        _flip_byte(store, m.files[0].sha256)

        first = store.restore_cache("repo1", "train", ".cache/pip", tmp_path / "fresh")
        store.save_cache("repo1", "train", ".cache/pip", work)
        second = store.restore_cache("repo1", "train", ".cache/pip", tmp_path / "fresh2")

        assert first is None
        assert not (tmp_path / "fresh/.cache/pip/wheel.whl").exists()
        assert second is not None
        assert (tmp_path / "fresh2/.cache/pip/wheel.whl").read_text() == "w"

    @pytest.mark.parametrize(
        "path",
        ["../evil", "a/../../evil", "/etc/evil", ""],
        ids=["dotdot", "nested-dotdot", "absolute", "empty"],
    )
    def test_unsafe_paths_are_refused(self, store: ArtifactStore, tmp_path: Path, path: str) -> None:
        """A crafted manifest entry that would land outside the target is refused and nothing is written."""
        m = _crafted(store, path)
        target = tmp_path / "deep/target"

        with pytest.raises(UnsafePathError):
            store.materialize([m], target)
        assert not (tmp_path / "deep/evil").exists()
        assert not (tmp_path / "evil").exists()

    def test_absolute_paths_land_under_absolute_root(self, store: ArtifactStore, tmp_path: Path) -> None:
        """An absolute artifact path (old dstack allowed them) is placed under absolute_root
        inside the target."""
        m = _crafted(store, "/opt/envs/x/bin/python", b"py")

        store.materialize([m], tmp_path / "t", absolute_root="_root")

        assert (tmp_path / "t/_root/opt/envs/x/bin/python").read_bytes() == b"py"

    def test_absolute_paths_read_from_absolute_root_round_trip(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A container's absolute artifact, mounted from a host folder, is read from under
        absolute_root, named by its absolute path, and lands back under a consumer's root."""
        mounted = tmp_path / "work/.abs/opt/envs/x/bin"
        mounted.mkdir(parents=True)
        (mounted / "python").write_bytes(b"py")

        m = store.put_step(
            "run-1", "s", "s", tmp_path / "work", ["/opt/envs/x"], absolute_root=tmp_path / "work/.abs"
        )
        store.materialize([m], tmp_path / "t", absolute_root="_root")

        assert (m.artifacts, [f.path for f in m.files]) == (["/opt/envs/x"], ["/opt/envs/x/bin/python"])
        assert (tmp_path / "t/_root/opt/envs/x/bin/python").read_bytes() == b"py"

    def test_same_path_different_content_is_a_conflict(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Two manifests that put different content at one path raise a StorageError naming both."""
        a = _crafted(store, "out/x", b"one", run="run-a")
        b = _crafted(store, "out/x", b"two", run="run-b")

        with pytest.raises(StorageError, match=r"run-a/s.*run-b/s"):
            store.materialize([a, b], tmp_path / "t")

    def test_a_conflict_with_a_tag_of_folders_names_the_tag(
        self, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A dep and a tag of `-a` folders that put different content at one path: the error
        names the tag as `:TAG`, not its internal run `tag-TAG-<time>/main`."""
        gen(tmp_path / "cwd", {"data": {"rows.txt": "mine"}})
        monkeypatch.chdir(tmp_path / "cwd")
        tagged = store.add_tag_from_dirs("conflict", [Path("data")]).manifests
        prep = _crafted(store, "data/rows.txt", b"theirs", run="eager-kiwi-1")

        with pytest.raises(StorageError) as info:
            store.materialize([prep, *tagged], tmp_path / "t")

        assert "'data/rows.txt' is in both eager-kiwi-1/s and :conflict with different content" in str(
            info.value
        )

    def test_same_path_same_content_is_fine(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Two manifests with identical content at one path materialize once."""
        a = _crafted(store, "out/x", b"same", run="run-a")
        b = _crafted(store, "out/x", b"same", run="run-b")

        store.materialize([a, b], tmp_path / "t")

        assert (tmp_path / "t/out/x").read_bytes() == b"same"

    # pointers ---------------------------------------------------------------------------
    def test_pointers_name_a_manifest_and_the_last_writer_wins(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A pointer reads back as (run, step), a second set moves it, an unset one is None;
        odd scope parts (a URL-like repo id, a dot) stay one key segment each."""
        first = _put_tree(store, tmp_path, run="run-1")
        second = _put_tree(store, tmp_path, run="run-2")
        scope = ("reuse", "git@github.com:org/repo.git", ".hidden")

        store.set_pointer(scope, "latest", first)
        before = store.read_pointer(scope, "latest")
        store.set_pointer(scope, "latest", second)

        assert before == ("run-1", "train")
        assert store.read_pointer(scope, "latest") == ("run-2", "train")
        assert store.read_pointer(scope, "key-abc") is None
        assert store.read_pointer(("reuse", "other", ".hidden"), "latest") is None

    def test_a_damaged_manifest_or_tag_is_named_wherever_it_is_read(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A manifest or tag file that is not a valid one (cut short by a full disk, edited by
        hand) fails every read with an IntegrityError naming the file and what to do, never a
        pydantic error; prune refuses rather than free the blobs it may name."""
        _put_tree(store, tmp_path)
        store.add_tag("best", "run-1")
        fs, root = _fs(store)
        fs.pipe_file(f"{root}/manifests/run-1/train.json", b'{"run": "run-1", "st')
        fs.pipe_file(f"{root}/tags/best.json", b"{}")
        blobs = _blob_keys(store)
        reads = {
            "manifests/run-1/train.json": [
                lambda: store.get_manifest("run-1", "train"),
                lambda: store.resolve("run-1"),
                lambda: store.find_manifests("train"),
                lambda: store.prune(grace_s=0),
            ],
            "tags/best.json": [lambda: store.resolve(":best"), store.list_tags],
        }

        for key, calls in reads.items():
            for call in calls:
                with pytest.raises(IntegrityError) as info:
                    call()
                assert f"{key} in {store.url} is damaged" in info.value.message
                assert info.value.hint
        assert blobs == _blob_keys(store)

    def test_a_forced_transfer_replaces_a_damaged_manifest(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path
    ) -> None:
        """A manifest of the run that no longer parses in the destination counts as other
        content: refused without force, replaced by the good one with force."""
        _put_tree(local, tmp_path, "run-1")
        transfer(local, store, runs=["run-1"])
        fs, root = _fs(store)
        fs.pipe_file(f"{root}/manifests/run-1/train.json", b"{")

        with pytest.raises(StorageError, match="run-1/train differ"):
            transfer(local, store, runs=["run-1"])
        forced = transfer(local, store, runs=["run-1"], force=True)

        assert 1 == forced.manifests
        assert local.get_manifest("run-1", "train") == store.get_manifest("run-1", "train")

    def test_a_damaged_tag_or_run_can_be_deleted(self, store: ArtifactStore, tmp_path: Path) -> None:
        """delete_tag and delete_run remove a tag or manifest that no longer parses."""
        _put_tree(store, tmp_path)
        store.add_tag("best", "run-1")
        fs, root = _fs(store)
        fs.pipe_file(f"{root}/manifests/run-1/train.json", b"{")
        fs.pipe_file(f"{root}/tags/best.json", b"{")

        store.delete_tag("best")
        store.delete_run("run-1")

        assert ([], []) == (store.list_tags(), store.list_runs())

    # tags -------------------------------------------------------------------------------
    def test_tags_add_list_delete(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A tag can be added, listed, read, refused twice without overwrite, and deleted."""
        _put_tree(store, tmp_path)

        store.add_tag("best", "run-1")
        with pytest.raises(StorageError, match="already exists"):
            store.add_tag("best", "run-1")
        names = [t.tag for t in store.list_tags()]
        tagged = store.get_tag("best")
        store.delete_tag("best")

        assert names == ["best"]
        assert (tagged.run, tagged.workflow) == ("run-1", "train")
        assert store.list_tags() == []
        with pytest.raises(ArtifactNotFoundError, match="best"):
            store.get_tag("best")

    @pytest.mark.parametrize(
        "name",
        ["two words", "a/b", "-dash", ":colon", "x:y", ".hidden", "na\u00efve", "x" * 101],
        ids=["space", "slash", "dash-first", "colon-first", "colon", "dot-first", "non-ascii", "too-long"],
    )
    def test_a_tag_name_that_cannot_be_written_as_colon_tag_is_refused(
        self, store: ArtifactStore, tmp_path: Path, name: str
    ) -> None:
        """A new tag is written ``:TAG`` on the command line and in deps, so its name is
        letters, digits, '.', '_' and '-', starting with a letter or digit: others are refused
        with the rule and nothing is stored."""
        _put_tree(store, tmp_path)
        gen(tmp_path / "cwd", {"data": {"x.csv": "1\n"}})

        with pytest.raises(StorageError) as by_run:
            store.add_tag(name, "run-1")
        with pytest.raises(StorageError) as by_dirs:
            store.add_tag_from_dirs(name, [tmp_path / "cwd" / "data"])

        for info in (by_run, by_dirs):
            assert f"tag name {name!r} is not valid" in info.value.message
            assert "letters, digits" in info.value.message
        assert store.list_tags() == []
        assert store.list_runs() == ["run-1"]

    def test_a_tag_names_the_workflow_of_the_run_not_of_its_first_step(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """Tagging a run of `train` (after its dep `prep`) records `train`: the given workflow,
        else the step committed last (the target finishes after its deps)."""
        work = gen(tmp_path / "w", {"out": {"x": "1"}})
        store.put_step("run-1", "prep", "prep", work, ["out"])
        store.put_step("run-1", "train", "train", work, ["out"])

        guessed = store.add_tag("t1", "run-1")
        given = store.add_tag("t2", "run-1", "train")

        assert ("train", "train") == (guessed.workflow, given.workflow)

    def test_tag_from_dirs(
        self, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Local folders become a tag through a synthetic run; resolving ``:TAG`` gives their files."""
        gen(tmp_path / "cwd", {"data": {"x.csv": "1,2\n"}})
        monkeypatch.chdir(tmp_path / "cwd")

        tag = store.add_tag_from_dirs("data-v1", [Path("data")])
        store.materialize(store.resolve(":data-v1"), tmp_path / "t")

        assert tag.run.startswith("tag-data-v1-")
        assert (tmp_path / "t/data/x.csv").read_text() == "1,2\n"

    def test_tag_from_dirs_takes_the_current_folder_and_refuses_the_root(
        self, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`-a .` tags the current folder (by its absolute path, as `-a ..` is): it was refused
        with a YAML hint ('declare a sub-folder, e.g. artifacts: ...'); `-a /` is refused
        with a hint for the command line."""
        cwd = gen(tmp_path / "cwd", {"x.csv": "1\n"})
        monkeypatch.chdir(cwd)

        tag = store.add_tag_from_dirs("here", [Path(".")])
        with pytest.raises(StorageError) as root:
            store.add_tag_from_dirs("root", [Path("/")])

        assert [str(cwd.resolve())] == tag.manifests[0].artifacts
        assert ["x.csv"] == [f.path.rsplit("/", 1)[-1] for f in tag.manifests[0].files]
        assert "'/' is the filesystem root" in root.value.message
        assert "-a" in (root.value.hint or "")

    def test_folders_uploaded_as_a_tag_go_with_the_tag(
        self, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The synthetic run that `-a` folders are stored under is removed when its tag is
        deleted or moved: no command can remove it otherwise, so prune never freed its files."""
        gen(tmp_path / "cwd", {"a": {"x.bin": "a" * 100}, "b": {"y.bin": "b" * 100}})
        monkeypatch.chdir(tmp_path / "cwd")
        store.add_tag_from_dirs("moved", [Path("a")])
        store.add_tag_from_dirs("gone", [Path("b")])

        moved = store.add_tag_from_dirs("moved", [Path("b")], overwrite=True)
        store.delete_tag("gone")
        store.prune(grace_s=0)

        assert [moved.run] == store.list_runs()
        assert 1 == len(_blob_keys(store))

    def test_tag_from_dirs_refuses_a_file_and_a_missing_path(
        self, store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """-a PATH must be a folder: a file and a path that does not exist are refused, each
        saying which it is, and no tag is made."""
        gen(tmp_path / "cwd", {"data.csv": "1,2\n"})
        monkeypatch.chdir(tmp_path / "cwd")

        with pytest.raises(StorageError, match=r"'data.csv' is a file, not a folder") as file:
            store.add_tag_from_dirs("t", [Path("data.csv")])
        with pytest.raises(StorageError, match=r"'nope' does not exist") as missing:
            store.add_tag_from_dirs("t", [Path("nope")])

        assert file.value.hint and missing.value.hint
        assert store.list_tags() == []

    def test_tagged_artifacts_survive_delete_run_and_prune(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """Deleting a tagged run and pruning keeps the tag's artifacts."""
        _put_tree(store, tmp_path)
        store.add_tag("keep", "run-1")

        assert store.delete_run("run-1") == 1
        store.prune(grace_s=0)
        store.materialize(store.resolve(":keep"), tmp_path / "t")

        assert store.list_manifests("run-1") == []
        assert (tmp_path / "t/out/model.bin").exists()

    # housekeeping -----------------------------------------------------------------------
    def test_prune_removes_only_unreferenced_blobs(self, store: ArtifactStore, tmp_path: Path) -> None:
        """prune deletes the blobs of deleted runs and keeps those another run still uses."""
        _put_tree(store, tmp_path, "run-1")
        _put_tree(store, tmp_path, "run-2", tree={"out": {"model.bin": b"\x00weights" * 100, "new.txt": "n"}})
        store.delete_run("run-1")

        dry = store.prune(dry_run=True, grace_s=0)
        removed = store.prune(grace_s=0)
        store.materialize(store.list_manifests("run-2"), tmp_path / "t")

        assert dry == removed
        assert removed.blobs == 3
        assert len(_blob_keys(store)) == 2
        assert (0, 0) == (store.prune(grace_s=0).blobs, store.prune(grace_s=0).nbytes)

    def test_prune_keeps_young_blobs_and_counts_them(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Unreferenced blobs younger than the grace period may belong to a running upload: they
        stay, and the result says how many; a dry run says the same."""
        _crafted(store, "out/x")

        dry = store.prune(dry_run=True, grace_s=3600)
        real = store.prune(grace_s=3600)

        assert dry == real
        assert (0, 1, 1, True) == (real.blobs, real.young, real.young_nbytes, real.young_kept)
        assert len(_blob_keys(store)) == 1

    def test_prune_without_keep_young_removes_young_blobs_and_counts_them(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """keep_young=False removes the young blobs too, and counts them as young."""
        _crafted(store, "out/x")

        r = store.prune(grace_s=3600, keep_young=False)

        assert (1, 1, False) == (r.blobs, r.young, r.young_kept)
        assert _blob_keys(store) == []

    def test_prune_removes_temporary_files_a_killed_upload_left(self, store: ArtifactStore) -> None:
        """A ``.tmp-`` file (a blob a killed upload was writing) older than the grace period is
        removed by prune and counted as partial, by a dry run too (which leaves it)."""
        fs, root = _fs(store)
        key = f"{root}/blobs/sha256/ab/.tmp-0123456789ab-{'d' * 62}"
        fs.makedirs(f"{root}/blobs/sha256/ab", exist_ok=True)
        fs.pipe_file(key, b"half")

        young = store.prune(grace_s=3600)
        dry = store.prune(dry_run=True, grace_s=0)
        kept = _exists(store, key)
        real = store.prune(grace_s=0)

        assert (0, 1, 1) == (young.partial, dry.partial, real.partial)
        assert kept
        assert not _exists(store, key)

    def test_cache_save_restore_prune(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A cache folder saved for (repo, workflow) is restored into a fresh workdir until pruned."""
        work = gen(tmp_path / "w", {".cache": {"pip": {"wheel.whl": "w"}}})
        store.save_cache("repo1", "train", ".cache/pip", work)

        restored = store.restore_cache("repo1", "train", ".cache/pip", tmp_path / "fresh")
        other = store.restore_cache("repo1", "eval", ".cache/pip", tmp_path / "fresh2")
        pruned = store.prune_cache("repo1", "train")

        assert restored is not None
        assert (tmp_path / "fresh/.cache/pip/wheel.whl").read_text() == "w"
        assert other is None
        assert pruned == 1
        assert store.restore_cache("repo1", "train", ".cache/pip", tmp_path / "fresh3") is None

    # reading ----------------------------------------------------------------------------
    def test_ls_one_level_and_recursive(self, store: ArtifactStore, tmp_path: Path) -> None:
        """ls shows one level with summed sub-folder sizes, or every file with recursive=True."""
        m = _put_tree(store, tmp_path)

        top = store.ls([m])
        deep = store.ls([m], prefix="out/logs", recursive=True)

        assert [
            LsRow(artifact="out", file="copy.bin", size=800),
            LsRow(artifact="out", file="logs/", size=11),
            LsRow(artifact="out", file="model.bin", size=800),
            LsRow(artifact="out", file="run.sh", size=18),
        ] == top
        assert [r.file for r in deep] == ["logs/a.log", "logs/b.log"]

    def test_ls_shows_file_artifacts_and_empty_ones(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A file declared as an artifact is a row that is not a folder; a declared artifact the
        step left empty is a row with no file (and listing it is no error)."""
        work = gen(tmp_path / "w", {"single.txt": "one\n", "empty": {}})
        m = store.put_step("run-1", "s", "s", work, ["single.txt", "empty", "never-made"], {})

        rows = store.ls([m])

        assert [
            LsRow(artifact="empty", file="", size=0),
            LsRow(artifact="never-made", file="", size=0),
            LsRow(artifact="single.txt", file="single.txt", size=4, folder=False),
        ] == rows
        assert [LsRow(artifact="never-made", file="", size=0)] == store.ls([m], prefix="never-made")

    def test_ls_does_not_call_an_artifact_empty_when_another_holds_its_files(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """Artifacts `data` and `data/inner` where every file is under data/inner: the files are
        listed under data/inner, and data is not shown as '(empty)', which it is not."""
        work = gen(tmp_path / "w", {"data": {"inner": {"f.txt": "f\n"}}})
        m = store.put_step("run-1", "s", "s", work, ["data", "data/inner"], {})

        rows = store.ls([m])

        assert [LsRow(artifact="data/inner", file="f.txt", size=2)] == rows

    def test_ls_of_a_prefix_nothing_is_under_is_an_error(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A prefix no file is under raises, naming the prefix and the run, with the ls to run."""
        m = _put_tree(store, tmp_path)

        with pytest.raises(ArtifactNotFoundError, match=r"no artifact file under 'nope' in :best") as info:
            store.ls([m], prefix="nope", name=":best")
        assert "`dstack ls :best`" in (info.value.hint or "")

    def test_ls_prefix_ending_in_a_slash_names_a_folder(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A prefix matches paths as text (``out`` lists ``out`` and ``outer.txt``), but one that
        ends in '/' names a folder: ``out/`` lists only what is under ``out``."""
        work = gen(tmp_path / "w", {"out": {"a.txt": "a"}, "outer.txt": "b"})
        m = store.put_step("run-1", "s", "s", work, ["out", "outer.txt"], {})

        text = store.ls([m], prefix="out")
        folder = store.ls([m], prefix="out/")

        assert ["out", "outer.txt"] == [r.artifact for r in text]
        assert [LsRow(artifact="out", file="a.txt", size=1)] == folder

    def test_copy_out_folder_and_file(self, store: ArtifactStore, tmp_path: Path) -> None:
        """copy_out copies a folder's contents into the target, and one file into a folder or to a name."""
        m = _put_tree(store, tmp_path)
        (tmp_path / "dir").mkdir()

        store.copy_out(m, "out/logs", tmp_path / "logs-copy")
        store.copy_out(m, "out/run.sh", tmp_path / "dir")
        store.copy_out(m, "out/model.bin", tmp_path / "renamed.bin")

        assert (tmp_path / "logs-copy/a.log").read_text() == "alpha\n"
        assert os.stat(tmp_path / "dir/run.sh").st_mode & 0o111
        assert (tmp_path / "renamed.bin").stat().st_size == 800

    def test_copy_out_never_overwrites_silently(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A same-named file with other content in the target is refused with a --force hint,
        then overwritten on request."""
        m = _put_tree(store, tmp_path)
        gen(tmp_path / "t", {"a.log": "mine\n"})

        with pytest.raises(StorageError, match="already exist") as info:
            store.copy_out(m, "out/logs", tmp_path / "t")
        untouched = (tmp_path / "t/a.log").read_text()
        store.copy_out(m, "out/logs", tmp_path / "t", overwrite=True)

        assert "--force" in (info.value.hint or "")
        assert untouched == "mine\n"
        assert (tmp_path / "t/a.log").read_text() == "alpha\n"

    def test_copy_out_onto_a_file_in_the_way_says_so(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A folder copied to a path that is a file, or a file whose folder is a file there, is
        refused naming that file (not an OS errno), with --force or without, and it stays."""
        m = _put_tree(store, tmp_path)
        gen(tmp_path / "t", {"taken": "mine\n"})

        with pytest.raises(StorageError, match=r"taken' is a file") as folder:
            store.copy_out(m, "out/logs", tmp_path / "t" / "taken", overwrite=True)
        with pytest.raises(StorageError, match=r"taken' is a file") as inside:
            store.copy_out(m, "out/run.sh", tmp_path / "t" / "taken" / "run.sh")

        assert "Errno" not in folder.value.message + inside.value.message
        assert folder.value.hint and inside.value.hint
        assert (tmp_path / "t/taken").read_text() == "mine\n"
        assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["taken"]

    def test_a_dep_file_where_the_working_folder_has_a_file_or_folder(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """Placing out/logs/a.log where the target holds a file 'out/logs', or placing a file
        where it holds a folder, names the path and the run instead of an OS errno."""
        m = _put_tree(store, tmp_path)
        gen(tmp_path / "t1", {"out": {"logs": "a file\n"}})
        gen(tmp_path / "t2", {"out": {"run.sh": {"x": "a folder\n"}}})

        with pytest.raises(StorageError, match=r"'out/logs' is a file") as file_there:
            store.materialize([m], tmp_path / "t1")
        with pytest.raises(StorageError, match=r"'out/run.sh' is a folder") as folder_there:
            store.materialize([m], tmp_path / "t2")

        assert "run-1/train" in file_there.value.message and "run-1/train" in folder_there.value.message
        assert "Errno" not in file_there.value.message + folder_there.value.message

    def test_downloads_announce_their_size(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path
    ) -> None:
        """A download phase (materialize, cp, pull) starts with its byte total, so the bar can show
        how far it is and how long is left."""
        _put_tree(store, tmp_path, "run-1")
        m = store.get_manifest("run-1", "train")
        sizes = {f.sha256: f.size for f in m.files}
        seen: list[tuple[str, int, int]] = []

        class Recorder:
            def begin(self, phase: str, files: int, nbytes: int) -> None:
                seen.append((phase, files, nbytes))

            def advance(self, files: int, nbytes: int) -> None:
                pass

        store.materialize([m], tmp_path / "t", progress=Recorder())
        store.copy_out(m, "out/logs", tmp_path / "logs", progress=Recorder())
        transfer(store, local, runs=["run-1"], progress=Recorder())

        downloads = [(files, nbytes) for phase, files, nbytes in seen if phase == "download"]
        assert downloads[:2] == [(len(sizes), sum(sizes.values())), (2, 11)]
        if not store._b.is_local:  # a pull from a local folder reads the blobs in place
            assert downloads[2] == (len(sizes), sum(sizes.values()))

    def test_copy_out_to_a_folder_with_a_trailing_slash(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A target ending in '/' is a folder: one file lands in it by its name, and a failed copy
        (a source no artifact has) leaves no folder behind."""
        m = _put_tree(store, tmp_path)

        with pytest.raises(ArtifactNotFoundError, match="nope"):
            store.copy_out(m, "nope", f"{tmp_path}/failed/")
        store.copy_out(m, "out/run.sh", f"{tmp_path}/made/")

        assert not (tmp_path / "failed").exists()
        assert (tmp_path / "made/run.sh").read_text() == "#!/bin/sh\necho hi\n"

    def test_a_failed_copy_leaves_no_new_folder(self, store: ArtifactStore, tmp_path: Path) -> None:
        """A copy into a new folder that fails (a corrupt blob) removes the folders it made."""
        m = _put_tree(store, tmp_path)
        _flip_byte(store, next(e for e in m.files if e.path == "out/logs/a.log").sha256)

        with pytest.raises(IntegrityError):
            store.copy_out(m, "out/logs", tmp_path / "new" / "logs")
        with pytest.raises(ArtifactNotFoundError):
            store.materialize([m], tmp_path / "new2")

        assert not (tmp_path / "new").exists()
        assert not (tmp_path / "new2").exists()

    def test_a_symlink_in_the_target_never_leads_writes_outside(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """A target folder holding a symlink to a folder outside it, where artifact files go
        (cp) or where a dep's folder lands (materialize): refused, and nothing, not even an
        empty folder, appears outside."""
        m = _put_tree(store, tmp_path, tree={"out": {"sub": {"deeper": {"f.txt": "f"}}, "a.txt": "a"}})
        outside = tmp_path / "outside"
        outside.mkdir()
        cp_target, dep_target = tmp_path / "cp", tmp_path / "dep"
        cp_target.mkdir()
        dep_target.mkdir()
        (cp_target / "sub").symlink_to(outside)
        (dep_target / "out").symlink_to(outside)

        with pytest.raises(UnsafePathError):
            store.copy_out(m, "out", cp_target)
        with pytest.raises(UnsafePathError):
            store.materialize([m], dep_target)

        assert [] == list(outside.iterdir())

    def test_copy_out_unknown_source_names_the_ref(self, store: ArtifactStore, tmp_path: Path) -> None:
        """The hint for a path no artifact has names the ls to run for the run as it was named."""
        m = _put_tree(store, tmp_path)

        with pytest.raises(ArtifactNotFoundError) as info:
            store.copy_out(m, "nope", tmp_path / "t", name=":best")
        assert "`dstack ls :best -r`" in (info.value.hint or "")

    def test_copy_out_unknown_source(self, store: ArtifactStore, tmp_path: Path) -> None:
        """Copying a path no artifact has names the artifacts there are."""
        m = _put_tree(store, tmp_path)

        with pytest.raises(ArtifactNotFoundError, match="nope") as info:
            store.copy_out(m, "nope", tmp_path / "t")
        assert "out" in (info.value.hint or "")

    # transfer ---------------------------------------------------------------------------
    def test_transfer_both_ways_skips_existing_blobs(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path
    ) -> None:
        """push then pull copies manifests, tags and only missing blobs; a second push copies none."""
        _put_tree(local, tmp_path, "run-1")
        local.add_tag("v1", "run-1")

        first = transfer(local, store, tag="v1")
        again = transfer(local, store, runs=["run-1"])
        _put_tree(store, tmp_path, "run-2", tree={"out": {"model.bin": b"\x00weights" * 100, "new.txt": "n"}})
        back = transfer(store, local, runs=["run-2"])
        store.materialize(store.resolve(":v1"), tmp_path / "t1")
        local.materialize(local.resolve("run-2"), tmp_path / "t2")

        assert (first.manifests, first.blobs) == (1, 4)
        assert (again.manifests, again.blobs, again.skipped, again.unchecked) == (0, 0, 0, 4)
        assert (back.blobs, back.skipped) == (1, 1)
        assert (tmp_path / "t1/out/run.sh").exists()
        assert (tmp_path / "t2/out/new.txt").read_text() == "n"

    def test_a_pull_into_a_local_store_stages_nothing_in_the_system_temp_folder(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Copying into a local store downloads each blob next to where it lands (a rename then
        places it), not into the system temp folder: a 20 GB model would not fit a small /tmp,
        and would take its size twice. Here the temp folder does not exist at all."""
        _put_tree(store, tmp_path, "run-1")
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temp-folder"))

        r = transfer(store, local, runs=["run-1"])
        local.materialize(local.resolve("run-1"), tmp_path / "t")

        assert (1, 4) == (r.manifests, r.blobs)
        assert (tmp_path / "t/out/run.sh").read_text() == "#!/bin/sh\necho hi\n"
        assert [] == [p for p in Path(local.url).rglob("*") if p.name.startswith(".tmp-")]

    def test_a_forced_transfer_repairs_a_store_that_lost_a_damaged_blob(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path
    ) -> None:
        """A push skips a manifest the destination holds unchanged, blobs and all, and counts
        those blobs as not checked (not as there: one may be gone); after a read there removed a
        damaged blob, a forced push checks them all and sends that blob again."""
        m = _put_tree(local, tmp_path, "run-1")
        transfer(local, store, runs=["run-1"])
        _flip_byte(store, m.files[0].sha256)
        with pytest.raises(IntegrityError):
            store.materialize([m], tmp_path / "t1")

        plain = transfer(local, store, runs=["run-1"])
        forced = transfer(local, store, runs=["run-1"], force=True)
        store.materialize([m], tmp_path / "t2")

        assert (0, 0, 4) == (plain.blobs, plain.skipped, plain.unchecked)
        assert (1, 3, 0, 0) == (forced.blobs, forced.skipped, forced.unchecked, forced.manifests)
        assert (tmp_path / "t2/out/model.bin").read_bytes() == b"\x00weights" * 100

    def test_a_damaged_source_file_is_named_by_the_tag_the_user_used(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A tag of `-a` folders whose file is damaged (then missing) in the source of a transfer:
        the hints copy it as `:TAG`, never by the internal run `tag-TAG-<time>`; a caller's
        ``repair_hint`` (pull: push it again from elsewhere) replaces the default."""
        gen(tmp_path / "cwd", {"a": {"x.bin": "a" * 100}})
        monkeypatch.chdir(tmp_path / "cwd")
        t = store.add_tag_from_dirs("up1", [Path("a")])
        _flip_byte(store, t.manifests[0].files[0].sha256)

        with pytest.raises(IntegrityError) as damaged:
            transfer(store, local, tag="up1")
        with pytest.raises(ArtifactNotFoundError) as missing:
            transfer(store, local, tag="up1", repair_hint="push it again")
        with pytest.raises(ArtifactNotFoundError) as by_run:
            store.materialize(t.manifests, tmp_path / "t")

        assert "`dstack pull :up1 --force`" in (damaged.value.hint or "")
        assert "`dstack pull :up1 --force`" in (by_run.value.hint or "")
        assert "tag-up1-" not in (damaged.value.hint or "") + (by_run.value.hint or "")
        assert "push it again" == missing.value.hint

    def test_transfer_refuses_another_run_of_the_same_name(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path
    ) -> None:
        """A run of the same name with other content in the destination (names collide between
        machines) is refused, naming the run and step, with --force; nothing is copied; force
        replaces it, the destination's other steps of that run included."""
        _put_tree(store, tmp_path, "run-1")
        work = gen(tmp_path / "mine", {"out": {"mine.txt": "mine"}})
        local.put_step("run-1", "train", "train", work, ["out"])
        local.put_step("run-1", "extra", "extra", work, ["out"])

        with pytest.raises(StorageError, match=r"run-1/(extra|train)") as info:
            transfer(store, local, runs=["run-1"])
        untouched = sorted(f.path for m in local.list_manifests("run-1") for f in m.files)
        forced = transfer(store, local, runs=["run-1"], force=True)

        assert "--force" in (info.value.hint or "")
        assert ["out/mine.txt", "out/mine.txt"] == untouched
        assert forced.manifests == 1
        assert [("run-1", "train")] == [(m.run, m.step) for m in local.list_manifests("run-1")]
        assert local.list_manifests("run-1")[0] == store.get_manifest("run-1", "train")

    def test_transfer_refuses_a_tag_that_names_another_run(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path
    ) -> None:
        """A tag of the same name with other content in the destination is refused unless
        force; an identical one is copied again without complaint."""
        _put_tree(store, tmp_path, "run-1")
        store.add_tag("best", "run-1")
        _put_tree(local, tmp_path, "run-9")
        local.add_tag("best", "run-9")

        with pytest.raises(StorageError, match=r"tag 'best'.*run-9.*run-1") as info:
            transfer(store, local, tag="best")
        kept = local.get_tag("best").run
        transfer(store, local, tag="best", force=True)
        again = transfer(store, local, tag="best")

        assert "--force" in (info.value.hint or "")
        assert kept == "run-9"
        assert local.get_tag("best") == store.get_tag("best")
        assert again.manifests == 0

    def test_a_forced_transfer_over_a_tag_of_folders_takes_its_internal_run_with_it(
        self, store: ArtifactStore, local: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A tag of `-a` folders replaced by a forced push or pull goes with its internal run
        `tag-TAG-<time>`, as when `tags add` moves it: no listing shows that run, so nothing
        removed it and prune never freed its files."""
        gen(tmp_path / "cwd", {"a": {"x.bin": "a" * 100}})
        monkeypatch.chdir(tmp_path / "cwd")
        local.add_tag_from_dirs("data", [Path("a")])
        _put_tree(store, tmp_path, "run-1")
        store.add_tag("data", "run-1")

        transfer(store, local, tag="data", force=True)

        assert ["run-1"] == local.list_runs()
        assert "run-1" == local.get_tag("data").run

    # faults -----------------------------------------------------------------------------
    def test_killed_upload_leaves_no_manifest_and_rerun_completes(
        self, store: ArtifactStore, tmp_path: Path
    ) -> None:
        """SIGKILL mid-upload leaves blobs but no visible step; running put_step again commits it."""
        if not self.cross_process:
            pytest.skip("this store is not shared between processes")
        work = gen(tmp_path / "w", {"out": {f"f{i:03}.bin": os.urandom(2048 + i) for i in range(80)}})
        child = Path(__file__).with_name("_fault_child.py")
        argv = [sys.executable, str(child), store.url, json.dumps(store.storage_options), str(work)]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
            try:
                line = proc.stdout.readline() if proc.stdout else ""
            finally:
                proc.send_signal(signal.SIGKILL)

        assert line.strip() == "uploading"
        assert len(_blob_keys(store)) > 0
        with pytest.raises(ArtifactNotFoundError):
            store.get_manifest("run-kill", "train")
        m = store.put_step("run-kill", "train", "train", work, ["out"])
        store.materialize([store.get_manifest("run-kill", "train")], tmp_path / "t")
        assert len(m.files) == 80
        assert (work / "out/f079.bin").read_bytes() == (tmp_path / "t/out/f079.bin").read_bytes()


class TestLocalStore(StoreContract):
    """The contract on a local folder."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(tmp_path / "store")


class TestFileUrlStore(StoreContract):
    """The contract on a file:// URL."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(f"file://{tmp_path}/store")


class TestMemoryStore(StoreContract):
    """The contract on the shipped in-memory store."""

    cross_process = False

    @pytest.fixture
    def store(self) -> ArtifactStore:
        return ArtifactStore(f"memory://store-{uuid.uuid4().hex[:8]}")


@pytest.mark.service("moto")
class TestS3Store(StoreContract):
    """The contract on S3, served by a moto_server subprocess."""

    @pytest.fixture
    def store(self, moto_server: dict[str, Any]) -> ArtifactStore:
        return ArtifactStore(s3_url(), moto_server)

    def test_prune_aborts_multipart_uploads_a_killed_upload_left(
        self, store: ArtifactStore, moto_server: dict[str, Any]
    ) -> None:
        """An upload killed mid-way through a multipart upload leaves parts S3 keeps (and bills)
        but no listing shows: prune aborts the store's incomplete uploads whose last part is older
        than the grace period, counts them (a dry run too), and leaves those of other prefixes."""
        s3 = boto_client(moto_server)
        bucket, _, prefix = store.url.removeprefix("s3://").partition("/")
        mine = f"{prefix}/blobs/sha256/ab/{'c' * 62}"
        other = f"elsewhere-{uuid.uuid4().hex[:6]}/big.bin"
        for key in (mine, other):
            upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
            s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 1024)

        young = store.prune(grace_s=3600)
        dry = store.prune(dry_run=True, grace_s=0)
        after_dry = _uploads(s3, bucket)
        real = store.prune(grace_s=0)
        left = _uploads(s3, bucket)

        assert (0, 1, 1) == (young.partial, dry.partial, real.partial)
        assert {mine, other} <= after_dry
        assert mine not in left and other in left

    def test_prune_keep_young_false_aborts_a_young_multipart_upload(
        self, store: ArtifactStore, moto_server: dict[str, Any]
    ) -> None:
        """keep_young=False (`prune artifacts -y`) aborts incomplete uploads of any age, as it
        removes young blobs: the upload, if it is still running, fails rather than commit."""
        s3 = boto_client(moto_server)
        bucket, _, prefix = store.url.removeprefix("s3://").partition("/")
        key = f"{prefix}/blobs/sha256/cd/{'e' * 62}"
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x")

        r = store.prune(grace_s=3600, keep_young=False)

        assert 1 == r.partial
        assert key not in _uploads(s3, bucket)


def _uploads(s3: Any, bucket: str) -> set[str]:
    return {u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
