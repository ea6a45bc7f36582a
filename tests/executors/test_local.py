"""The local executor on its own: real bash process groups, no Prefect server.

A step ends when its script (bash) exits. What it left in its process group (`server &`) is
killed then, and what was already written to its output is still read; a process that left the
group (`setsid`) and still holds the output does not keep the step open.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dstack_prefect.executors import StepJob, StepResult
from dstack_prefect.executors.local import LocalExecutor, Machine
from dstack_prefect.graph import Step
from tests.conftest import wait_until


def marked(marker: str) -> list[int]:
    """Pids whose environment carries ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in env.split(b"\0"):
            found.append(int(pid))
    return found


class Ran:
    """One step run by the local executor in a thread: its lines, its result, how long it took."""

    def __init__(self, tmp_path: Path, commands: list[str]) -> None:
        self.marker = f"TEST_STEP_MARKER={tmp_path.name}"
        self.lines: list[str] = []
        self.result: StepResult | None = None
        self.seconds = 0.0
        step = Step.model_validate({"name": "s", "provider": "bash", "commands": commands})
        key, _, value = self.marker.partition("=")
        job = StepJob(
            run_name="r",
            step=step,
            workdir=tmp_path,
            env={**os.environ, key: value},
            on_line=self.lines.append,
        )
        self.executor = LocalExecutor(Machine(cpus=1, memory_mib=1024, gpus=()))
        self.handle = self.executor.start(job)
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        started = time.monotonic()
        self.result = self.executor.wait(self.handle)
        self.seconds = time.monotonic() - started

    def ended(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def cleanup(self) -> None:
        for pid in marked(self.marker):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def run_step(tmp_path: Path) -> Iterator[Callable[[list[str]], Ran]]:
    runs: list[Ran] = []

    def start(commands: list[str]) -> Ran:
        ran = Ran(tmp_path, commands)
        runs.append(ran)
        return ran

    yield start
    for ran in runs:
        ran.cleanup()


@pytest.mark.parametrize(
    "leftover",
    ["sleep 120 &", "(sleep 778 &)", "python3 -c 'import time; time.sleep(120)' &"],
    ids=["background", "subshell", "python"],
)
def test_a_step_ends_when_its_script_does_though_a_leftover_holds_its_output(
    run_step: Callable[[list[str]], Ran], leftover: str
) -> None:
    """A process the script left in the background with the step's output open does not keep
    the step running: it ends with the script, its line read, and the leftover is killed."""
    ran = run_step([leftover, "echo started bg"])

    assert ran.ended(10), "the step is still running"
    assert ran.result is not None
    assert (0, ["started bg"]) == (ran.result.exit_code, ran.lines)
    wait_until(lambda: marked(ran.marker) == [], 10)


def test_bash_names_the_line_of_setup_and_commands_that_failed(run_step: Callable[[list[str]], Ran]) -> None:
    """bash's `line N:` in an error counts the step's own lines (old dstack's script had no
    line of ours before them; `set -e` on a line of its own made every number one too many)."""
    ran = run_step(["echo one", "no-such-command-here", "echo never"])

    assert ran.ended(10)
    assert ran.result is not None
    assert ran.result.exit_code == 127
    assert ran.lines[0] == "one"
    assert ran.lines[1].endswith(": line 2: no-such-command-here: command not found"), ran.lines


def test_output_a_leftover_wrote_before_the_script_ended_is_read(
    run_step: Callable[[list[str]], Ran], tmp_path: Path
) -> None:
    """Lines already written to the output when the script exits reach the step's log, the
    leftover's included."""
    flag = tmp_path / "written"
    ran = run_step(
        [
            f"(for i in $(seq 1 2000); do echo line $i; done; touch {flag}; exec sleep 300) &",
            f"until [ -e {flag} ]; do sleep 0.01; done",
            "echo script done",
        ]
    )

    assert ran.ended(10), "the step is still running"
    assert [f"line {i}" for i in range(1, 2001)] == ran.lines[:2000]
    assert ran.lines[-1] == "script done"


def test_a_process_that_left_the_group_and_holds_the_output_does_not_keep_the_step_open(
    run_step: Callable[[list[str]], Ran],
) -> None:
    """A `setsid` process, out of the step's group, holding the output: the step ends a short
    while after its script, with the lines written before."""
    ran = run_step(["setsid sleep 300 &", "echo before the end"])

    assert ran.ended(10), "the step is still running"
    assert ran.result is not None
    assert (0, ["before the end"]) == (ran.result.exit_code, ran.lines)


def test_a_graceful_stop_still_gives_the_steps_processes_their_grace(
    run_step: Callable[[list[str]], Ran], tmp_path: Path
) -> None:
    """On stop, bash going at the SIGTERM does not cut short a child that is still finishing:
    its last words are read before the step ends."""
    ready = tmp_path / "ready"
    child = (
        "python3 -c 'import signal, sys, time, pathlib\n"
        "def bye(*_):\n"
        "    time.sleep(1)\n"
        '    print("saved the checkpoint", flush=True)\n'
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        f'pathlib.Path("{ready}").touch()\n'
        "time.sleep(300)'"
    )
    ran = run_step([child, "echo not reached: bash went at the SIGTERM"])
    wait_until(ready.exists, 30)

    ran.executor.stop(ran.handle, grace=10)

    assert ran.ended(15), "the step is still running"
    assert ran.lines == ["saved the checkpoint"]
