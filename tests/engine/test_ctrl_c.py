"""Ctrl-C on an attached `dstack run`, typed into a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI, run_row
from dstack_prefect.engine._runs import LogReader
from tests.conftest import Server, wait_until
from tests.engine.test_local_runs import DIAMOND, marker_processes, wait_finished

pytestmark = pytest.mark.service("prefect")


class Terminal:
    """`dstack ARGS` attached to a pty, as a user's terminal would run it."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes dstack
            os.chdir(cwd)
            os.execvpe(sys.executable, [sys.executable, "-m", "dstack_prefect", *args], env)
        self.pid, self.fd, self.buffer = pid, fd, ""

    def expect(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"{text!r} not seen within {timeout} s; output so far:\n{self.buffer}"
                raise AssertionError(msg)
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"dstack exited before {text!r}; output:\n{self.buffer}")
                self.buffer += chunk.decode(errors="replace")
        return self.buffer

    def send(self, data: str) -> None:
        os.write(self.fd, data.encode())

    def exit_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    self.buffer += os.read(self.fd, 4096).decode(errors="replace")
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        raise AssertionError(f"dstack did not exit; output:\n{self.buffer}")


def attached(repo: Path, env: dict[str, str], workflow: str, first_line: str) -> tuple[Terminal, str]:
    """`dstack run WORKFLOW` in a terminal, once its step printed ``first_line``; and the run's name."""
    term = Terminal(["run", workflow], repo, env)
    out = term.expect(first_line)
    return term, next(w for w in out.split() if w.count("-") == 2 and w[-1].isdigit())


@pytest.fixture
def started(make_repo: Any, prefect_server: Server, dstack_home: Path) -> Any:
    return attached(
        make_repo({".dstack/workflows.yaml": DIAMOND}), prefect_server.env(dstack_home), "sleeper", "sleeping"
    )


@pytest.fixture
def api(prefect_server: Server) -> Any:
    with PrefectAPI(prefect_server.url) as client:
        yield client


def test_ctrl_c_then_no_detaches_and_the_run_goes_on(started: Any, api: PrefectAPI) -> None:
    """Ctrl-C, then "n": the CLI detaches with exit 0 and the run keeps running."""
    term, name = started

    term.send("\x03")
    term.expect("Stop the run")
    term.send("n\r")
    term.expect("Detaching")

    assert term.exit_code() == 0
    assert run_row(api.flow_run_by_name(name)).status == "running"
    api.set_flow_run_state(api.flow_run_by_name(name)["id"], "CANCELLING", name="Aborting", force=True)
    wait_finished(api, name)


def test_ctrl_c_then_yes_stops_the_run_gracefully(started: Any, api: PrefectAPI) -> None:
    """Ctrl-C, then "y": the run ends Stopped and the CLI shows it."""
    term, name = started

    term.send("\x03")
    term.expect("Stop the run")
    term.send("y\r")
    term.expect("got TERM", timeout=30)  # a line after the Ctrl-C: the reader pages again
    out = term.expect("Stopped", timeout=30)

    assert term.exit_code() == 1
    assert 1 == out.count("sleeping")  # lines shown before the Ctrl-C are not shown again
    assert wait_finished(api, name).status == "stopped"
    wait_until(lambda: marker_processes(f"RUN_NAME={name}") == [], 10)


TICKER = """
workflows:
  - name: ticker
    provider: bash
    commands:
      - trap 'echo "got TERM"; exit 143' TERM
      - for i in $(seq 1 600); do echo "tick $i"; sleep 0.2 & wait; done
"""


def test_lines_printed_while_the_question_is_asked_are_shown_after_it(
    make_repo: Any, prefect_server: Server, dstack_home: Path, api: PrefectAPI
) -> None:
    """The step goes on printing while "Stop the run?" waits for an answer: after a "y" those
    lines are shown, each once, before the run's last ones (they were skipped)."""
    term, name = attached(
        make_repo({".dstack/workflows.yaml": TICKER}), prefect_server.env(dstack_home), "ticker", "tick 2"
    )
    term.send("\x03")
    term.expect("Stop the run")
    reader = LogReader(api, api.flow_run_by_name(name)["id"])
    logged: list[str] = []

    def logged_tick_12() -> bool:
        logged.extend(line.message for line in reader.read())
        return "tick 12" in logged

    wait_until(logged_tick_12, 60)

    term.send("y\r")
    out = term.expect("got TERM", timeout=30)

    shown = [line.strip() for line in out.splitlines() if line.strip().startswith("tick ")]
    assert [f"tick {i}" for i in range(1, 13)] == shown[:12]
    assert len(shown) == len(set(shown))
    assert wait_finished(api, name).status == "stopped"


SHORT = """
workflows:
  - name: short
    provider: bash
    commands: [echo "started", sleep 2]
"""


def test_yes_after_the_run_finished_leaves_it_done(
    make_repo: Any, prefect_server: Server, dstack_home: Path, api: PrefectAPI
) -> None:
    """The run ends while "Stop the run?" waits; "y" then stops nothing: the CLI says the run
    had already finished, and the run stays Done (it was turned Stopping, then Crashed)."""
    term, name = attached(
        make_repo({".dstack/workflows.yaml": SHORT}), prefect_server.env(dstack_home), "short", "started"
    )
    term.send("\x03")
    term.expect("Stop the run")
    wait_finished(api, name)

    term.send("y\r")
    out = term.expect("Done", timeout=30)

    assert f"The run '{name}' had already finished" in out
    assert "Stopping the run" not in out
    assert 0 == term.exit_code()
    assert "done" == run_row(api.flow_run_by_name(name)).status


def test_ctrl_c_twice_aborts(started: Any, api: PrefectAPI) -> None:
    """Ctrl-C at the prompt again aborts the run at once."""
    term, name = started

    term.send("\x03")
    term.expect("Stop the run")
    term.send("\x03")
    term.expect("Aborting")

    term.expect("Aborted", timeout=30)
    assert wait_finished(api, name).status == "aborted"
    assert term.exit_code() == 1
