"""Usage mistakes (an unknown option, a missing value, a word too many) print as every other
error: `error:` and `hint:` lines, no box, no traceback; exit code 2 as click's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (["ps", "--zzz"], "No such option: --zzz", "`dstack ps -h` shows its usage"),
        (
            ["stop", "run-a", "run-b"],
            "Got unexpected extra argument(s) (run-b)",
            "`dstack stop -h` shows its usage",
        ),
        (
            ["logs", "some-run-1", "-s"],
            "Option '-s' requires an argument.",
            "`dstack logs -h` shows its usage",
        ),
        (["tags", "add"], "Missing argument 'TAG'.", "`dstack tags add -h` shows its usage"),
    ],
    ids=["unknown-option", "extra-argument", "option-without-value", "missing-argument"],
)
def test_a_usage_mistake_is_two_lines_saying_where_the_usage_is(
    tmp_path: Path, args: list[str], error: str, hint: str
) -> None:
    """What was wrong, then which help to read; nothing reaches a server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSTACK_", "PREFECT_"))}
    res = subprocess.run(
        [sys.executable, "-m", "dstack_prefect", *args],
        env={**env, "DSTACK_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert 2 == res.returncode
    assert "" == res.stdout
    assert [f"error: {error}", f"hint: {hint}"] == res.stderr.splitlines()[:2]
    assert 2 == len(res.stderr.splitlines()), res.stderr


def test_stderr_into_a_pipe_keeps_each_message_on_one_line(tmp_path: Path) -> None:
    """What dstack says on stderr into a pipe or a CI log (no COLUMNS) is not wrapped at 80
    columns: a long path stays whole on its line, as stdout's tables do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSTACK_", "PREFECT_", "COLUMNS"))}
    target = tmp_path / ("a-folder-with-a-long-name-" * 4) / "workflows.schema.json"
    target.parent.mkdir()

    res = subprocess.run(
        [sys.executable, "-m", "dstack_prefect", "schema", "-o", str(target)],
        env={**env, "DSTACK_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert res.returncode == 0, res.stderr
    assert res.stderr == f"wrote {target}\n"
