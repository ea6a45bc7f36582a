"""Commands: run, ps, logs, stop, rm."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from dstack_prefect.cli._app import app, confirm, console, err_console, handles_errors
from dstack_prefect.cli._attach import attach, print_line, status_text
from dstack_prefect.cli._runopts import (
    RunArgsCommand,
    RunOptions,
    check_rerun_in_plan,
    split_run_options,
    unshield,
)
from dstack_prefect.cli._spec import workflows_for
from dstack_prefect.errors import DstackError, NoWorkflowsError, RunNotFoundError
from dstack_prefect.settings import Settings, get_settings

PROVIDERS = ("bash", "docker", "code", "lab", "notebook")


def _api() -> Any:
    from dstack_prefect.engine import PrefectAPI  # noqa: PLC0415
    from dstack_prefect.server import ensure_server  # noqa: PLC0415

    info = ensure_server()
    return PrefectAPI(info.url, shared=not info.managed)


def _this_homes(rows: list[Any], api: Any, settings: Settings, command: str) -> list[Any]:
    """``rows`` for `stop -a` / `rm -a`: on a server dstack does not manage (PREFECT_API_URL, a
    team server) only the runs started from this dstack home (its runs folder has them); the
    others are teammates' or another machine's, and are named one at a time or not at all."""
    if not api.shared:
        return rows
    mine = [r for r in rows if (settings.runs_dir / r.name).is_dir()]
    if len(mine) < len(rows):
        n = len(rows) - len(mine)
        console.print(
            f"Leaving {n} run(s) alone that other dstack homes started on this Prefect server "
            f"(PREFECT_API_URL); name one to {command} it: dstack {command} RUN",
            highlight=False,
        )
    return mine


def _error_cell(error: str) -> str:
    """A run's error on one line for a table: a located error's quoted source line and caret
    (indented lines) are left to `dstack logs` and `--json`."""
    return " ".join(line.strip() for line in error.splitlines() if line.strip() and not line[0].isspace())


def _runs_table(rows: list[Any], verbose: bool) -> Table:
    from dstack_prefect.engine import humanize  # noqa: PLC0415

    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("RUN", "WORKFLOW", "SUBMITTED", "STATUS", "TAG"):
        table.add_column(col, no_wrap=True)
    if verbose:
        table.add_column("ERROR")
    for r in rows:
        cells = [r.name, r.workflow, humanize(r.submitted_at), status_text(r.status), r.tag]
        if verbose:
            cells.append(_error_cell(r.error))
        table.add_row(*cells)
    return table


PLAIN_ROWS = 50
"""Past this many rows `ps` prints aligned plain text: a rich table measures every cell (0.4 s
for 1000 runs)."""


def _print_plain(rows: list[Any], verbose: bool) -> None:
    from dstack_prefect.engine import humanize  # noqa: PLC0415

    header = ["RUN", "WORKFLOW", "SUBMITTED", "STATUS", "TAG"] + (["ERROR"] if verbose else [])
    cells = [header] + [
        [r.name, r.workflow, humanize(r.submitted_at), r.status.capitalize(), r.tag]
        + ([_error_cell(r.error)] if verbose else [])
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells]
    sys.stdout.write("\n".join(lines) + "\n")


def _load_workflows(target: str) -> tuple[Any, Path]:
    """The repo's workflows and root; (None, cwd) for provider mode outside a repo."""
    from dstack_prefect.spec import find_repo_root  # noqa: PLC0415

    try:
        root = find_repo_root(Path.cwd())
    except NoWorkflowsError:
        if target not in PROVIDERS:
            raise
        if Path.cwd() == Path.home():
            msg = f"`dstack run {target}` here would copy your whole home folder as the run's code"
            raise DstackError(msg, hint="cd into the project folder it should run in") from None
        return None, Path.cwd()
    return workflows_for(root, target, "run")[0], root  # as plan does: warnings, problems elsewhere


