"""Commands: validate, schema, plan. Thin layers over dstack_prefect.spec and dstack_prefect.graph."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from dstack_prefect.cli._app import app, console, err_console, handles_errors
from dstack_prefect.cli._runopts import RunArgsCommand
from dstack_prefect.errors import DstackError, NoWorkflowsError, SpecError, SpecErrors
from dstack_prefect.graph import Plan, Step, build_plan
from dstack_prefect.spec import (
    PROVIDERS,
    Source,
    SpecWarning,
    Workflows,
    check_workflows,
    find_repo_root,
    json_schema,
    load_for,
    quote_args,
    workflow_files,
)

STARTER = """\
# dstack workflows of this repo: `dstack run hello`. Reference: docs/workflows.md of dstack-prefect.
workflows:
  - name: hello
    help: A first workflow that prints a line and keeps a file as an artifact
    provider: bash
    commands:
      - echo "Hello from dstack-prefect"
      - echo "hello" > output/hello.txt
    artifacts:
      - path: output
"""


@app.command()
@handles_errors
def init() -> None:
    """Set up this repo for dstack: a .dstack/workflows.yaml with a first workflow, unless the repo
    (the git repo around this folder, else this folder) has workflow files already.

    dstack needs nothing else: no credentials, no keys; the local Prefect server starts on the
    first command that needs it.

    Example: dstack init
    """
    try:
        root = find_repo_root(Path.cwd())
    except NoWorkflowsError:
        root = None
    files = workflow_files(root) if root is not None else []
    if root is not None and files:
        workflows, errors = check_workflows(root)
        found = _count(len(workflows), "workflow") + " in " + _count(len(files), "file")
        hint = "fix them with `dstack validate`" if errors else "run one with `dstack run WORKFLOW`"
        said = f"Already set up: {found} under {root / '.dstack'}; {hint}"
        console.print(said, highlight=False, soft_wrap=True)
        return
    top = _git_top(Path.cwd()) or Path.cwd()
    target = top / ".dstack" / "workflows.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(STARTER)
    shown = os.path.relpath(target)
    said = f"Created {shown} with a workflow `hello`; run it: dstack run hello"
    console.print(said, highlight=False, soft_wrap=True)


def _git_top(folder: Path) -> Path | None:
    """The top of the git work tree holding ``folder``, or None outside one (or without git)."""
    import subprocess  # noqa: PLC0415

    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def print_warnings(warnings: list[SpecWarning]) -> None:
    """Each located warning on stderr, the file's text as written (used by run, plan, validate)."""
    for warning in warnings:
        err_console.print("[yellow]warning:[/] ", end="", highlight=False)
        err_console.print(
            str(warning), highlight=False, soft_wrap=True, markup=False
        )  # the file's text as written


