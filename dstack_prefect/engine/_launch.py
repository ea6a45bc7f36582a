"""Starting a run: create its flow run over REST, then run it in a detached supervisor process.

The CLI never imports prefect (~1 s). It creates the flow run (state Pending) through the REST
API and hands it to the warm launcher (`_launcher.py`: a process beside the local server that
has paid the import once and forks a supervisor per run); without one, it starts the supervisor
as a fresh interpreter, `python -m dstack_prefect.engine FLOW_RUN_ID`. Either way the supervisor
leads its own session, so a run goes on after the CLI exits (`-d`, or detach on Ctrl-C), Ctrl-C
in the terminal never reaches the steps, and `dstack stop` from any terminal works through the
Prefect state.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dstack_prefect.engine._api import PrefectAPI
from dstack_prefect.engine._launcher import hand_off, start_launcher
from dstack_prefect.engine._status import FINAL_STATE_TYPES
from dstack_prefect.errors import DstackError, RunNotFoundError
from dstack_prefect.graph import Plan
from dstack_prefect.server import spawn_detached, write_pid_file
from dstack_prefect.settings import Settings

FLOW_NAME = "dstack-run"  # the run flow's name (engine/_flow.py), without importing prefect


@dataclass
class Launched:
    flow_run_id: str
    name: str
    log_path: Path
    warm: bool
    """True when the warm launcher forked the supervisor; False for a fresh interpreter."""


def flow_run_parameters(plan: Plan, repo_root: Path, options: dict[str, Any]) -> dict[str, Any]:
    return {"plan": plan.model_dump(mode="json"), "repo_root": str(repo_root), "options": options}


def create_flow_run(api: PrefectAPI, plan: Plan, repo_root: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The run's flow run (state Pending), named ``plan.run_name``, tagged dstack and workflow:W;
    DstackError when another run took the name at the same moment (``claim_run_name``)."""
    from dstack_prefect.engine._names import claim_run_name  # noqa: PLC0415

    fr = api.create_flow_run(
        api.ensure_flow(FLOW_NAME),
        name=plan.run_name,
        parameters=flow_run_parameters(plan, repo_root, options),
        tags=["dstack", f"workflow:{plan.target}"],
    )
    claim_run_name(api, fr)
    return fr


def launch(
    api: PrefectAPI,
    plan: Plan,
    repo_root: Path,
    options: dict[str, Any],
    settings: Settings,
    *,
    managed: bool,
) -> Launched:
    """Create the run's flow run and start its supervisor; return once both exist.

    ``plan.run_name`` is the run's name (the CLI allocates it). ``managed``: the server is the
    local one dstack started, so a warm launcher may be started beside it for later runs.
    """
    flow_run_id = str(create_flow_run(api, plan, repo_root, options)["id"])
    log_path = settings.runs_dir / plan.run_name / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid, why_not = hand_off(settings, flow_run_id, log_path)
    if pid is not None:
        return Launched(flow_run_id=flow_run_id, name=plan.run_name, log_path=log_path, warm=True)
    argv = [sys.executable, "-P", "-m", "dstack_prefect.engine", flow_run_id]  # -P: the installed code
    proc = spawn_detached(argv, log_path)
    write_pid_file(log_path.parent / "supervisor.pid", proc.pid)
    if managed and why_not in ("absent", "stale"):
        start_launcher(settings, replace=why_not == "stale")  # for the next run, not this one
    return Launched(flow_run_id=flow_run_id, name=plan.run_name, log_path=log_path, warm=False)


def supervise(flow_run_id: str) -> None:
    """The supervisor's work: clean up after dead runs (the "next command cleans up" rule, off
    the CLI's critical path), then run the flow of the existing flow run in this process."""
    from prefect.client.schemas.objects import FlowRun  # noqa: PLC0415
    from prefect.flow_engine import run_flow_sync  # noqa: PLC0415
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    from dstack_prefect.engine._flow import prefetch_results, run_workflow  # noqa: PLC0415
    from dstack_prefect.engine._runs import cleanup_leftovers  # noqa: PLC0415
    from dstack_prefect.settings import get_settings  # noqa: PLC0415

    api_url = str(PREFECT_API_URL.value())
    with contextlib.suppress(DstackError, ValueError):  # a bad setting: the flow says so itself
        prefetch_results(get_settings().store_url)  # loads while the flow engine starts

    def cleanup() -> None:
        try:
            with PrefectAPI(api_url) as api:
                cleanup_leftovers(api, get_settings())
        except DstackError:
            traceback.print_exc()

    cleaner = threading.Thread(target=cleanup, name="dstack-cleanup", daemon=True)
    cleaner.start()  # beside the run's start, not before it
    from prefect.events.worker import EventsWorker  # noqa: PLC0415
    from prefect.logging.handlers import APILogWorker  # noqa: PLC0415

    try:
        with PrefectAPI(api_url) as api:  # no Prefect client: its TLS context alone costs ~30 ms
            found = api.flow_run(flow_run_id)
        if found is None:
            msg = f"there is no flow run {flow_run_id} on {api_url}"
            raise RunNotFoundError(msg)
        if (found.get("state") or {}).get("type") in FINAL_STATE_TYPES:  # stopped before it started
            print(f"the run ended before it started: {found['state'].get('name')}", flush=True)
            return
        fr = FlowRun.model_validate(found)
        run_flow_sync(run_workflow, flow_run=fr, parameters=fr.parameters, return_type="state")
    finally:  # task-run states travel as events: ship them before the process ends (os._exit)
        cleaner.join(timeout=30)
        EventsWorker.drain_all(timeout=10)
        APILogWorker.drain_all(timeout=10)


def supervisor_main(flow_run_id: str) -> None:
    """`python -m dstack_prefect.engine FLOW_RUN_ID`: supervise, exit non-zero on a crash."""
    try:
        supervise(flow_run_id)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: the flow has reported its final state
