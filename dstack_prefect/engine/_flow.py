"""The run flow: one Prefect flow run per dstack run, one task run per step.

The flow body is self-contained, so it behaves the same in the detached supervisor of
`dstack run` (forked by the warm launcher, or a fresh interpreter) and under a Prefect worker
that picked up an API-triggered run: it starts its reaper and cancel watcher, checks every
step's resources before anything runs, schedules steps as their deps finish, and returns the
run's final state (Done, Failed with the step and exit code, Stopped, Aborted).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from secrets import token_urlsafe
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, wait
from prefect.logging.handlers import APILogWorker
from prefect.logging.loggers import PrefectLogAdapter, get_logger
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelled, Completed, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from dstack_prefect.engine import _artifacts as artifacts
from dstack_prefect.engine._api import PrefectAPI
from dstack_prefect.engine._cache import decide, fingerprint, record_done
from dstack_prefect.engine._guards import CancelWatcher, Reaper
from dstack_prefect.engine._launch import FLOW_NAME
from dstack_prefect.engine._relay import open_relays
from dstack_prefect.engine._runs import (
    RUN_NOTE_LOGGER,
    STEP_NOTE_LOGGER,
    STEP_OUTPUT_LOGGER,
    adopt_run,
    kill_step_processes,
    set_run_tag,
    step_logger_name,
)
from dstack_prefect.engine._runtime import Runtime, host_env
from dstack_prefect.engine._secrets import Secrets, resolve_step_secrets, secret_env_name
from dstack_prefect.engine._shipper import LogShipper
from dstack_prefect.engine._snapshot import copy_snapshot, copy_tree, large_snapshot_note, take_snapshot
from dstack_prefect.engine._status import ABORTED, DONE, STOPPED
from dstack_prefect.errors import DstackError, NoWorkflowsError, StepFailedError
from dstack_prefect.executors import Executor, StepJob, StepResult
from dstack_prefect.executors._python import find_python, missing_python_note, write_shims
from dstack_prefect.executors.local import LocalExecutor, Machine, check_gpus, detect_machine
from dstack_prefect.graph import (
    IDE_PROVIDERS,
    TOKEN_VARIABLE,
    Plan,
    Step,
    ide_url,
)
from dstack_prefect.settings import get_settings
from dstack_prefect.storage import ArtifactStore, Manifest

_RUNTIMES: dict[str, Runtime] = {}
T = TypeVar("T")


def secret_value(name: str) -> str | None:
    """``DSTACK_SECRET_<NAME>`` from the environment that started the run, else the secret
    stored with `dstack secrets add` (a Prefect Secret block); None when neither exists."""
    value = os.environ.get(secret_env_name(name))
    if value is not None:
        return value
    with PrefectAPI(str(PREFECT_API_URL.value())) as api:
        return Secrets(api).get(name)


def with_hint(exc: DstackError) -> str:
    """The error's message with what to do next: a run's failure keeps only its message, so
    the hint rides in it (once), on a line of its own after a located, several-line message."""
    if exc.hint and exc.hint not in exc.message:
        return f"{exc.message}{chr(10) if chr(10) in exc.message else '; '}{exc.hint}"
    return exc.message


@task(name="step", persist_result=False, retries=0)
def run_step(step_name: str, flow_run_id: str) -> Any:
    """Run one step, or reuse an earlier identical one: deps in, commands, artifacts out.

    A step that fails for a reason dstack can say (its exit code, a missing dep artifact) ends
    Failed with that message, as its task run's state message: raised, it would read "Task run
    encountered an exception ..." in Prefect, with a Python traceback in the run's logs."""
    try:
        return _run_step(step_name, flow_run_id)
    except StepFailedError as exc:
        return Failed(message=exc.message)
    except DstackError as exc:
        return Failed(message=with_hint(exc))


