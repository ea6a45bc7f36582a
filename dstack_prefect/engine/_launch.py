"""Starting a run: create its flow run and run it in a detached process.

`launch()` forks once prefect is imported (no threads exist yet, so forking is safe and the
child skips the ~1.5 s import). The child leaves the terminal's session (setsid), creates the
flow run, reports its id and name through a pipe, and runs the flow; the parent returns at
once. So a run goes on after the CLI exits (`-d`, or detach on Ctrl-C), Ctrl-C in the terminal
never reaches the steps, and `dstack stop` from any terminal works through the Prefect state.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from dstack_prefect.engine._names import next_name, random_prefix
from dstack_prefect.errors import DstackError, ServerError
from dstack_prefect.graph import Plan
from dstack_prefect.settings import Settings


@dataclass
class Launched:
    flow_run_id: str
    name: str
    log_path: Path


def _flow_run_parameters(plan: Plan, repo_root: Path, options: dict[str, Any]) -> dict[str, Any]:
    return {"plan": plan.model_dump(mode="json"), "repo_root": str(repo_root), "options": options}


def create_flow_run(plan: Plan, repo_root: Path, options: dict[str, Any]) -> tuple[str, str]:
    """Create the flow run (state Pending) with a fresh adjective-animal-N name."""
    from prefect import get_client  # noqa: PLC0415
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName  # noqa: PLC0415
    from prefect.states import Pending  # noqa: PLC0415

    from dstack_prefect.engine._flow import run_workflow  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        name = plan.run_name
        if not name or name.startswith("<"):  # API callers: the CLI allocates the name itself
            prefix = random_prefix()
            taken = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=f"{prefix}-")), limit=200
            )
            name = next_name(prefix, [fr.name for fr in taken])
        parameters = _flow_run_parameters(plan.model_copy(update={"run_name": name}), repo_root, options)
        fr = client.create_flow_run(
            run_workflow,
            name=name,
            parameters=parameters,
            tags=["dstack", f"workflow:{plan.target}"],
            state=Pending(message="submitted by dstack run"),
        )
    return str(fr.id), name


def _child(write_fd: int, plan: Plan, repo_root: Path, options: dict[str, Any], settings: Settings) -> None:
    """The detached supervisor: never returns."""
    code = 0
    try:
        os.setsid()
        log_dir = settings.runs_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"supervisor-{os.getpid()}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        try:
            flow_run_id, name = create_flow_run(plan, repo_root, options)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which renders it
            traceback.print_exc()
            os.write(write_fd, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            os.close(write_fd)
            os._exit(1)
        final_log = log_dir / name / "supervisor.log"
        final_log.parent.mkdir(parents=True, exist_ok=True)
        os.rename(log_path, final_log)
        (final_log.parent / "supervisor.pid").write_text(str(os.getpid()))
        os.write(write_fd, json.dumps({"id": flow_run_id, "name": name, "log": str(final_log)}).encode())
        os.close(write_fd)
        _cleanup_leftovers(settings)
        run_existing(flow_run_id)
    except BaseException:  # noqa: BLE001 - a detached child must never unwind into the CLI
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _cleanup_leftovers(settings: Settings) -> None:
    """The "next command cleans up" rule, off the CLI's critical path: this run's process does it."""
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    from dstack_prefect.engine._api import PrefectAPI  # noqa: PLC0415
    from dstack_prefect.engine._runs import cleanup_leftovers  # noqa: PLC0415

    try:
        with PrefectAPI(str(PREFECT_API_URL.value())) as api:
            cleanup_leftovers(api, settings)
    except DstackError:
        traceback.print_exc()


def run_existing(flow_run_id: str) -> None:
    """Run the flow of an existing flow run in this process."""
    from prefect import get_client  # noqa: PLC0415
    from prefect.flow_engine import run_flow_sync  # noqa: PLC0415

    from dstack_prefect.engine._flow import run_workflow  # noqa: PLC0415

    with get_client(sync_client=True) as client:
        fr = client.read_flow_run(UUID(flow_run_id))
    run_flow_sync(run_workflow, flow_run=fr, parameters=fr.parameters, return_type="state")


def launch(plan: Plan, repo_root: Path, options: dict[str, Any], settings: Settings) -> Launched:
    """Start the run in a detached process and return its name once the flow run exists."""
    import prefect.flow_engine  # noqa: F401, PLC0415 - import before fork: the child reuses it

    import dstack_prefect.engine._flow  # noqa: F401, PLC0415

    if threading.active_count() > 1:  # forking with threads is unsafe: run via a fresh interpreter
        return _launch_exec(plan, repo_root, options, settings)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(write_fd, plan, repo_root, options, settings)
    os.close(write_fd)
    return _read_report(read_fd, pid, settings)


def _read_report(read_fd: int, pid: int, settings: Settings) -> Launched:
    data = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_fd], [], [], 0.5)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                data += chunk
    finally:
        os.close(read_fd)
    with _suppress_child():
        os.waitpid(pid, os.WNOHANG)
    if not data:
        msg = "the run's supervisor process exited before creating the run"
        raise ServerError(msg, hint=f"see the supervisor logs in {settings.runs_dir}")
    report = json.loads(data)
    if "error" in report:
        msg = f"could not create the run: {report['error']}"
        raise ServerError(msg, hint="check `dstack server status`")
    return Launched(flow_run_id=report["id"], name=report["name"], log_path=Path(report["log"]))


class _suppress_child:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ChildProcessError


def _launch_exec(plan: Plan, repo_root: Path, options: dict[str, Any], settings: Settings) -> Launched:
    """Fallback for a caller with threads: create the run here, run it in a new interpreter."""
    import subprocess  # noqa: PLC0415

    try:
        flow_run_id, name = create_flow_run(plan, repo_root, options)
    except Exception as exc:
        msg = f"could not create the run: {exc}"
        raise DstackError(msg) from exc
    log_path = settings.runs_dir / name / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "dstack_prefect.engine", flow_run_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Launched(flow_run_id=flow_run_id, name=name, log_path=log_path)