@app.command()
@handles_errors
def validate(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Check every workflow file of this repo and list every problem with file:line:col.

    Exit code 0 when all files are valid, 1 otherwise.

    Example: dstack validate --json
    """
    root = find_repo_root(Path.cwd())
    files = workflow_files(root)
    workflows, errors = check_workflows(root)
    if as_json:
        _print_json(
            {
                "valid": not errors,
                "files": len(files),
                "workflows": sum(1 for src in workflows.sources.values() if not _has_errors(src, errors)),
                "errors": [e.as_dict() for e in errors],
                "warnings": [w.as_dict() for w in workflows.warnings],
            }
        )
        if errors:
            raise typer.Exit(1)
        return
    print_warnings(workflows.warnings)
    if errors:
        raise SpecErrors(errors)
    counts = _count(len(workflows), "workflow") + " in " + _count(len(files), "file")
    if workflows.warnings:
        counts += ", " + _count(len(workflows.warnings), "warning")
    console.print(f"[green]OK[/]: {counts}", highlight=False)


def _has_errors(source: Source, errors: list[SpecError]) -> bool:
    """Whether any of ``errors`` is inside the workflow defined at ``source`` (an unknown dep or
    name in it counts: the workflow loads, but cannot run)."""
    mine = f"workflows[{source.index}]"
    inside = (f"{mine}.", f"{mine}[")
    return any(e.path == source.path and (e.key == mine or e.key.startswith(inside)) for e in errors)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


@app.command()
@handles_errors
def schema(
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to FILE instead of stdout")
    ] = None,
) -> None:
    """Print the JSON Schema of the workflow file format, for editors' YAML language servers.

    Example: dstack schema -o .dstack/workflows.schema.json
    """
    text = json.dumps(json_schema(), indent=2)
    if output is None:
        typer.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        msg = f"cannot write {output}: {exc.strerror or exc}"
        hint = (
            f"create {output.parent} first, or pick another path with -o"
            if not output.parent.is_dir()
            else "pick a file path with -o, e.g. -o .dstack/workflows.schema.json"
        )
        raise DstackError(msg, hint=hint) from None
    err_console.print(f"wrote {output}", highlight=False)


@app.command(cls=RunArgsCommand, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handles_errors
def plan(
    ctx: typer.Context,
    workflow: Annotated[
        str,
        typer.Argument(
            metavar="WORKFLOW", help="A workflow name, or a provider (bash, docker, code, lab, notebook)"
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON")] = False,
    docker: Annotated[
        bool, typer.Option("--docker", help="As `dstack run --docker`: steps in containers")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="As `dstack run --name`: what ${{ run.name }} becomes"),
    ] = None,
    detach: Annotated[
        bool, typer.Option("-d", "--detach", help="Accepted as `dstack run` takes it; changes nothing here")
    ] = False,
) -> None:
    """Show what `dstack run WORKFLOW ARGS...` would run: the steps in order, resolved.

    ARGS are `dstack run`'s: override options (-e, -a, --dep, --gpu, ...) and run args.

    Each step says whether it would run or reuse an earlier run, and why (no earlier done run,
    spec changed, code changed (files), dep changed, forced). --rerun [W ...] and --reuse as in run.
    What `dstack run` would refuse here (no runtime image or NVIDIA runtime, too few CPUs, a port
    in use...) follows the plan as a warning (in --json, `refused`); plan pulls no image.

    Example: dstack plan train --gpu 2 -e LR=0.1 --epochs 3
    """
    from dstack_prefect.cli._runopts import check_rerun_in_plan, split_run_options, unshield  # noqa: PLC0415
    from dstack_prefect.engine._cache import plan_decisions  # noqa: PLC0415
    from dstack_prefect.settings import get_settings  # noqa: PLC0415
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    workflows, elsewhere = _workflows_or_none(workflow, quiet=as_json)
    opts = split_run_options(unshield(list(ctx.args)), set(workflows.by_name) if workflows else set())
    if name is not None:
        from dstack_prefect.engine._names import check_run_name  # noqa: PLC0415

        check_run_name(name)
    result = build_plan(workflows, workflow, opts.rest, name or "<run-name>")
    check_rerun_in_plan(opts, [s.name for s in result.steps])
    root = workflows.root if workflows else Path.cwd()
    settings = get_settings()
    executor = "docker" if docker else settings.executor
    store = ArtifactStore(settings.store_url)
    decisions = plan_decisions(result, store, root, rerun=opts.rerun, reuse=opts.reuse, executor=executor)
    refused = _run_refusal(result, docker)
    if as_json:
        payload = result.model_dump(mode="json")
        payload["decisions"] = {
            name: {"action": d.action, "reason": d.reason, "run": d.manifest.run if d.manifest else None}
            for name, d in decisions.items()
        }
        payload["warnings"] = [w.as_dict() for w in workflows.warnings] if workflows else []
        payload["problems_elsewhere"] = [e.as_dict() for e in elsewhere]  # what stderr counts
        payload["refused"] = (
            {"error": refused.message, "type": type(refused).__name__, "hint": refused.hint}
            if refused
            else None
        )
        typer.echo(json.dumps(payload, indent=2))
        return
    console.print(render_plan(result, {name: d.describe() for name, d in decisions.items()}))
    if refused:
        err_console.print(
            "[yellow]warning:[/] `dstack run` would refuse this plan: ", end="", highlight=False
        )
        err_console.print(refused.message, highlight=False, markup=False, soft_wrap=True)
        if refused.hint:
            err_console.print("[dim]hint:[/] ", end="", highlight=False)
            err_console.print(refused.hint, highlight=False, markup=False, soft_wrap=True)


def _run_refusal(plan: Plan, docker: bool) -> DstackError | None:
    """The error `dstack run` would stop with before running ``plan`` here (its own check,
    pulling nothing), or None."""
    from dstack_prefect.cli._runs import _check_steps  # noqa: PLC0415

    try:
        _check_steps(plan, docker, pull=False)
    except DstackError as exc:
        return exc
    return None


def _workflows_or_none(target: str, *, quiet: bool) -> tuple[Workflows | None, list[SpecError]]:
    """The repo's workflows and the problems elsewhere; None for provider mode outside a repo."""
    try:
        root = find_repo_root(Path.cwd())
    except NoWorkflowsError:
        if target in PROVIDERS:
            return None, []
        raise
    return workflows_for(root, target, "plan", quiet=quiet)


def workflows_for(
    root: Path, target: str, command: str, *, quiet: bool = False
) -> tuple[Workflows, list[SpecError]]:
    """The repo's workflows for `dstack COMMAND TARGET` (run or plan), and the problems that do
    not stop it: it fails on the problems of TARGET and the workflows it needs
    (`spec.load_for`); the warnings about those workflows and a count of the other problems are
    printed on stderr unless ``quiet``.

    Raises:
        SpecErrors: the problems that stop TARGET.
    """
    workflows, elsewhere = load_for(root, target)
    if not quiet:
        print_warnings(workflows.warnings)
    if elsewhere and not quiet:
        n = len(elsewhere)
        err_console.print("[yellow]warning:[/] ", end="", highlight=False)
        err_console.print(
            f"{_count(n, 'problem')} in the workflow files that `dstack {command} {target}` does not"
            f" need; `dstack validate` lists {'them' if n > 1 else 'it'}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    return workflows, elsewhere


def _print_json(payload: dict[str, object]) -> None:
    typer.echo(json.dumps(payload, indent=2))


def _size(mib: int) -> str:
    """MiB as a person reads it: ``954MiB``, ``1.05GiB``, ``14.9GiB``, ``16GiB`` (3 digits or so)."""
    if mib < 1024:
        return f"{mib}MiB"
    gib = mib / 1024
    text = f"{gib:.2f}" if gib < 10 else f"{gib:.1f}"
    return text.rstrip("0").rstrip(".") + "GiB"


def describe_resources(step: Step) -> str:
    """One line such as ``cpu=4 mem=15GiB gpu=2xA100(16GiB) shm=1GiB spot``."""
    res = step.resources
    parts = []
    if res.cpu is not None:
        parts.append(f"cpu={res.cpu}")
    if res.memory_mib is not None:
        parts.append(f"mem={_size(res.memory_mib)}")
    if res.gpu is not None:
        gpu = f"gpu={res.gpu.count}" + (f"x{res.gpu.name}" if res.gpu.name else "")
        parts.append(gpu + (f"({_size(res.gpu.memory_mib)})" if res.gpu.memory_mib else ""))
    if res.shm_size_mib is not None:
        parts.append(f"shm={_size(res.shm_size_mib)}")
    if res.interruptible:
        parts.append("spot")
    return " ".join(parts) or "-"


def _deps(step: Step) -> str:
    """The deps as they take effect: an owner/repo/ prefix is ignored (this repo's workflow of
    that name, or skipped when there is none), as the loader's warning says."""
    shown = []
    for d in step.deps:
        if d.kind == "tag":
            shown.append(f":{d.name}")
        elif d.repo and d.name not in step.upstream:
            shown.append(f"{d.repo}/{d.name} (skipped)")
        else:
            shown.append(d.name)
    return ", ".join(shown) or "-"


def _settings(step: Step) -> list[str]:
    """Lines for what the step sets beyond its commands (where `-w`, `-e`, `-a`, `-p` show); a
    registry password never shows."""
    auth = step.registry_auth
    groups = [
        [
            ("working_dir", step.working_dir if step.working_dir != "." else ""),
            ("python", step.python or ""),
            ("version", step.version or ""),
            ("ssh", "yes" if step.ssh else ""),
        ],
        [("env", ", ".join(f"{k}={v}" for k, v in step.env.items()))],
        [
            ("artifacts", ", ".join(a.path + (" (mount)" if a.mount else "") for a in step.artifacts)),
            ("cache", ", ".join(step.cache)),
        ],
        [("ports", ", ".join(_port(p.port, p.local_port) for p in step.ports))],
        [
            ("entrypoint", shlex.join(step.entrypoint) if step.entrypoint is not None else ""),
            ("home_dir", step.home_dir or ""),
            ("registry user", auth.username or "" if auth else ""),  # never the password
        ],
        [("inputs", ", ".join(step.inputs or []))],
    ]
    lines = ["   ".join(f"{key}: {value}" for key, value in group if value) for group in groups]
    return [line for line in lines if line]


def _port(port: int | None, local: int | None) -> str:
    shown = "any free port" if port is None else str(port)
    return shown + (f":{local}" if local is not None else "")


def render_plan(plan: Plan, decisions: dict[str, str] | None = None) -> Text:
    """The plan, one block per step in run order: name, provider, decision, then its commands,
    resources and deps. Commands are never wrapped mid-word, whatever the terminal's width.

    ``decisions`` maps a step name to what the engine will do with it (e.g. "reuse lucky-fox-1
    (same inputs)").
    """
    out = Text()
    title = f"Plan for '{plan.target}'" + (
        f" (run args: {quote_args(plan.run_args)})" if plan.run_args else ""
    )
    out.append(title + "\n", style="bold")
    for i, step in enumerate(plan.steps, 1):
        out.append(f"{i}. ", style="dim")
        out.append(step.name, style="bold cyan")
        out.append(f"  {step.provider}")
        if decisions is not None:
            decision = decisions.get(step.name, "run")
            out.append("  " + decision, style="green" if decision.startswith("reuse") else "yellow")
        out.append("\n")
        if step.image:
            out.append(f"     image: {step.image}\n")
        for cmd in step.setup:
            out.append(f"     (setup) $ {cmd}\n")
        for cmd in step.commands:
            out.append(f"     $ {cmd}\n")
        for line in _settings(step):
            out.append(f"     {line}\n", style="dim")
        out.append(f"     resources: {describe_resources(step)}   deps: {_deps(step)}\n", style="dim")
    return out