def _run_step(step_name: str, flow_run_id: str) -> Any:
    rt = _RUNTIMES[flow_run_id]
    step = rt.plan.step(step_name)
    notes = _notes(
        rt, step_logger_name(STEP_NOTE_LOGGER, step_name), getattr(get_run_logger(), "extra", None) or {}
    )
    if rt.stop_mode:
        return Cancelled(name=STOPPED, message="stopped before it started")
    deps = [rt.results[u] for u in step.upstream if u in rt.results]
    deps += artifacts.tag_manifests(rt.store, step)
    fp = fingerprint(step, rt.code_hashes, deps, rt.executor_for(step).name)
    force = rt.forced(step.name)
    assert rt.history is not None
    decision = decide(
        rt.store,
        step,
        fp,
        repo_id=rt.repo_id,
        force=force,
        reuse_latest=bool(rt.options.get("reuse")) and step.name != rt.plan.target,
        candidates=[] if force else rt.history.candidates(step.name, fp.key),
    )
    if decision.action == "reuse" and decision.manifest is not None:
        source = decision.manifest
        notes.info(f"reusing {step.name} from run {source.run} ({decision.reason})")
        reused = rt.store.copy_manifest(
            source, rt.run_name, {"reused_from": source.run, "flow_run_id": flow_run_id}
        )
        record_done(rt.store, reused)
        rt.results[step.name] = source  # dependents read the original: errors name the run that made it
        _manifest_artifact(rt, step, reused)
        return Completed(name="Cached", data=reused.model_dump(mode="json"))
    notes.info(f"running {step.name} ({decision.reason})")
    workdir = rt.workdir(step)
    workdir.mkdir(parents=True, exist_ok=True)
    copy_snapshot_dir(rt.code_dir, workdir)
    downloads = any(m.files for m in deps) or artifacts.keeps_caches(step)
    if downloads:
        rt.phase(step.name, "Downloading")
    for replaced in artifacts.place_deps(rt.store, step, workdir, deps):
        notes.info(replaced)
    artifacts.restore_caches(rt.store, rt.repo_id, step, workdir)
    artifacts.make_artifact_folders(step, workdir)
    if downloads:
        rt.phase(step.name, "Running")
    container = rt.executor_for(step).name != "local"
    paths, lost = artifacts.collected_paths(step, container=container)
    for path in lost:
        notes.warning(
            f"artifact {path} is in the container's home and is not saved: "
            "declare a path under the working directory (e.g. output/) or an absolute one"
        )
    if not container:
        for path in artifacts.absolute_dep_paths(deps):
            notes.warning(
                f"dep artifact {path} is at {artifacts.ABSOLUTE_ROOT}{path} in the working directory:"
                " a local step does not write outside it; with --docker it is mounted at its path"
            )
    with artifacts.MountSync(
        rt.store,
        rt.run_name,
        step,
        workdir,
        container=container,
        notes=notes,
        interval=rt.settings.mount_sync_interval,
    ) as sync:
        result = _execute(rt, step, workdir, flow_run_id, notes, deps)
    if rt.mode() == "abort":
        sync.final()  # its mount artifacts stay as they were, as old dstack's mounted folders did
        return Cancelled(name=ABORTED, message=f"step '{step.name}' aborted; artifacts not saved{sync.kept}")
    stopped = result.stopped or rt.mode() == "stop"
    if not stopped and result.exit_code != 0:
        sync.final()
        why = result.message or ("out of memory" if result.oom else f"exit code {result.exit_code}")
        msg = f"step '{step.name}' failed: {why}"
        raise StepFailedError(msg, exit_code=result.exit_code)
    status = "stopped" if stopped else "done"
    extra = {"status": status, "repo_id": rt.repo_id, "flow_run_id": flow_run_id, **fp.extra()}
    uploads = bool(step.artifacts) or artifacts.keeps_caches(step)
    if uploads:
        rt.phase(step.name, "Uploading")
    try:
        manifest = artifacts.save(rt.store, rt.run_name, step, workdir, paths, extra, container=container)
        for entry in manifest.skipped:
            notes.warning(f"artifact file {entry['path']} is not saved: {entry['reason']}")
        record_done(rt.store, manifest)  # only a done one: a stopped step is never reused
        sync.drop()
        artifacts.save_caches(rt.store, rt.repo_id, step, workdir)
    finally:
        if uploads:
            rt.phase(step.name, "Running")
    _manifest_artifact(rt, step, manifest)
    if stopped:
        return Cancelled(name=STOPPED, message=f"step '{step.name}' stopped; artifacts saved")
    rt.results[step.name] = manifest
    return manifest.model_dump(mode="json")