def _workflow_names_hint() -> str:
    """The workflows `dstack run` could run here: those valid on their own, also when another
    workflow has a problem (it named none then)."""
    from dstack_prefect.spec import check_workflows, find_repo_root  # noqa: PLC0415

    try:
        names = sorted(check_workflows(find_repo_root(Path.cwd()))[0].by_name)
    except DstackError:
        names = []
    if not names:
        return "dstack run WORKFLOW, or a provider: dstack run bash -c 'echo hi'"
    return "workflows here: " + ", ".join(names)


def _build(
    workflows: Any, target: str, argv: list[str], run_name: str = "<run-name>"
) -> tuple[Any, RunOptions]:
    from dstack_prefect.graph import build_plan  # noqa: PLC0415

    opts = split_run_options(argv, set(workflows.by_name) if workflows else set())
    plan = build_plan(workflows, target, opts.rest, run_name)
    check_rerun_in_plan(opts, [s.name for s in plan.steps])
    return plan, opts


@app.command(
    cls=RunArgsCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@handles_errors
def run(
    ctx: typer.Context,
    workflow: Annotated[
        str | None,
        typer.Argument(
            metavar="WORKFLOW", help="A workflow name, or a provider (bash, docker, ...)", show_default=False
        ),
    ] = None,
    detach: Annotated[bool, typer.Option("-d", "--detach", help="Print the run name and return")] = False,
    docker: Annotated[bool, typer.Option("--docker", help="Run every step in a container")] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Name the run (unique); default adjective-animal-N"),
    ] = None,
) -> None:
    """Run a workflow and the workflows it depends on; stream its logs until it ends.

    Options after WORKFLOW override the YAML (-e K=V, -a PATH, --dep, -w DIR, -i, --cpu N,
    --memory SIZE, --gpu N, --gpu-name NAME, --gpu-memory SIZE, --shm-size SIZE, -p PORT);
    any other tokens become ${{ run.args }}. A step whose inputs are unchanged is reused;
    --rerun [W ...] forces, --reuse takes each dep's latest done run whatever changed, -t TAG
    tags the run once it is done (a new tag). Ctrl-C asks whether to stop or detach; twice aborts.

    Example: dstack run train -e EPOCHS=3 -- --lr 0.01
    """
    from dstack_prefect.engine import PrefectAPI, run_row  # noqa: PLC0415
    from dstack_prefect.engine._launch import launch  # noqa: PLC0415
    from dstack_prefect.engine._names import check_run_name  # noqa: PLC0415
    from dstack_prefect.engine._runs import allocate_name  # noqa: PLC0415
    from dstack_prefect.server import ensure_server  # noqa: PLC0415

    if workflow is None:  # old dstack: the help, exit 1
        console.print(ctx.get_help(), highlight=False, markup=False)
        msg = "name a workflow to run"
        raise DstackError(msg, hint=_workflow_names_hint())
    if name is not None:
        check_run_name(name)
    settings = get_settings()
    workflows, root = _load_workflows(workflow)  # YAML mistakes show before the server starts
    argv = unshield(list(ctx.args))
    draft, draft_opts = _build(workflows, workflow, argv)
    _check_steps(draft, docker)  # a step that cannot run here fails before anything runs
    _check_tag_deps(draft, settings)
    if draft_opts.tag:
        _check_new_tag(draft_opts.tag, settings)
    already = os.environ.get("PREFECT_API_URL")
    info = ensure_server(settings)
    if not already:
        err_console.print(f"[dim]Prefect UI: {info.ui_url}[/]", highlight=False)
    api = PrefectAPI(info.url)
    if name is not None:
        _check_unused_name(api, name)
    plan, opts = _build(workflows, workflow, argv, name or allocate_name(api))
    options = {
        "executor": "docker" if docker else settings.executor,
        "rerun": opts.rerun,
        "reuse": opts.reuse,
        "tag": opts.tag,
    }
    _check_secrets(api, plan)  # a missing secret fails before anything runs
    if not opts.rerun and _record_if_all_reused(api, plan, root, options, settings):
        return
    launched = launch(api, plan, root, options, settings, managed=info.managed)
    fr = api.flow_run(launched.flow_run_id) or {}
    console.print(_runs_table([run_row(fr)], verbose=False)) if fr else None
    if detach:
        console.print(
            f"Run [bold]{launched.name}[/] submitted; follow it with `dstack logs {launched.name} -a`"
        )
        return
    code = attach(api, launched.flow_run_id, launched.name, multi=len(plan.steps) > 1, settings=settings)
    raise typer.Exit(code)


