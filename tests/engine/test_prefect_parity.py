"""What a Prefect user does to a dstack run from Prefect's side (API, CLI, UI) does what the
same thing does from dstack's side."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from tests.conftest import CLI, Server, supervisor_pid, wait_until
from tests.engine.test_deployment import WORKFLOWS
from tests.engine.test_local_runs import marker_processes, submitted_name, wait_finished

pytestmark = pytest.mark.service("prefect")


def test_a_sigterm_of_the_runs_process_stops_its_step(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """SIGTERM to the process running the flow (what a Prefect worker sends on the UI's Cancel):
    the run ends at once and its step goes with it (the run hung Running on its step)."""
    repo = make_repo({".dstack/workflows.yaml": WORKFLOWS})
    name = submitted_name(cli("run", "sleeper", "-d", cwd=repo).out)
    wait_until(lambda: marker_processes(f"RUN_NAME={name}"), 60)

    os.kill(supervisor_pid(dstack_home / "runs" / name), signal.SIGTERM)

    with PrefectAPI(prefect_server.url) as api:
        row = wait_finished(api, name, timeout=30)
        fr = api.flow_run_by_name(name)
    assert ("failed", "CRASHED") == (row.status, fr["state"]["type"])
    assert [] == marker_processes(f"DSTACK_FLOW_RUN_ID={fr['id']}")

