"""The repo's prefect.yaml as a user deploys it: a real process work pool and worker run a
dstack workflow started through the Prefect API, and the dstack CLI sees that run as its own."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from tests.conftest import CLI, Server, wait_until
from tests.engine.test_local_runs import marker_processes

pytestmark = pytest.mark.service("prefect")

PROJECT = Path(__file__).resolve().parents[2]  # holds prefect.yaml

WORKFLOWS = """
workflows:
  - name: prep
    provider: bash
    commands:
      - mkdir -p data && echo "3 rows" > data/rows.txt
    artifacts: [data]
  - name: train
    provider: bash
    deps: [prep]
    commands:
      - echo "training on $(cat data/rows.txt) with ${{ run.args }}"
  - name: sleeper
    provider: bash
    commands:
      - echo "sleeping"
      - sleep 300
"""


def prefect(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def trigger(env: dict[str, str], plan: dict[str, Any], repo: Path) -> str:
    """`prefect deployment run dstack-run/local` with ``plan`` on ``repo``; the flow run's id."""
    out = prefect(
        env,
        "deployment",
        "run",
        "dstack-run/local",
        "-p",
        f"plan={json.dumps(plan)}",
        "-p",
        f"repo_root={repo}",
    )
    m = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert m, out
    return m.group(1)


@pytest.fixture(scope="module")
def deployed(prefect_server: Server) -> None:
    """The work pool and deployment of the repo's prefect.yaml, as its header says."""
    env = prefect_server.env()
    prefect(env, "work-pool", "create", "dstack-local", "--type", "process", "--overwrite")
    prefect(env, "--no-prompt", "deploy", "--all")


@contextlib.contextmanager
def worker(env: dict[str, str]) -> Iterator[None]:
    """`prefect worker start --pool dstack-local` running in the background."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "dstack-local"],
        cwd=PROJECT,
        env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.usefixtures("deployed")
def test_a_prefect_cancel_of_a_deployment_run_stops_its_step(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """`prefect flow-run cancel` (the UI's Cancel) of a run a worker runs: the flow stops its
    step as `dstack stop` does, and no process of the run is left (the step outlived it)."""
    repo = make_repo({".dstack/workflows.yaml": WORKFLOWS})
    env = prefect_server.env(dstack_home)
    fr_id = trigger(env, {"workflow": "sleeper"}, repo)
    with worker(env), PrefectAPI(prefect_server.url) as api:
        wait_until(lambda: marker_processes(f"DSTACK_FLOW_RUN_ID={fr_id}"), 120)
        prefect(env, "flow-run", "cancel", fr_id)
        wait_until(lambda: (api.flow_run(fr_id) or {})["state"]["type"] == "CANCELLED", 60)

    row = next(r for r in json.loads(cli("ps", "-a", "--json", cwd=repo).out) if r["flow_run_id"] == fr_id)
    assert "stopped" == row["status"]
    assert [] == marker_processes(f"DSTACK_FLOW_RUN_ID={fr_id}")


@pytest.mark.usefixtures("deployed")
def test_a_worker_runs_a_deployment_triggered_run_that_dstack_lists(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """`prefect deploy --all` with the repo's prefect.yaml, `prefect deployment run` with
    {"workflow": "train"}, one `prefect worker --run-once`: the run does prep then train, and
    `dstack ps` / `dstack logs` / `dstack ls` show it under a dstack run name; before its flow
    starts, `dstack ps` names its workflow from the parameters already."""
    repo = make_repo({".dstack/workflows.yaml": WORKFLOWS})
    env = prefect_server.env(dstack_home)

    fr_id = trigger(env, {"workflow": "train", "args": ["--lr", "0.1"]}, repo)
    waiting = next(r for r in json.loads(cli("ps", "--json", cwd=repo).out) if r["flow_run_id"] == fr_id)
    assert (waiting["workflow"], waiting["status"]) == ("train", "submitted")
    prefect(env, "worker", "start", "--pool", "dstack-local", "--run-once")

    rows = json.loads(cli("ps", "-a", "--json", cwd=repo).out)
    row = next(r for r in rows if r["flow_run_id"] == fr_id)
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", row["name"]), row
    assert (row["workflow"], row["status"]) == ("train", "done")
    logs = cli("logs", row["name"], cwd=repo).out
    assert "train | training on 3 rows with --lr 0.1" in logs
    assert "rows.txt" in cli("ls", row["name"], "-r", cwd=repo).out