def _local_python(name: str, version: str, env: dict[str, str], workdir: Path, notes: Any) -> dict[str, str]:
    """A local step's `python:` put first on its PATH (``executors/_python.py``), or a warning
    that it runs with the machine's python3."""
    path = env.get("PATH", os.defpath)
    exe = find_python(version, path)
    if exe is None:
        notes.warning(missing_python_note(name, version, path))
        return env
    shims = workdir.parent / f".python-{name}"  # beside the step's folder: removed with it
    write_shims(exe, shims)
    return {**env, "PATH": f"{shims}{os.pathsep}{path}"}


class ShippedNotes:
    """dstack's notes on a run or a step, sent by the run's log shipper: in one queue with the
    steps' output lines, so "running train" is on the server (and on the screen of an attached
    run) before train's first line, and the run's final state waits for them as for the lines.
    Prefect's logger takes a note that comes after the shipper closed."""

    def __init__(self, shipper: LogShipper, name: str, extra: Mapping[str, Any]) -> None:
        self.shipper = shipper
        self.name = name
        self.extra = dict(extra)

    def _log(self, level: int, message: str) -> None:
        task_run_id = self.extra.get("task_run_id")
        try:
            self.shipper.add(
                self.name,
                message,
                str(self.extra["flow_run_id"]),
                str(task_run_id) if task_run_id else None,
                level=level,
            )
        except RuntimeError:  # closed: the run is ending
            _logger(self.name, self.extra).log(level, message)

    def info(self, message: str) -> None:
        self._log(logging.INFO, message)

    def warning(self, message: str) -> None:
        self._log(logging.WARNING, message)

    def error(self, message: str) -> None:
        self._log(logging.ERROR, message)


def _notes(rt: Runtime, name: str, extra: Mapping[str, Any]) -> Any:
    """Notes on logger ``name``: shipped with the output lines where the run has a shipper."""
    return ShippedNotes(rt.shipper, name, extra) if rt.shipper is not None else _logger(name, extra)


def _logger(name: str, extra: Mapping[str, Any]) -> PrefectLogAdapter:
    """A run logger on ``name`` carrying the run's ids, so its records are the run's logs."""
    return PrefectLogAdapter(get_logger(name), extra=dict(extra))


