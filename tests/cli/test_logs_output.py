"""What `dstack logs` writes: the step's lines as written, in a terminal and through a pipe,
live when following, and in order with dstack's own notes when both streams go to one place."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, Server

pytestmark = pytest.mark.service("prefect")

WORKFLOWS = """
workflows:
  - name: first
    provider: bash
    commands:
      - 'echo "deploy :fire: done"'
  - name: second
    provider: bash
    deps: [first]
    commands:
      - echo "second says hi"
  - name: waits
    provider: bash
    commands:
      - echo "before the file"
      - while [ ! -e "$GO" ]; do sleep 0.1; done
      - echo "after the file"
"""


@pytest.fixture
def repo(make_repo: Any) -> Path:
    return Path(make_repo({".dstack/workflows.yaml": WORKFLOWS}))


def buffered(server: Server, home: Path) -> dict[str, str]:
    """The tests' environment without PYTHONUNBUFFERED: a pipe is block-buffered, as a user's is."""
    return {k: v for k, v in server.env(home).items() if k != "PYTHONUNBUFFERED"}


def test_a_line_prints_as_written_in_a_terminal_and_a_pipe(
    cli: CLI, repo: Path, prefect_server: Server, dstack_home: Path
) -> None:
    """':fire:' in a step's line is text, not an emoji, whether `dstack logs` writes to a
    terminal (rich) or to a pipe (as is)."""
    assert cli("run", "first", "--name", "fire-1", cwd=repo).code == 0
    main, sub = os.openpty()
    try:
        subprocess.run(
            [sys.executable, "-m", "dstack_prefect", "logs", "fire-1"],
            cwd=repo,
            env={**prefect_server.env(dstack_home), "TERM": "dumb"},
            stdin=subprocess.DEVNULL,
            stdout=sub,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=True,
        )
        os.close(sub)
        shown = b""
        while select.select([main], [], [], 5)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)

    assert "deploy :fire: done" in shown.decode()
    assert "deploy :fire: done" in cli("logs", "fire-1", cwd=repo).out


def test_following_through_a_pipe_gets_each_line_as_it_comes(
    repo: Path, prefect_server: Server, dstack_home: Path, tmp_path: Path
) -> None:
    """`dstack logs -a | reader`: the step's first line reaches the reader while the step still
    waits (a block-buffered pipe would hold it until the run ends)."""
    go = tmp_path / "go"
    env = {**buffered(prefect_server, dstack_home), "GO": str(go)}
    started = subprocess.run(
        [sys.executable, "-m", "dstack_prefect", "run", "waits", "-d", "--name", "waits-1"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "waits-1" in started.stdout
    follow = subprocess.Popen(
        [sys.executable, "-m", "dstack_prefect", "logs", "waits-1", "-a"],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert follow.stdout is not None
        ready = select.select([follow.stdout], [], [], 90)[0]
        first = follow.stdout.readline().decode() if ready else ""
    finally:
        go.touch()
    rest, _ = follow.communicate(timeout=120)

    assert first == "before the file\n"
    assert "after the file" in rest.decode()


def test_notes_and_lines_keep_their_order_in_one_stream(
    cli: CLI, repo: Path, prefect_server: Server, dstack_home: Path
) -> None:
    """`dstack logs RUN 2>&1`: each step's 'running' note comes before that step's lines."""
    assert cli("run", "second", "--name", "order-1", cwd=repo).code == 0

    both = subprocess.run(
        [sys.executable, "-m", "dstack_prefect", "logs", "order-1"],
        cwd=repo,
        env=buffered(prefect_server, dstack_home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()

    assert [line.split(" ")[0] for line in both] == ["first:", "first", "second:", "second"], both
