"""Two users of one local store at once: a prune while a step's upload, a cache save or a sync
is half done never removes what that upload is about to commit.

Each test stops the writer at the worst moment (its blobs stored, its manifest not yet
written) through its progress sink, starts the prune, and lets the writer go on only once the
prune has said it waits (or has finished, which is the bug).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.errors import ArtifactNotFoundError
from dstack_prefect.storage import ArtifactStore, Manifest, PruneResult, StepSync, transfer

from .conftest import gen


class _HeldAfterUpload:
    """A progress sink that holds the writer once the upload phase has stored every blob."""

    def __init__(self) -> None:
        self.phase = ""
        self.stored = threading.Event()
        self.go_on = threading.Event()

    def begin(self, phase: str, files: int, nbytes: int) -> None:
        self.phase = phase

    def advance(self, files: int, nbytes: int) -> None:
        if self.phase == "upload":
            self.stored.set()
            assert self.go_on.wait(60), "the test never let the upload go on"


def _prune_during(
    write: Callable[[_HeldAfterUpload], Manifest], **prune_kw: Any
) -> tuple[Manifest, PruneResult]:
    """Run ``write`` in a thread, prune the store while it is held after its upload, return both."""
    held = _HeldAfterUpload()
    out: dict[str, Any] = {}
    turn = threading.Event()  # the prune waits for the writer, or (the bug) it is done

    def writer() -> None:
        out["manifest"] = write(held)

    def pruner() -> None:
        try:
            out["pruned"] = prune_kw.pop("store").prune(on_wait=turn.set, **prune_kw)
        finally:
            turn.set()

    w = threading.Thread(target=writer)
    w.start()
    assert held.stored.wait(60), "the writer never uploaded"
    p = threading.Thread(target=pruner)
    p.start()
    assert turn.wait(60)
    held.go_on.set()
    w.join(60)
    p.join(60)
    return out["manifest"], out["pruned"]


def _readable(store: ArtifactStore, m: Manifest, target: Path) -> list[str]:
    store.materialize([m], target)
    return sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())


@pytest.mark.parametrize("keep_young", [False, True])
def test_prune_during_a_step_upload_keeps_what_its_manifest_names(tmp_path: Path, keep_young: bool) -> None:
    """`prune artifacts -y` while a step uploads: the step's manifest names blobs the store has."""
    store = ArtifactStore(tmp_path / "store")
    work = gen(tmp_path / "work", {"out": {"a.bin": b"a" * 5000, "b.txt": "bee\n"}})

    def write(held: _HeldAfterUpload) -> Manifest:
        return store.put_step("run-1", "train", "train", work, ["out"], {"status": "done"}, held)

    m, pruned = _prune_during(write, store=store, keep_young=keep_young, grace_s=0)
    assert pruned.blobs == 0
    got = _readable(store, store.get_manifest("run-1", "train"), tmp_path / "got")
    assert got == ["out/a.bin", "out/b.txt"]
    assert m == store.get_manifest("run-1", "train")


def test_prune_during_a_cache_save_keeps_the_saved_cache(tmp_path: Path) -> None:
    """A cache folder saved while a prune runs is restored whole by the next run."""
    store = ArtifactStore(tmp_path / "store")
    work = gen(tmp_path / "work", {"cdir": {"x.txt": "x\n", "y.txt": "y\n"}})

    def write(held: _HeldAfterUpload) -> Manifest:
        return store.save_cache("repo", "train", "cdir", work, held)

    _m, pruned = _prune_during(write, store=store, keep_young=False)
    assert pruned.blobs == 0
    again = tmp_path / "again"
    assert store.restore_cache("repo", "train", "cdir", again) is not None
    assert sorted(p.name for p in (again / "cdir").iterdir()) == ["x.txt", "y.txt"]


def test_prune_during_a_mount_sync_keeps_the_synced_files(tmp_path: Path) -> None:
    """A `mount: true` sync under way when a prune starts: `cp` still finds what it synced."""
    store = ArtifactStore(tmp_path / "store")
    work = gen(tmp_path / "work", {"ckpt": {"step-1.pt": b"w" * 3000}})
    sync = StepSync(store, "run-1", "train", "train", work, ["ckpt"])

    def write(held: _HeldAfterUpload) -> Manifest:
        return sync.sync(progress=held)

    _m, pruned = _prune_during(write, store=store, keep_young=False)
    assert pruned.blobs == 0
    (synced,) = store.resolve("run-1", synced=True)
    assert _readable(store, synced, tmp_path / "got") == ["ckpt/step-1.pt"]


def test_prune_during_a_pull_keeps_the_pulled_run(tmp_path: Path) -> None:
    """`dstack pull` into this home's store while a prune runs there: the run is whole after."""
    remote = ArtifactStore(tmp_path / "remote")
    work = gen(tmp_path / "work", {"out": {"a.bin": b"a" * 5000, "b.txt": "bee\n"}})
    remote.put_step("run-1", "train", "train", work, ["out"], {"status": "done"})
    store = ArtifactStore(tmp_path / "store")

    def write(held: _HeldAfterUpload) -> Manifest:
        transfer(remote, store, ["run-1"], progress=held)
        return store.get_manifest("run-1", "train")

    _m, pruned = _prune_during(write, store=store, keep_young=False)
    assert pruned.blobs == 0
    assert _readable(store, store.get_manifest("run-1", "train"), tmp_path / "got") == [
        "out/a.bin",
        "out/b.txt",
    ]


def test_a_reuse_whose_source_run_was_pruned_meanwhile_is_refused(tmp_path: Path) -> None:
    """A step reused from a run that `dstack rm` and `prune -y` took away after the decision:
    the copy is refused with an error saying so, never a manifest naming files the store lost."""
    store = ArtifactStore(tmp_path / "store")
    work = gen(tmp_path / "work", {"out": {"a.txt": "a\n"}})
    source = store.put_step("run-1", "train", "train", work, ["out"], {"status": "done"})
    store.delete_run("run-1")
    store.prune(keep_young=False)
    with pytest.raises(ArtifactNotFoundError) as caught:
        store.copy_manifest(source, "run-2")
    digest = source.files[0].sha256
    assert caught.value.message == (
        f"artifact file 'out/a.txt' of run 'run-1' (step 'train') is missing from the store {store.url}"
        f" (sha256 {digest[:12]}...)"
    )
    assert caught.value.hint == (
        "store it again with `dstack run train --rerun train`, or copy it with `dstack pull run-1 --force`"
    )
    assert store.list_manifests("run-2") == []
