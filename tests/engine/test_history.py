"""Reuse lookups through the store's index, on a real local store (no Prefect needed)."""

from __future__ import annotations

from pathlib import Path

from dstack_prefect.engine._cache import History, index_pulled, record_done
from dstack_prefect.storage import ArtifactStore, Manifest, transfer


def commit(store: ArtifactStore, tmp_path: Path, run: str, key: str, workflow: str = "train") -> Manifest:
    work = tmp_path / f"work-{run}"
    (work / "out").mkdir(parents=True)
    (work / "out" / "model.txt").write_text(f"model of {run}\n")
    m = store.put_step(
        run, workflow, workflow, work, ["out"], {"status": "done", "repo_id": "repo-1", "cache_key": key}
    )
    record_done(store, m)
    return m


def test_the_latest_and_the_matching_key_come_from_the_index(tmp_path: Path) -> None:
    """A -> B -> (edit back) : the third decision finds run-1 by key, and run-2 as the latest."""
    store = ArtifactStore(tmp_path / "store")
    commit(store, tmp_path, "run-1", "key-a")
    commit(store, tmp_path, "run-2", "key-b")

    found = History(store, "repo-1").candidates("train", "key-a")

    assert [(m.run, m.extra["cache_key"]) for m in found] == [("run-2", "key-b"), ("run-1", "key-a")]
    assert History(store, "repo-1").candidates("train", "key-b")[0].run == "run-2"
    assert [m.run for m in History(store, "repo-1").candidates("train", "key-c")] == ["run-2"]


def test_a_removed_run_falls_back_to_reading_the_manifests(tmp_path: Path) -> None:
    """After `dstack rm` of the latest run, the older run with the same key is still found."""
    store = ArtifactStore(tmp_path / "store")
    commit(store, tmp_path, "run-1", "key-a")
    commit(store, tmp_path, "run-2", "key-a")
    store.delete_run("run-2")

    found = History(store, "repo-1").candidates("train", "key-a")

    assert [m.run for m in found] == ["run-1"]


def test_a_store_written_before_the_index_is_read_in_full(tmp_path: Path) -> None:
    """Manifests without pointers (an older store) are still found; other repos' are not."""
    store = ArtifactStore(tmp_path / "store")
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "x").write_text("x")
    store.put_step(
        "old-1", "train", "train", work, ["out"], {"status": "done", "repo_id": "repo-1", "cache_key": "k"}
    )
    store.put_step(
        "old-2", "train", "train", work, ["out"], {"status": "done", "repo_id": "repo-2", "cache_key": "k"}
    )

    found = History(store, "repo-1").candidates("train", "k")

    assert [m.run for m in found] == ["old-1"]
    assert History(store, "repo-1").candidates("evaluate", "k") == []


def test_a_pulled_run_is_found_by_its_key_and_is_the_latest_when_newer(tmp_path: Path) -> None:
    """A teammate's run pulled into a store that has its own history is reused by key (it
    was invisible: the pointers named only local runs), and becomes the latest only when newer."""
    local = ArtifactStore(tmp_path / "local")
    remote = ArtifactStore(tmp_path / "remote")
    commit(remote, tmp_path, "theirs-old-1", "key-old")
    commit(local, tmp_path, "mine-1", "key-a")
    commit(remote, tmp_path, "theirs-1", "key-b")
    transfer(remote, local, runs=["theirs-old-1", "theirs-1"])

    index_pulled(local, local.resolve("theirs-old-1") + local.resolve("theirs-1"))

    assert [m.run for m in History(local, "repo-1").candidates("train", "key-b")] == ["theirs-1"]
    assert [m.run for m in History(local, "repo-1").candidates("train", "key-old")] == [
        "theirs-1",
        "theirs-old-1",
    ]
    index_pulled(local, local.resolve("theirs-old-1"))  # pulled again: older than the latest
    assert History(local, "repo-1").candidates("train", None)[0].run == "theirs-1"