def _execute(
    rt: Runtime, step: Step, workdir: Path, flow_run_id: str, notes: Any, deps: list[Manifest]
) -> StepResult:
    """Run the step's commands with its executor; every output line becomes a Prefect log (the
    task run's, on logger ``prefect.task_runs.dstack.out.<step>``), shipped by ``rt.shipper``."""
    out_name = step_logger_name(STEP_OUTPUT_LOGGER, step.name)
    out = _logger(out_name, notes.extra or {}) if rt.shipper is None else None
    task_run_id = (notes.extra or {}).get("task_run_id")
    executor = rt.executor_for(step)
    slot = rt.slots[step.name]
    ports = rt.allocate_ports(step)
    step_for_run, secret_values = resolve_step_secrets(step, secret_value)
    ide = {TOKEN_VARIABLE[step.provider]: token_urlsafe(24)} if step.provider in IDE_PROVIDERS else {}
    env = rt.step_env(step_for_run, slot, ports, ide)
    if executor.name == "local":
        env = {**host_env(), **env}
        if step.python:
            env = _local_python(step.name, step.python, env, workdir, notes)
    redact = [v for v in secret_values if v]

    def on_line(line: str) -> None:
        for v in redact:
            line = line.replace(v, "***")
        if rt.shipper is not None:
            rt.shipper.add(out_name, line, flow_run_id, task_run_id)
        elif out is not None:
            out.info(line)

    locals_ = [spec.local_port for spec in step.ports]
    relays = open_relays(locals_, ports) if executor.host_network else []
    for i, port in enumerate(ports):
        local = locals_[i] or port
        if i == 0 and ide:
            notes.info(ide_url(step.provider, local, next(iter(ide.values()))))
            continue
        notes.info(
            f"$PORT_{i}: http://127.0.0.1:{local}" + (f" (the app's port {port})" if local != port else "")
        )
    job = StepJob(
        run_name=rt.run_name,
        step=step_for_run,
        workdir=workdir,
        env=env,
        on_line=on_line,
        gpus=slot.gpus,
        ports=ports,
        labels={"dstack.run": rt.run_name, "dstack.step": step.name, "dstack.flow-run-id": flow_run_id},
        mounts=(
            {
                **artifacts.container_cache_mounts(rt.settings.home, rt.repo_id, step),
                **artifacts.container_artifact_mounts(step, workdir, deps),
            }
            if executor.name == "docker"
            else {}
        ),
    )
    try:
        handle = executor.start(job)
    except BaseException:
        for relay in relays:
            relay.close()
        raise
    if rt.reaper is not None:
        rt.reaper.tell(_reaper_line(handle.identifier))
    with rt.lock:
        rt.handles[step.name] = (executor, handle)
        stop_now = rt.stop_mode
    if stop_now:  # a stop arrived while the step was starting
        executor.stop(handle, 0 if stop_now == "abort" else rt.settings.stop_grace)
    try:
        return executor.wait(handle)
    finally:
        rt.stopped(step.name)
        if executor.name == "local":  # what left its group (`setsid`) ends with the step too
            kill_step_processes(flow_run_id, step.name)
        for relay in relays:
            relay.close()
        with rt.lock:
            rt.handles.pop(step.name, None)
        if rt.reaper is not None:
            rt.reaper.tell("un" + _reaper_line(handle.identifier))


def _manifest_artifact(rt: Runtime, step: Step, manifest: Manifest) -> None:
    """The step's files as a table artifact in the Prefect UI."""
    rows = [{"path": f.path, "size": f.size, "sha256": f.sha256[:16]} for f in manifest.files[:500]]
    key = re.sub(r"[^a-z0-9-]+", "-", f"{rt.run_name}-{step.name}".lower()).strip("-")
    if not manifest.files:  # nothing to show; saves an API call per artifact-less step
        return
    with contextlib.suppress(Exception):  # UI metadata must never fail a step
        create_table_artifact(
            rows,
            key=key,
            description=f"Artifacts of step {step.name} (run {manifest.run}) in {rt.store.url}",
        )


def _reaper_line(identifier: str) -> str:
    kind, _, ident = identifier.partition(":")
    return f"pg {ident}" if kind == "local" else f"ctr {ident}"


def copy_snapshot_dir(code_dir: Path, workdir: Path) -> None:
    copy_tree(code_dir, workdir)


