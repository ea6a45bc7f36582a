"""What a Prefect user does to a dstack run from Prefect's side (API, CLI, UI) does what the
same thing does from dstack's side."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from tests.conftest import CLI, Server, run_through_the_api, supervisor_pid, wait_until
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


def test_a_failed_steps_task_run_says_why_without_a_traceback(
    cli: CLI, make_repo: Any, prefect_server: Server
) -> None:
    """A step that exits 3: its task run (the UI's task list, `prefect task-run ls`) is Failed
    with dstack's message, and the run's logs carry no Python traceback (the UI showed
    StepFailedError's stack, and the message behind "Task run encountered an exception")."""
    repo = make_repo(
        {
            ".dstack/workflows.yaml": WORKFLOWS
            + "  - name: fails\n    provider: bash\n    commands: [exit 3]\n"
        }
    )

    res = cli("run", "fails", cwd=repo)

    assert 1 == res.code, res.text
    with PrefectAPI(prefect_server.url) as api:
        name = re.search(r"^(\S+-\d+) ", res.out, re.M)
        assert name, res.out
        fr = api.flow_run_by_name(name.group(1))
        [task_run] = api.task_runs(fr["id"])
        logs = wait_until(lambda: api.logs(fr["id"]), 10)
    assert ("FAILED", "step 'fails' failed: exit code 3") == (
        task_run["state"]["type"],
        task_run["state"]["message"],
    )
    assert [] == [log["message"] for log in logs if "Traceback" in log["message"]]


def test_a_run_triggered_with_a_repo_root_that_is_not_there_says_so(
    prefect_server: Server, dstack_home: Path, tmp_path: Path
) -> None:
    """A deployment run whose `repo_root` is no folder on the worker's machine fails saying
    that (it said there were no workflow files in <repo_root>/.dstack)."""
    missing = tmp_path / "no-such-repo"
    with PrefectAPI(prefect_server.url) as api:
        fr = run_through_the_api(api, prefect_server, dstack_home, missing, "train", name="rootless-run-1")
        state = (api.flow_run(fr["id"]) or {})["state"]

    said = (
        f"the run's repo_root '{missing}' is not a folder on this machine, the one running the run's"
        " flow; give the repo's path as that machine sees it"
    )
    assert ("FAILED", said) == (state["type"], state["message"])
