"""The reaper on its own (engine/_reaper.py): real processes, no Prefect server.

When the flow process dies it may have started a step without having told the reaper its
process group yet (the `pg` line follows the start). The reaper still finds that step by the
run's marker in its environment and kills it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from dstack_prefect.engine import _reaper
from dstack_prefect.server import free_port
from tests.conftest import wait_until

REAPER = Path(_reaper.__file__)


def test_a_step_the_reaper_was_never_told_of_is_killed_when_the_flow_dies() -> None:
    """EOF on the reaper's stdin (its flow process died) kills the run's marked step process
    that no `pg` line named, and leaves a process of another run alone."""
    run_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    nowhere = f"http://127.0.0.1:{free_port()}/api"  # no server: the Crashed states go nowhere

    def step(flow_run_id: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, _reaper.STEP_MARKER: flow_run_id}
        return subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)

    mine, other = step(run_id), step(other_id)
    reaper = subprocess.Popen(
        [sys.executable, "-I", "-S", str(REAPER), nowhere, run_id], stdin=subprocess.PIPE
    )
    try:
        assert reaper.stdin is not None
        reaper.stdin.close()  # the flow process is gone, having said nothing

        wait_until(lambda: mine.poll() is not None, 30)
        assert other.poll() is None
    finally:
        for proc in (mine, other, reaper):
            proc.kill()
            proc.wait()
