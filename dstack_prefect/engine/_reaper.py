"""The reaper: a tiny stdlib-only process that outlives a dead flow process.

The process running a flow starts one reaper (``python -I -S _reaper.py API_URL FLOW_RUN_ID``)
and keeps the write end of its stdin. It tells it, one line each, what to clean up:

    pg <pgid>        a step's process group started        unpg <pgid>     it ended
    task <id>        a task run started                    untask <id>     it ended
    ctr <id>         a step container started              unctr <id>      it ended
    done             the flow ended normally: exit quietly

If stdin reaches EOF without ``done`` the flow process died (SIGKILL, OOM killer, reboot of
the Python side): the reaper kills the step process groups (TERM, then KILL after 5 s): those
it was told of, and any process carrying the run's ``DSTACK_FLOW_RUN_ID`` (a step started just
before the flow process died, whose ``pg`` line never came),
removes the containers, and marks the task runs and the flow run Crashed through the REST API,
so no run stays Running forever and no step outlives its run.
"""

from __future__ import annotations  # noqa: I001

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import contextlib


def _set_state(api: str, kind: str, run_id: str, message: str) -> None:
    body = json.dumps(
        {"state": {"type": "CRASHED", "name": "Crashed", "message": message}, "force": True}
    ).encode()
    req = urllib.request.Request(
        f"{api}/{kind}/{run_id}/set_state", data=body, headers={"Content-Type": "application/json"}
    )
    for _ in range(5):
        try:
            urllib.request.urlopen(req, timeout=10).read()
            return
        except OSError:
            time.sleep(1)


def _kill_groups(pgids: set[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pgid in pgids:
            with contextlib.suppress(OSError):
                os.killpg(pgid, sig)
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p) for p in pgids):
                time.sleep(0.1)


#: Every step process (host executor) carries ``DSTACK_FLOW_RUN_ID=<its run's id>`` in its
#: environment: what finds a run's step processes when nobody told where they are.
STEP_MARKER = "DSTACK_FLOW_RUN_ID"
#: ... and ``DSTACK_STEP=<its step>``: what finds one step's processes.
STEP_NAME_MARKER = "DSTACK_STEP"


def marker_groups(flow_run_id: str, step: str | None = None) -> set[int]:
    """The process groups of this machine's processes (those this user may read) whose
    environment carries ``STEP_MARKER=flow_run_id`` (and ``STEP_NAME_MARKER=step`` if given)."""
    needles = {f"{STEP_MARKER}={flow_run_id}".encode()}
    if step is not None:
        needles.add(f"{STEP_NAME_MARKER}={step}".encode())
    groups: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if not needles.issubset(fh.read().split(b"\0")):
                    continue
            groups.add(os.getpgid(int(entry)))
        except OSError:
            continue
    groups.discard(os.getpgid(0))
    return groups


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def main(api: str, flow_run_id: str) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    pgids: set[int] = set()
    tasks: set[str] = set()
    containers: set[str] = set()
    stream = sys.stdin.buffer
    for raw in stream:
        words = raw.decode().split()
        if not words:
            continue
        cmd, arg = words[0], (words[1] if len(words) > 1 else "")
        if cmd == "done":
            return 0
        if cmd == "pg":
            pgids.add(int(arg))
        elif cmd == "unpg":
            pgids.discard(int(arg))
        elif cmd == "task":
            tasks.add(arg)
        elif cmd == "untask":
            tasks.discard(arg)
        elif cmd == "ctr":
            containers.add(arg)
        elif cmd == "unctr":
            containers.discard(arg)
    # EOF without "done": the flow process is gone.
    _kill_groups(pgids | marker_groups(flow_run_id))
    for ctr in containers:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["docker", "rm", "-f", ctr], capture_output=True, timeout=30, check=False)
    message = "the process running this run died; dstack stopped its steps"
    for task_id in tasks:
        _set_state(api, "task_runs", task_id, message)
    _set_state(api, "flow_runs", flow_run_id, message)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1].rstrip("/"), sys.argv[2]))