def _check_unused_name(api: Any, name: str) -> None:
    """`--name` picks a new name: runs are found by name (`dstack logs NAME`), so it is unique."""
    from dstack_prefect.engine import run_row  # noqa: PLC0415

    try:
        row = run_row(api.flow_run_by_name(name))
    except RunNotFoundError:
        return
    msg = f"a run named '{name}' exists ({row.workflow}, {row.status})"
    hint = f"pick another --name, or remove that run first: dstack rm {name}"
    if row.status not in ("done", "failed", "stopped", "aborted"):
        hint = f"pick another --name (that run is {row.status})"
    raise DstackError(msg, hint=hint)


def _check_secrets(api: Any, plan: Any) -> None:
    from dstack_prefect.engine._secrets import Secrets, secret_env_name  # noqa: PLC0415
    from dstack_prefect.graph import secret_refs  # noqa: PLC0415

    names = sorted({name for step in plan.steps for name in secret_refs(step)})
    secrets = Secrets(api)
    missing = [n for n in names if secret_env_name(n) not in os.environ and not secrets.exists(n)]
    if missing:
        msg = f"the run needs secret(s) that are not set: {', '.join(missing)}"
        first = missing[0]
        hint = f"add each with `dstack secrets add {first}`, or set {secret_env_name(first)} for the run"
        raise DstackError(msg, hint=hint)


def _check_tag_deps(plan: Any, settings: Settings) -> None:
    """A tag a step depends on is in the store, before the server starts and the run begins."""
    if not any(d.kind == "tag" for step in plan.steps for d in step.deps):
        return
    from dstack_prefect.engine._artifacts import tag_manifests  # noqa: PLC0415
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    store = ArtifactStore(settings.store_url)
    for step in plan.steps:
        tag_manifests(store, step)


def _check_new_tag(tag: str, settings: Settings) -> None:
    """`-t TAG` names a new tag: moving an existing one is `dstack tags add TAG RUN -y`."""
    from dstack_prefect.errors import ArtifactNotFoundError  # noqa: PLC0415
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    try:
        existing = ArtifactStore(settings.store_url).get_tag(tag)
    except ArtifactNotFoundError:
        return
    msg = f"tag '{tag}' already names run {existing.run}"
    hint = f"pick another name, or delete it first: dstack tags delete {tag}"
    raise DstackError(msg, hint=hint)


def _record_if_all_reused(
    api: Any, plan: Any, root: Path, options: dict[str, Any], settings: Settings
) -> bool:
    """When every step would be reused, record the run without starting a flow process."""
    from dstack_prefect.engine import run_row  # noqa: PLC0415
    from dstack_prefect.engine._cache import plan_decisions  # noqa: PLC0415
    from dstack_prefect.engine._cached import all_reused, record_cached_run  # noqa: PLC0415
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    store = ArtifactStore(settings.store_url)
    decisions = plan_decisions(
        plan, store, root, reuse=bool(options.get("reuse")), executor=str(options["executor"])
    )
    if not all_reused(decisions):
        return False
    recorded = record_cached_run(api, store, plan, decisions, root, options)
    fr = recorded.flow_run
    console.print(_runs_table([run_row(fr)], verbose=False))
    for step in plan.steps:
        d = decisions[step.name]
        run = d.manifest.run if d.manifest else "?"
        note = f"{step.name}: reusing {step.name} from run {run} ({d.reason})"  # as the run's log says
        err_console.print(note, style="dim", highlight=False, markup=False, soft_wrap=True)
    if recorded.warning:
        err_console.print(f"warning: {recorded.warning}", style="yellow", highlight=False, markup=False)
    console.print(
        status_text("done") + f": every step reused, nothing ran (run {fr['name']})", soft_wrap=True
    )
    return True


