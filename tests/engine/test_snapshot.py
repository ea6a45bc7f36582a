"""The code snapshot of a plain folder: what a step sees of the repo (no services)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dstack_prefect.engine._snapshot import copy_snapshot, large_snapshot_note, take_snapshot
from tests.conftest import write_tree


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plain folder (no git) that also holds the dstack home, as $HOME does for ~/.dstack."""
    root = tmp_path / "home"
    write_tree(root, {"train.py": "print(1)\n", "data/x.csv": "1\n", ".dstack/runs/r1/log": "x\n"})
    monkeypatch.setenv("DSTACK_HOME", str(root / ".dstack"))
    yield root


def test_the_dstack_home_inside_the_folder_is_left_out(folder: Path) -> None:
    """`dstack run bash -c ...` from $HOME does not copy ~/.dstack (runs, store, server) into itself."""
    snap = take_snapshot(folder)

    assert ["data/x.csv", "train.py"] == list(snap.files)


def test_sockets_are_left_out_and_the_copy_works(folder: Path, tmp_path: Path) -> None:
    """A Unix socket in the folder (a server's, an agent's) is not a file a step can get: skipped."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "agent.sock"))
        snap = take_snapshot(folder)
        copy_snapshot(snap, tmp_path / "copy")

    assert "agent.sock" not in snap.files
    assert "print(1)\n" == (tmp_path / "copy/train.py").read_text()


def test_a_snapshot_over_the_limit_names_its_largest_files(folder: Path) -> None:
    """Past the limit, the note gives the total and the three biggest files, biggest first."""
    (folder / "data/big.csv").write_bytes(b"x" * 5000)
    (folder / "data/mid.csv").write_bytes(b"x" * 3000)
    snap = take_snapshot(folder)

    note = large_snapshot_note(snap, limit=8000)

    assert note is not None
    assert note.startswith("the code snapshot is 8.0 kB in 4 files (largest: data/big.csv 5.0 kB,")
    assert "data/mid.csv 3.0 kB, train.py 9 bytes)" in note
    assert large_snapshot_note(snap, limit=9000) is None
