"""Run folders are deleted whole, also what a step left read-only."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from dstack_prefect.engine._trees import remove_tree

NOBODY = 65534


def _as_a_user(work: Callable[[], bool]) -> int:
    """Run ``work()`` as a non-root user and return its exit status (0: it returned True).

    Permission bits do not bind root, which is what CI runs as: there the work runs in a child
    process that has dropped to ``nobody``, as a user's dstack would run.
    """
    if os.geteuid() != 0:
        return 0 if work() else 1
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's status is what the test reads
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os._exit(0 if work() else 1)
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_folder_left_without_write_permission_is_deleted() -> None:
    """`chmod 500` on folders inside a run's folder (as a step may leave them) does not keep
    the run's files on disk: the owner gives the folders back write permission and deletes."""
    base = Path(tempfile.mkdtemp(prefix="dstack-trees-"))
    os.chmod(base, 0o777)
    run = base / "run"

    def make_and_remove() -> bool:
        (run / "steps" / "s" / "out" / "deep").mkdir(parents=True)
        (run / "steps" / "s" / "out" / "deep" / "x").write_text("hi\n")
        (run / "steps" / "s" / "out" / "deep").chmod(0o500)
        (run / "steps" / "s" / "out").chmod(0o000)
        return remove_tree(run) and not run.exists()

    try:
        assert 0 == _as_a_user(make_and_remove)
    finally:
        shutil.rmtree(base)


def test_what_is_gone_already_counts_as_removed(tmp_path: Path) -> None:
    """Removing a folder that is not there (a second `rm`, a run with no folder here) is fine."""
    assert remove_tree(tmp_path / "never-made")