def _check_steps(plan: Any, docker: bool, *, pull: bool = True) -> None:
    """Resources, and for containerised steps the engine, images and NVIDIA runtime (pulling a
    missing docker-provider image unless not ``pull``, as for `dstack plan`)."""
    from dstack_prefect.executors.local import LocalExecutor, check_gpus  # noqa: PLC0415

    local = LocalExecutor()
    containerised = [s for s in plan.steps if docker or s.provider == "docker" or s.image]
    for step in plan.steps:
        if step.resources.interruptible:
            note = (
                f"warning: {step.name}: interruptible (spot capacity) does not apply to steps run on "
                "this machine; ignored"
            )
            err_console.print(note, style="yellow", highlight=False, markup=False)
        if step not in containerised:
            local.check(step)
            if step.resources.shm_size_mib:
                note = f"warning: {step.name}: shm_size applies in containers only (--docker); ignored here"
                err_console.print(note, style="yellow", highlight=False, markup=False)
    if containerised:
        from dstack_prefect.executors.docker import DockerExecutor  # noqa: PLC0415

        def pulling(image: str, step: str) -> None:
            note = f"Pulling image {image} for step '{step}': it is not on this machine"
            err_console.print(note, highlight=False, markup=False, soft_wrap=True)

        with DockerExecutor(on_pull=pulling, pull=pull) as engine:
            for step in containerised:
                engine.check(step)
                check_gpus(step, local.machine)  # a container's GPUs are this machine's


@app.command()
@handles_errors
def ps(
    run_name: Annotated[str | None, typer.Argument(metavar="RUN", help="Show only this run")] = None,
    all_runs: Annotated[bool, typer.Option("-a", "--all", help="Show all runs")] = False,
    watch: Annotated[bool, typer.Option("-w", "--watch", help="Refresh the table every 2 s")] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Add the ERROR column (on one line; --json has it whole)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines")] = False,
) -> None:
    """List runs: the unfinished ones, or the last finished one; -a lists all.

    --json prints a list, newest first, of objects with the keys name, workflow, submitted_at
    (ISO 8601, UTC), status (submitted, pending, downloading, running, uploading, stopping, done,
    failed, stopped or aborted), tag ("" for none), error (whole; "" unless failed or aborted) and
    flow_run_id (the Prefect flow run).

    Example: dstack ps -a -v
    """
    from dstack_prefect.engine import list_runs  # noqa: PLC0415
    from dstack_prefect.engine._runs import cleanup_leftovers, reap_dead_runs  # noqa: PLC0415

    with _api() as api:
        settings = get_settings()
        if reap_dead_runs(api, settings):  # a run's process died: crash it and remove its containers
            cleanup_leftovers(api, settings)
        if as_json:
            rows = list_runs(api, all_runs=all_runs, name=run_name)
            print(json.dumps([r.as_json() for r in rows], indent=2))
            return
        if not watch:
            rows = list_runs(api, all_runs=all_runs, name=run_name)
            if len(rows) > PLAIN_ROWS:
                _print_plain(rows, verbose)
            else:
                console.print(_runs_table(rows, verbose))
            return
        if not console.is_terminal:  # a pipe or a file: a new table whenever the runs change
            shown = None
            while True:
                rows = list_runs(api, all_runs=all_runs, name=run_name)
                now = [(r.name, r.status, r.tag, r.error) for r in rows]
                if now != shown:
                    console.print(_runs_table(rows, verbose))
                    shown = now
                time.sleep(2)
        with Live(console=console, refresh_per_second=2) as live:
            while True:
                live.update(_runs_table(list_runs(api, all_runs=all_runs, name=run_name), verbose))
                time.sleep(2)