def plan_from_parameters(
    plan: dict[str, Any], repo_root: Path, run_name: str, warn: Callable[[str], None] = lambda _: None
) -> Plan:
    """The plan `dstack run` sent, or, for a run triggered through the Prefect API or UI with
    ``{"workflow": NAME, "args": [...]}``, the plan built here from the repo's workflow files:
    as `dstack run` does, only problems of the workflows it needs stop it; the others are said
    through ``warn``."""
    if "steps" in plan:
        return Plan.model_validate(plan)
    from dstack_prefect.graph import build_plan  # noqa: PLC0415
    from dstack_prefect.spec import load_for  # noqa: PLC0415

    workflow = plan.get("workflow")
    if not isinstance(workflow, str):
        msg = "the run's `plan` parameter needs `steps` (a dstack plan) or `workflow` (a workflow name)"
        hint = 'trigger it with parameters {"plan": {"workflow": "train"}, "repo_root": "/repo"}'
        raise DstackError(msg, hint=hint)
    if not repo_root.is_dir():  # a path of the machine the run was triggered from, say
        where = "this machine, the one running the run's flow"
        msg = f"the run's repo_root '{repo_root}' is not a folder on {where}"
        raise NoWorkflowsError(msg, hint="give the repo's path as that machine sees it")
    workflows, elsewhere = load_for(repo_root, workflow)
    if elsewhere:
        warn(
            f"{len(elsewhere)} problem(s) in the workflow files that '{workflow}' does not need; "
            "`dstack validate` lists them"
        )
    return build_plan(workflows, workflow, [str(a) for a in plan.get("args", [])], run_name)


def make_executors(machine: Machine | None = None) -> dict[str, Executor]:
    """The local executor (on ``machine``, else detected when first needed), and Docker
    (connected lazily, on the first containerised step)."""
    from dstack_prefect.executors.docker import DockerExecutor  # noqa: PLC0415

    return {"local": LocalExecutor(machine), "docker": DockerExecutor()}


#: The scheduler submits only steps that can start, so threads never wait holding a slot.
_TASK_RUNNER: Any = ThreadPoolTaskRunner(max_workers=256)


