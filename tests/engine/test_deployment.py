"""The repo's prefect.yaml as a user deploys it: a real process work pool and worker run a
dstack workflow started through the Prefect API, and the dstack CLI sees that run as its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, Server

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


def test_a_worker_runs_a_deployment_triggered_run_that_dstack_lists(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """`prefect deploy --all` with the repo's prefect.yaml, `prefect deployment run` with
    {"workflow": "train"}, one `prefect worker --run-once`: the run does prep then train, and
    `dstack ps` / `dstack logs` / `dstack ls` show it under a dstack run name."""
    repo = make_repo({".dstack/workflows.yaml": WORKFLOWS})
    env = prefect_server.env(dstack_home)
    prefect(env, "work-pool", "create", "dstack-local", "--type", "process", "--overwrite")
    prefect(env, "--no-prompt", "deploy", "--all")

    out = prefect(
        env,
        "deployment",
        "run",
        "dstack-run/local",
        "-p",
        'plan={"workflow": "train", "args": ["--lr", "0.1"]}',
        "-p",
        f"repo_root={repo}",
    )
    m = re.search(r"UUID: ([0-9a-f-]{36})", out)
    assert m, out
    prefect(env, "worker", "start", "--pool", "dstack-local", "--run-once")

    rows = json.loads(cli("ps", "-a", "--json", cwd=repo).out)
    row = next(r for r in rows if r["flow_run_id"] == m.group(1))
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", row["name"]), row
    assert (row["workflow"], row["status"]) == ("train", "done")
    logs = cli("logs", row["name"], cwd=repo).out
    assert "train | training on 3 rows with --lr 0.1" in logs
    assert "rows.txt" in cli("ls", row["name"], "-r", cwd=repo).out