@app.command()
@handles_errors
def logs(
    run_name: Annotated[str, typer.Argument(metavar="RUN")],
    attach: Annotated[
        bool, typer.Option("-a", "--attach", help="Follow until the run finishes; exit 1 unless it ends done")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "-s",
            "--since",
            help="Only lines since Ns, Nm, Nh, Nd, Nw ago or an ISO time (no zone: local time)",
            show_default="the whole run",
        ),
    ] = None,
) -> None:
    """Print a run's log lines in order, each prefixed with its step when there are several.

    With -a it follows the run to its end and prints its status, as `dstack run` does; dstack's
    own notes and that status go to stderr, the steps' lines to stdout.

    Example: dstack logs clever-panda-1 -a -s 1h
    """
    from dstack_prefect.engine import LogReader, follow, parse_since  # noqa: PLC0415
    from dstack_prefect.engine._runs import LogLine  # noqa: PLC0415

    when = parse_since(since) if since is not None else None
    shown = 0
    with _api() as api:
        fr = api.flow_run_by_name(run_name)
        multi = _several_steps(api, fr)
        if attach:
            notes: set[str] = set()
            final = None
            for item in follow(api, fr["id"], since=when, settings=get_settings()):
                if isinstance(item, LogLine):
                    print_line(item, multi)
                    shown += 1
                    if item.note:
                        notes.add(item.message)
                else:
                    final = item
            if final is not None:
                error = final.error if final.error and final.error not in notes else ""
                said = status_text(final.status) + (f": {escape(error)}" if error else "")
                err_console.print(said, highlight=False, soft_wrap=True)
                if final.status != "done":
                    raise typer.Exit(1)
            return
        for line in LogReader(api, fr["id"], since=when).lines():  # printed as the next pages come
            print_line(line, multi, live=False)
            shown += 1
    if not shown and when is not None:
        sys.stdout.flush()
        at = f"{when.astimezone():%Y-%m-%d %H:%M %Z}"
        note = f"No log lines of {run_name} since {at}; without -s, all of them show"
        err_console.print(note, highlight=False, markup=False, soft_wrap=True)


def _several_steps(api: Any, fr: dict[str, Any]) -> bool:
    """Whether the run has more than one step (its lines then carry the step): the plan in its
    parameters says so before any step has started; a run triggered through the API with
    ``{"workflow": NAME}`` builds its plan in the flow, so there the task runs tell."""
    steps = ((fr.get("parameters") or {}).get("plan") or {}).get("steps")
    if isinstance(steps, list):
        return len(steps) > 1
    return len(api.task_runs(fr["id"])) > 1