@flow(name=FLOW_NAME, task_runner=_TASK_RUNNER, persist_result=False, log_prints=False)
def run_workflow(plan: dict[str, Any], repo_root: str, options: dict[str, Any] | None = None) -> State:
    """Run a dstack plan: every step a task run, deps first, independent steps in parallel."""
    options = options or {}
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    flow_run_id, run_name = str(ctx.flow_run.id), ctx.flow_run.name
    api_url = str(PREFECT_API_URL.value())
    if "steps" not in plan and isinstance(plan.get("workflow"), str):  # started by the API or UI
        with PrefectAPI(api_url) as api:
            run_name = adopt_run(api, flow_run_id, plan["workflow"])
    notes = _logger(RUN_NOTE_LOGGER, {"flow_run_id": flow_run_id, "flow_run_name": run_name})
    try:
        the_plan = plan_from_parameters(plan, Path(repo_root), run_name, warn=notes.warning)
    except DstackError as exc:
        said = with_hint(exc)
        notes.error(said)
        return Failed(message=said)
    settings = get_settings()
    reaper = Reaper(api_url, flow_run_id)
    machine = detect_machine()  # once: nvidia-smi may take seconds
    executors = make_executors(machine)
    rt = Runtime(
        the_plan,
        flow_run_id=flow_run_id,
        run_name=run_name,
        repo_root=Path(repo_root),
        settings=settings,
        executors=executors,
        machine=machine,
        reaper=reaper,
        options=options,
        api_url=api_url,
    )
    _RUNTIMES[flow_run_id] = rt
    notes = _notes(rt, RUN_NOTE_LOGGER, notes.extra or {})
    watcher = CancelWatcher(api_url, flow_run_id, rt.request_stop)
    watcher.start()
    results = _PREFETCHED.pop(rt.store.url, None) or _in_background(result_storage, rt.store)
    try:
        for step in the_plan.steps:
            rt.executor_for(step).check(step)
            check_gpus(step, machine)  # every step's GPUs come from this machine's list
        if not rt.code_dir.exists():
            tmp = rt.code_dir.with_name("code.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            snapshot = take_snapshot(rt.repo_root)
            copy_snapshot(snapshot, tmp)
            tmp.rename(rt.code_dir)
            if large := large_snapshot_note(snapshot):
                notes.warning(large)
        rt.prepare_reuse()
        watcher.looked.wait(timeout=30)  # a stop that came before the flow started: no step runs
        state = _schedule(rt, notes, results)
        tag = options.get("tag")
        if tag and state.is_completed():
            refused = artifacts.tag_done_run(rt.store, tag, run_name, the_plan.target)
            if refused:
                notes.warning(refused)
            else:
                with PrefectAPI(api_url) as api:
                    set_run_tag(api, run_name, tag)
                notes.info(f"tagged the run as {tag}")
        elif tag:
            notes.warning(f"the run is not tagged {tag}: only a run whose steps are all done is tagged")
        return state
    except DstackError as exc:
        said = with_hint(exc)
        notes.error(said)
        return Failed(message=said)
    finally:
        watcher.halt()
        rt.close()
        APILogWorker.drain_all(timeout=10)  # every step line is on the server before the end state
        reaper.done()
        _RUNTIMES.pop(flow_run_id, None)
        for ex in executors.values():
            ex.close()
        rt.cleanup()


def result_storage(store: ArtifactStore) -> Any:
    """A Prefect block for `<store>/results`, so each step's manifest is its persisted task result
    (JSON) in the same store. None when the block cannot be saved (the run goes on without it)."""
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem  # noqa: PLC0415

    url = store.url
    name = "dstack-results-" + hashlib.sha256(url.encode()).hexdigest()[:12]
    if "://" in url and not url.startswith("file://"):
        block: Any = RemoteFileSystem(basepath=url.rstrip("/") + "/results", settings=store.storage_options)
    else:
        block = LocalFileSystem(basepath=str(Path(url.removeprefix("file://")) / "results"))
    try:  # one call when an earlier run saved it (same name, same basepath), else save it
        return type(block).load(name)  # the saved instance: tasks need no API call per slug
    except Exception:  # noqa: BLE001 - not saved yet (or changed): save it below
        pass
    try:
        block.save(name, overwrite=True)
    except Exception:  # noqa: BLE001 - results are a convenience; the store holds the manifests
        return None
    return block


_PREFETCHED: dict[str, Callable[[], Any]] = {}
"""Results blocks being loaded ahead of the run, by store URL (``prefetch_results``)."""


def prefetch_results(store_url: str) -> None:
    """Start loading the results block of ``store_url`` in a thread; the run on that store takes
    it instead of loading its own. The supervisor calls this before the flow engine starts
    (~0.15 s of API calls), so the first step no longer waits for the block (~0.07 s)."""
    store = ArtifactStore(store_url)
    _PREFETCHED[store.url] = _in_background(result_storage, store)


def _in_background(fn: Callable[..., T], *args: Any) -> Callable[[], T | None]:
    """Start ``fn(*args)`` in a thread; the returned callable waits for its result."""
    box: dict[str, T] = {}

    def target() -> None:
        box["value"] = fn(*args)

    thread = threading.Thread(target=target, name="dstack-background", daemon=True)
    thread.start()

    def result() -> T | None:
        thread.join()
        return box.get("value")

    return result


def critical_first(plan: Plan) -> list[str]:
    """The plan's steps, those with the longest chain of dependents after them first (ties in
    plan order): when slots are short, the step that holds up the most work starts first, as a
    list scheduler does (a plain topological order can leave the critical chain waiting)."""
    below: dict[str, int] = {}
    for step in reversed(plan.steps):  # dependents come later in the plan's order
        below.setdefault(step.name, 0)
        for up in step.upstream:
            below[up] = max(below.get(up, 0), below[step.name] + 1)
    order = {s.name: i for i, s in enumerate(plan.steps)}
    return sorted(order, key=lambda n: (-below[n], order[n]))


def _stop_running(rt: Runtime, futures: list[PrefectFuture[Any]]) -> None:
    """Stop the run's steps gracefully and wait for them (artifacts saved), within the 30 s a
    Prefect worker gives the flow's process after its SIGTERM; then kill what is left."""
    rt.request_stop("stop")
    if wait(futures, timeout=rt.settings.stop_grace + 5).not_done:
        rt.request_stop("abort")
        wait(futures, timeout=5)


def _schedule(rt: Runtime, notes: Any, pending_results: Callable[[], Any]) -> State:
    plan = rt.plan
    futures: dict[str, PrefectFuture[Any]] = {}
    finished: queue.Queue[str] = queue.Queue()
    outcome: dict[str, str] = {}  # step -> "ok" | "failed" | "stopped" | "skipped"
    messages: dict[str, str] = {}
    waiting = critical_first(plan)

    results = pending_results()

    def submit(step: Step, wait_for: list[PrefectFuture[Any]] | None = None) -> None:
        t = run_step.with_options(
            name=step.name,
            task_run_name=step.name,
            # no tags: a tagged task run asks the server for tag concurrency slots before it
            # starts (a lease round trip per step); the flow run carries the dstack tags
            persist_result=results is not None,
            result_storage=results,
            result_serializer="json",
            result_storage_key="{flow_run.id}/{task_run.task_name}.json",
        )
        fut = t.submit(step.name, rt.flow_run_id, wait_for=wait_for or [])  # type: ignore[call-overload]
        futures[step.name] = fut
        fut.add_done_callback(lambda _f, n=step.name: finished.put(n))

    try:
        while waiting or len(outcome) < len(futures):
            progressed = True
            while progressed:
                progressed = False
                for name in list(waiting):
                    step = plan.step(name)
                    bad = [u for u in step.upstream if outcome.get(u) in ("failed", "stopped", "skipped")]
                    if bad or rt.stop_mode:
                        waiting.remove(name)
                        outcome[name] = "skipped"
                        upstream = [futures[u] for u in bad if u in futures]
                        if upstream:  # shows in Prefect as NotReady, never runs
                            submit(step, wait_for=upstream)
                        progressed = True
                        continue
                    if any(outcome.get(u) != "ok" for u in step.upstream):
                        continue
                    with rt.lock:
                        slot = rt.pool.take(step)
                    if slot is None:
                        continue
                    rt.slots[name] = slot
                    waiting.remove(name)
                    submit(step)
                    progressed = True
            if len(outcome) >= len(futures) and not waiting:
                break
            try:
                name = finished.get(timeout=0.5)
            except queue.Empty:
                continue
            if name in outcome:  # a skipped step's NotReady future
                continue
            futures[name].wait()  # sets the future's final state from its own thread's result
            state = futures[name].state
            with rt.lock:
                if name in rt.slots:
                    rt.pool.give(rt.slots.pop(name))
            if state.is_completed():
                outcome[name] = "ok"
            elif state.is_cancelled():
                outcome[name] = "stopped"
            else:
                outcome[name] = "failed"
                text = state.message or f"step '{name}' failed"
                messages[name] = re.sub(r"^Task run encountered an exception \w+: ", "", text)
        for fut in futures.values():
            fut.wait()
    except BaseException:
        # Prefect's cancel of a run a worker runs (the UI's Cancel) is a SIGTERM to this process,
        # raised here as TerminationSignal before the cancel watcher sees Cancelling; the steps
        # run in sessions of their own and would outlive the run: stop them as `dstack stop` does
        _stop_running(rt, list(futures.values()))
        raise
    if rt.stop_mode == "abort":
        return Cancelled(name=ABORTED, message="aborted by request")
    if rt.stop_mode:
        return Cancelled(name=STOPPED, message="stopped by request")
    failed = [n for n in plan.steps if outcome.get(n.name) == "failed"]
    if failed:
        msg = "; ".join(messages[s.name] for s in failed)
        notes.error(msg)
        return Failed(message=msg)
    return Completed(name=DONE, message=f"{len(plan.steps)} step(s) done")
