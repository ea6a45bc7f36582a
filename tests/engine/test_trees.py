"""Run folders are deleted whole, also what a step left read-only."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dstack_prefect.engine._trees import remove_tree
from tests.conftest import as_a_user


def test_a_folder_left_without_write_permission_is_deleted() -> None:
    """`chmod 500` on folders inside a run's folder (as a step may leave them) does not keep
    the run's files on disk: the owner gives the folders back write permission and deletes."""
    base = Path(tempfile.mkdtemp(prefix="dstack-trees-"))
    os.chmod(base, 0o777)
    run = base / "run"

    def make_and_remove() -> None:
        (run / "steps" / "s" / "out" / "deep").mkdir(parents=True)
        (run / "steps" / "s" / "out" / "deep" / "x").write_text("hi\n")
        (run / "steps" / "s" / "out" / "deep").chmod(0o500)
        (run / "steps" / "s" / "out").chmod(0o000)
        assert remove_tree(run)
        assert not run.exists()

    try:
        assert 0 == as_a_user(make_and_remove)
    finally:
        shutil.rmtree(base)


def test_what_is_gone_already_counts_as_removed(tmp_path: Path) -> None:
    """Removing a folder that is not there (a second `rm`, a run with no folder here) is fine."""
    assert remove_tree(tmp_path / "never-made")