@app.command()
@handles_errors
def stop(
    run_name: Annotated[str | None, typer.Argument(metavar="RUN")] = None,
    all_runs: Annotated[
        bool,
        typer.Option(
            "-a", "--all", help="Stop all unfinished runs (on a PREFECT_API_URL server: this home's)"
        ),
    ] = False,
    abort: Annotated[
        bool, typer.Option("-x", "--abort", help="Kill at once; artifacts are not saved")
    ] = False,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Stop a run gracefully (SIGTERM, artifacts saved) or abort it (-x).

    Example: dstack stop clever-panda-1 -y
    """
    from dstack_prefect.engine import list_runs, request_stop, wait_finished  # noqa: PLC0415
    from dstack_prefect.engine._runs import cleanup_leftovers  # noqa: PLC0415

    if not run_name and not all_runs:
        msg = "name a run, or pass -a to stop all unfinished runs"
        raise DstackError(msg, hint="dstack ps lists runs")
    settings = get_settings()
    verb = "Abort" if abort else "Stop"
    with _api() as api:
        rows = list_runs(api, name=run_name) if run_name else list_runs(api)
        rows = [r for r in rows if r.status not in ("done", "failed", "stopped", "aborted")]
        if all_runs and not run_name:
            rows = _this_homes(rows, api, settings, "stop")
        if not rows:
            console.print("No unfinished runs" if all_runs else f"The run '{run_name}' is already finished")
            return
        what = f"the run '{rows[0].name}'" if run_name else f"{len(rows)} run(s)"
        if not yes:
            again = f"dstack stop {run_name or '-a'}{' -x' if abort else ''} -y"
            confirm(f"{verb} {what}?", with_yes=again)
        for r in rows:
            request_stop(api, r, abort=abort)
        for r in rows:
            done = wait_finished(api, r.flow_run_id, timeout=settings.stop_grace + 30)
            status = done.status if done else "stopping"
            console.print(f"{r.name}: {status_text(status)}")
        cleanup_leftovers(api, settings)


@app.command()
@handles_errors
def rm(
    run_name: Annotated[str | None, typer.Argument(metavar="RUN")] = None,
    all_runs: Annotated[
        bool,
        typer.Option(
            "-a", "--all", help="Remove all finished runs (on a PREFECT_API_URL server: this home's)"
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Remove finished runs (their Prefect records, working folders and artifacts; tagged
    artifacts stay). A run only the store holds (pulled from a remote store), or one deleted in
    the Prefect UI or API that left its folder and artifacts here, is removed too.

    Example: dstack rm clever-panda-1 -y
    """
    from dstack_prefect.engine import is_finished, list_runs, remove_run  # noqa: PLC0415
    from dstack_prefect.engine._runs import cleanup_leftovers  # noqa: PLC0415

    if not run_name and not all_runs:
        msg = "name a run, or pass -a to remove all finished runs"
        raise DstackError(msg, hint="dstack ps -a lists runs")
    settings = get_settings()
    with _api() as api:
        cleanup_leftovers(api, settings)
        if run_name:
            try:
                rows = list_runs(api, name=run_name)
            except RunNotFoundError:
                if _rm_store_only_run(run_name, settings, yes):
                    return
                raise
        else:
            rows = [r for r in list_runs(api, all_runs=True) if is_finished(r.status)]
            rows = _this_homes(rows, api, settings, "rm")
        if not rows:
            console.print("No finished runs")
            return
        for r in rows:
            if not is_finished(r.status):  # before asking: a yes would not help
                remove_run(api, r, settings)
        what = f"the run '{run_name}'" if run_name else "all finished runs"
        if not yes:
            confirm(f"Delete {what}?", with_yes=f"dstack rm {run_name or '-a'} -y")
        for r in rows:
            left = remove_run(api, r, settings)
            console.print(f"Removed {r.name}")
            _warn_left(left)


def _warn_left(left: Path | None) -> None:
    """Say that ``left``, a run's folder, could not be deleted whole (None: it could)."""
    if left is not None:
        err_console.print(
            f"warning: part of {left} could not be deleted (files of another user): remove it as that user",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _rm_store_only_run(name: str, settings: Settings, yes: bool) -> bool:
    """A run the server does not know that this home still holds: in the store (pulled from a
    remote store, or made on another server), or its folder under <home>/runs (its flow run
    deleted in the Prefect UI or API). `rm` deletes its manifests and its folder, as for any
    run; False when there is neither, or its process still runs."""
    from dstack_prefect.engine._trees import remove_tree  # noqa: PLC0415
    from dstack_prefect.server import is_process, read_pid_file  # noqa: PLC0415
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    store = ArtifactStore(settings.store_url)
    stored = bool(store.list_manifests(name))
    folder = settings.runs_dir / name
    pid = read_pid_file(folder / "supervisor.pid")
    left = folder.is_dir() and not (pid is not None and is_process(*pid))
    if not stored and not left:
        return False
    if not yes:
        note = (
            "it is in the store (pulled, or made on another server), not on this Prefect server"
            if stored
            else f"its folder {folder} is left, but this Prefect server has no record of it"
        )
        what = "the artifacts of the run" if stored else "what is left of the run"
        confirm(f"Delete {what} '{name}'? ({note})", with_yes=f"dstack rm {name} -y")
    if stored:
        store.delete_run(name)  # tagged artifacts stay: tags keep copies
    kept = None if not left or remove_tree(folder) else folder
    done = "its artifacts; `dstack prune artifacts` frees the files" if stored else "its folder"
    console.print(f"Removed {name} ({done})")
    _warn_left(kept)
    return True
