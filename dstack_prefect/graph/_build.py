"""Workflows + target + `dstack run` args -> Plan: the target and its upstreams, in order.

    deps point upstream:   train --needs--> prep --needs--> download
    plan.steps:            download, prep, train        (every step after its upstream)

Workflow deps become steps (`Step.upstream`), `owner/repo/NAME` ones too when this repo has
NAME: dstack 0.9 ignored the prefix and used the same repo, and so do we. Tag deps are recorded
in `Step.deps` for the engine to resolve from the store. Overrides apply to the target only;
interpolation runs after them, over every string; secrets stay references.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from dstack_prefect.errors import CycleError, PlanError, SpecErrors, UnknownWorkflowError
from dstack_prefect.graph._args import RunOptions, option_names, parse_run_args
from dstack_prefect.graph._ide import ide_step
from dstack_prefect.graph._plan import (
    ArtifactSpec,
    GpuRequest,
    Plan,
    PortSpec,
    RegistryAuth,
    Resources,
    Step,
    StepDep,
)
from dstack_prefect.graph._secrets import SECRETS_PUT_IN, strings
from dstack_prefect.spec import (
    PROVIDERS,
    Artifact,
    Dep,
    Gpu,
    Port,
    Workflow,
    Workflows,
    interpolate,
    parse_size,
    quote_args,
)
from dstack_prefect.spec import Resources as ResourcesSpec
from dstack_prefect.spec._blocks import prefix_note, repeated_deps, repeated_local_ports
from dstack_prefect.spec._fields import (
    check_artifact_path,
    check_cache_path,
    check_image,
    check_input_path,
    check_working_dir,
    did_you_mean,
)
from dstack_prefect.spec._interp import check as check_interpolation
from dstack_prefect.spec._interp import misplaced_secrets, uses_run_args
from dstack_prefect.spec._locate import describe
from dstack_prefect.spec._models import env_mapping


def build_plan(
    workflows: Workflows | None, target: str, argv: list[str], run_name: str = "<run-name>"
) -> Plan:
    """The plan for `dstack run TARGET ARGV...`.

    ``target`` is a workflow name, or a provider name (bash, docker, code, lab, notebook) that is
    not a workflow: provider mode, which needs no workflow files (``workflows`` may be None).

    Raises:
        UnknownWorkflowError: ``target`` is neither a workflow nor a provider.
        SpecErrors: an upstream names a workflow that is not defined (located at the dep).
        CycleError: `--dep` overrides close a cycle.
        PlanError: a malformed override option or value.
    """
    workflows_mode = workflows is not None and target in workflows.by_name
    if workflows is not None and workflows_mode:
        options = parse_run_args(argv)
        steps = _workflow_steps(workflows, target, options)
    elif target in PROVIDERS:
        options = parse_run_args(argv, provider_mode=target)
        steps = [_provider_step(target, options)]
    else:
        names = list(workflows.by_name) if workflows is not None else []
        msg = f"No workflow or provider '{target}' is found"
        close = did_you_mean(target, [*names, *PROVIDERS])
        hint = close.replace("; did you", "Did you", 1)  # not capitalize(): it lowercases the name
        if not hint:
            here = f"workflows here: {', '.join(names)}; or " if names else ""
            hint = f"{here}a provider: {', '.join(PROVIDERS)}"
        raise UnknownWorkflowError(msg, hint=hint)
    _check_run_args_used(target, steps, options.run_args, provider_mode=None if workflows_mode else target)
    rendered = [_interpolate(step, options.run_args, run_name) for step in steps]
    return Plan(target=target, run_args=options.run_args, run_name=run_name, steps=rendered)


def _check_run_args_used(
    target: str, steps: list[Step], run_args: list[str], *, provider_mode: str | None
) -> None:
    """Leftover tokens go to `${{ run.args }}`; with no step using it they would vanish (as in
    old dstack), and a mistyped option (`--gpus 2`) with them.

    Raises:
        PlanError: no step uses `${{ run.args }}`; names the closest option to a token, if any.
    """
    if not run_args or any(uses_run_args(text) for step in steps for text in strings(step.model_dump())):
        return
    known = option_names(provider_mode)
    close = [(option, _closest_option(option, known)) for option in _options(run_args)]
    close = [(option, meant) for option, meant in close if meant]
    if close:
        msg = f"unknown option '{close[0][0]}'; did you mean '{close[0][1]}'?"
    else:
        shown = quote_args(run_args)
        msg = f"run args {shown!r} would be dropped: no step of '{target}' uses ${{{{ run.args }}}}"
    hint = (
        f"add ${{{{ run.args }}}} to a command of '{target}', e.g. python train.py ${{{{ run.args }}}};"
        " options are listed in docs/workflows.md, section `dstack run` options"
    )
    if provider_mode in ("bash", "docker") and not close:  # `dstack run docker ubuntu echo hi`
        image = f" {steps[0].image}" if steps[0].image else ""
        hint = f'give the command with -c, e.g. dstack run {target}{image} -c "{" ".join(run_args)}"'
    raise PlanError(msg, hint=hint)


def _options(tokens: list[str]) -> list[str]:
    """The option names among ``tokens``: ``--gpus`` of ``--gpus=2``; not ``-`` or a number."""
    return [t.split("=", 1)[0] for t in tokens if t.startswith("-") and t.strip("-") and not t[1:2].isdigit()]


def _closest_option(option: str, known: list[str]) -> str | None:
    """The option meant by ``option``: one it abbreviates (``--shm``), or a close spelling."""
    prefixed = [k for k in known if k.startswith("--") and k.startswith(option) and len(option) > 3]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(option, known, n=1, cutoff=0.75)
    if not close:
        return None
    ratio = difflib.SequenceMatcher(None, option, close[0]).ratio()
    same_start = option.lstrip("-")[:1] == close[0].lstrip("-")[:1]  # `--name` is not `--gpu-name`
    return close[0] if ratio >= 0.8 or same_start else None


def _workflow_steps(workflows: Workflows, target: str, options: RunOptions) -> list[Step]:
    overridden = apply_overrides(workflows.by_name[target], options)
    order = _topological(workflows, target, overridden)
    steps = []
    for name in order:
        workflow = overridden if name == target else workflows.by_name[name]
        upstream = [d.name for d in workflow.deps if _is_local(workflows, d)]
        step = to_step(workflow, source=workflows.source(name), upstream=list(dict.fromkeys(upstream)))
        steps.append(_given_deps(step, options) if name == target else step)
    return steps


def _given_deps(step: Step, options: RunOptions) -> Step:
    """``step`` with its deps marked as `--dep`'s when the option replaced the YAML's, so a
    missing tag is blamed on the option, not on the workflow's file:line."""
    if options.deps is None:
        return step
    return step.model_copy(update={"deps": [d.model_copy(update={"option": "--dep"}) for d in step.deps]})


def _is_local(workflows: Workflows, dep: Dep) -> bool:
    return dep.kind == "workflow" and dep.name in workflows.by_name


def _topological(workflows: Workflows, target: str, overridden: Workflow) -> list[str]:
    """Post-order DFS from ``target``: upstreams first, deps in the order written. Iterative, so
    a long chain of deps needs no deep recursion."""

    def upstreams(name: str) -> list[str]:
        out = []
        for j, dep in enumerate((overridden if name == target else workflows.by_name[name]).deps):
            if dep.kind != "workflow" or (dep.repo is not None and dep.name not in workflows.by_name):
                continue
            if dep.name not in workflows.by_name:
                _unknown_dep(workflows, name, j, dep)
            out.append(dep.name)
        return out

    order: list[str] = []
    done: set[str] = set()
    on_path: list[str] = [target]
    on_path_set = {target}  # `in` on the list made a long chain quadratic (20 000 deps: 5 s)
    stack = [iter(upstreams(target))]
    while stack:
        name = next(stack[-1], None)
        if name is None:
            stack.pop()
            finished = on_path.pop()
            on_path_set.discard(finished)
            done.add(finished)
            order.append(finished)
        elif name in on_path_set:
            cycle = " -> ".join([*on_path[on_path.index(name) :], name])
            msg = f"deps form a cycle: {cycle}"
            raise CycleError(msg, hint="remove one of the deps (check --dep options)")
        elif name not in done:
            on_path.append(name)
            on_path_set.add(name)
            stack.append(iter(upstreams(name)))
    return order


def _unknown_dep(workflows: Workflows, name: str, j: int, dep: Dep) -> None:
    others = [n for n in workflows.by_name if n != name]  # never the workflow itself: a self-cycle
    message = f"unknown workflow '{dep.name}' in deps{did_you_mean(dep.name, others)}"
    written = workflows.by_name[name].deps
    if j < len(written) and written[j] == dep:
        raise SpecErrors([workflows.sources[name].error(("deps", j), message)])
    error = _option_error("--dep", message)
    raise error


def apply_overrides(workflow: Workflow, options: RunOptions) -> Workflow:
    """``workflow`` with the `dstack run` override options applied.

    Each value is checked as the YAML's would be: a path that climbs out with ``..``, a zero size
    or count, a dep given twice are refused here, before anything runs.

    Raises:
        PlanError: an option value is malformed (a size, a port, a dep, an env item, a path).
    """
    update: dict[str, Any] = {}
    if options.env:
        update["env"] = {**workflow.env, **_checked("-e/--env", env_mapping, options.env)}
    if options.artifacts is not None:
        update["artifacts"] = [
            _checked("-a/--artifact", Artifact.model_validate, p) for p in options.artifacts
        ]
    if options.deps is not None:
        deps = [_checked("--dep", Dep.model_validate, d) for d in options.deps]
        repeated = repeated_deps(deps)
        if repeated:
            j, first = repeated[0]
            message = f"'{deps[j]}' is given twice{prefix_note(deps, j, first)}, expected each dep once"
            error = _option_error("--dep", message)
            raise error
        update["deps"] = deps
    if options.working_dir is not None:
        update["working_dir"] = _checked("-w/--working-dir", check_working_dir, options.working_dir)
    if options.requirements is not None:
        _check_interpolation("-r/--requirements", options.requirements)
        update["requirements"] = options.requirements
    if options.ssh:
        update["ssh"] = True
    if options.ports:
        update["ports"] = _ports_update(workflow, options.ports)
    resources = _resources_update(workflow, options)
    if resources:
        update["resources"] = workflow.resources.model_copy(update=resources)
    overridden: Workflow = _checked(
        f"dstack run {workflow.name}", Workflow.model_validate, {**workflow.model_dump(), **update}
    )
    return overridden


def _resources_update(workflow: Workflow, options: RunOptions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.interruptible:
        out["interruptible"] = True
    if options.cpu is not None:
        out["cpu"] = _checked("--cpu", _field(ResourcesSpec, "cpu"), options.cpu)
    if options.memory is not None:
        out["memory"] = _checked("--memory", parse_size, options.memory)
    if options.shm_size is not None:
        out["shm_size"] = _checked("--shm-size", parse_size, options.shm_size)
    if options.gpu is not None or options.gpu_name is not None or options.gpu_memory is not None:
        gpu = workflow.resources.gpu or Gpu()
        gpu_update: dict[str, Any] = {}
        if options.gpu is not None:
            gpu_update["count"] = _checked("--gpu", _field(Gpu, "count"), options.gpu)
        if options.gpu_name is not None:
            gpu_update["name"] = _checked("--gpu-name", _field(Gpu, "name"), options.gpu_name)
        if options.gpu_memory is not None:
            gpu_update["memory"] = _checked("--gpu-memory", parse_size, options.gpu_memory)
        out["gpu"] = gpu.model_copy(update=gpu_update)
    return out


def _ports_update(workflow: Workflow, given: list[str]) -> list[Port]:
    """The workflow's ports with the `-p` ones merged in; no local port used twice."""
    ports = _merge_ports(workflow.ports, [_checked("-p/--port", Port.model_validate, p) for p in given])
    for j, i in repeated_local_ports(ports):
        local = ports[j].local_port or ports[j].port
        if ports[i] == ports[j]:
            error = _option_error(
                "-p/--port", f"'{_port_text(ports[j])}' is given twice, expected each port once"
            )
            raise error
        message = (
            f"'{_port_text(ports[i])}' and '{_port_text(ports[j])}' both use local port {local};"
            " give each port its own local port"
        )
        error = _option_error("-p/--port", message)
        raise error
    return ports


def _merge_ports(ports: list[Port], extra: list[Port]) -> list[Port]:
    """`-p` entries replace the YAML's entry for the same app port; the rest are added."""
    given = {p.port for p in extra}
    return [p for p in ports if p.port is None or p.port not in given] + extra


def _port_text(port: Port) -> str:
    """A port as written: ``8000`` or ``8000:3000``."""
    return f"{port.port}" + (f":{port.local_port}" if port.local_port is not None else "")


def _field(model: type[BaseModel], name: str) -> Callable[[Any], Any]:
    """Check one field's value as ``model`` does (``--gpu 0`` as ``gpu: {count: 0}``)."""
    return lambda value: getattr(model.model_validate({name: value}), name)


def _check_interpolation(option: str, value: Any) -> None:
    """A bad `${{ ... }}` in an option's value is an error naming the option; so is a secret in
    an option whose value is never resolved (a path, a dep, a GPU name, a port, an image)."""
    secrets_stay = option in (
        "-a/--artifact",
        "--dep",
        "-w/--working-dir",
        "--gpu-name",
        "-p/--port",
        "IMAGE",
    )
    for text in strings(value):
        problems = check_interpolation(text) or (misplaced_secrets(text) if secrets_stay else [])
        if problems:
            raise _option_error(option, problems[0].message)


_EXAMPLES = {
    "-e/--env": "-e LR=0.1",
    "-a/--artifact": "-a output",
    "--dep": "--dep prep (a workflow) or --dep :v1 (a tag)",
    "-w/--working-dir": "-w src",
    "--cpu": "--cpu 4",
    "--memory": "--memory 16GB",
    "--gpu": "--gpu 1",
    "--gpu-name": "--gpu-name A100",
    "--gpu-memory": "--gpu-memory 16GB",
    "--shm-size": "--shm-size 1GB",
    "-p/--port": "-p 8000, or -p 8000:3000 to reach it at local port 3000",
    "-r/--requirements": "-r requirements.txt",
    "-c/--command": '-c "python train.py"',
    "--entrypoint": '--entrypoint "/bin/sh -c"',
}


def _option_error(option: str, message: str) -> PlanError:
    """A PlanError for a bad ``option`` value whose hint writes the option right."""
    if option == "IMAGE":
        return PlanError(f"{option}: {message}", hint="e.g. dstack run docker ubuntu:22.04")
    example = _EXAMPLES.get(option)
    hint = (
        f"e.g. dstack run WORKFLOW {example}"
        if example
        else "see docs/workflows.md, section `dstack run` options"
    )
    return PlanError(f"{option}: {message}", hint=hint)


def _checked(option: str, convert: Callable[[Any], Any], value: Any) -> Any:
    _check_interpolation(option, value)
    try:
        return convert(value)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = tuple(s for s in error["loc"] if isinstance(s, int | str))
        raise _option_error(option, describe(error, loc)[0]) from None
    except ValueError as exc:
        raise _option_error(option, str(exc)) from None


def to_step(workflow: Workflow, *, source: str = "", upstream: list[str] | None = None) -> Step:
    """The plan step for one (already overridden) workflow, before interpolation."""
    setup = [*workflow.before_run, *workflow.setup]
    if workflow.requirements:
        setup.insert(0, f"pip install -r {workflow.requirements}")
    res = workflow.resources
    gpu = None
    if res.gpu is not None and res.gpu.count > 0:
        gpu = GpuRequest(count=res.gpu.count, name=res.gpu.name, memory_mib=res.gpu.memory)
    auth = workflow.registry_auth
    step = Step(
        name=workflow.name,
        provider=workflow.provider,
        commands=list(workflow.commands),
        setup=setup,
        env=dict(workflow.env),
        working_dir=workflow.working_dir or ".",
        artifacts=[ArtifactSpec(path=a.path, mount=a.mount) for a in workflow.artifacts],
        cache=[c.path for c in workflow.cache],
        ports=[PortSpec(port=p.port, local_port=p.local_port) for p in workflow.ports],
        resources=Resources(
            cpu=res.cpu,
            memory_mib=res.memory,
            gpu=gpu,
            shm_size_mib=res.shm_size,
            interruptible=res.interruptible,
        ),
        python=workflow.python,
        image=workflow.image,
        entrypoint=workflow.entrypoint,
        registry_auth=RegistryAuth(username=auth.username, password=auth.password) if auth else None,
        home_dir=workflow.home_dir,
        ssh=workflow.ssh,
        version=workflow.version,
        inputs=workflow.inputs,
        deps=[StepDep(kind=d.kind, name=d.name, repo=d.repo) for d in workflow.deps],
        upstream=upstream or [],
        source=source,
    )
    return ide_step(step)


def _provider_step(provider: str, options: RunOptions) -> Step:
    """`dstack run bash -c CMD`, `dstack run docker IMAGE`, `dstack run lab`: a step with no YAML."""
    _check_interpolation("-c/--command", options.commands)
    _check_interpolation("IMAGE", options.image)
    _check_interpolation("--entrypoint", options.entrypoint)
    raw: dict[str, Any] = {"name": provider, "provider": provider, "commands": options.commands}
    if provider == "docker":
        if not options.image:
            msg = "`dstack run docker` needs an IMAGE"
            raise PlanError(msg, hint='e.g. dstack run docker ubuntu -c "echo hi"')
        raw["image"] = options.image
        if options.entrypoint is not None:
            raw["entrypoint"] = options.entrypoint
    if provider == "bash" and not options.commands:
        msg = "`dstack run bash` needs a command"
        raise PlanError(msg, hint='e.g. dstack run bash -c "echo hi"')
    workflow = _checked(f"dstack run {provider}", Workflow.model_validate, raw)
    overridden = apply_overrides(workflow, options)
    if any(d.kind == "workflow" for d in overridden.deps):
        error = _option_error("--dep", "provider mode can only use tag deps (--dep :TAG)")
        raise error
    return _given_deps(to_step(overridden), options)


def _interpolate(step: Step, run_args: list[str], run_name: str) -> Step:
    def render(value: Any, secrets_put_in: bool) -> Any:
        if isinstance(value, str):
            return interpolate(value, run_args=run_args, run_name=run_name, secrets_put_in=secrets_put_in)
        if isinstance(value, list):
            return [render(v, secrets_put_in) for v in value]
        if isinstance(value, dict):
            return {k: render(v, secrets_put_in) for k, v in value.items()}
        return value

    try:
        dumped = step.model_dump()
        rendered = Step.model_validate({k: render(v, k in SECRETS_PUT_IN) for k, v in dumped.items()})
    except ValueError as exc:
        msg = f"step '{step.name}': {exc}"
        raise PlanError(msg) from None
    _check_rendered_paths(step, rendered)
    return rendered


def _check_rendered_paths(written: Step, rendered: Step) -> None:
    """Paths that `${{ ... }}` changed (working_dir, artifacts, cache, inputs) are checked again,
    as the YAML's were (`src/${{ run.args }}` with `../..` climbs out of the repo), and so is
    the image (`${{ run.args }}` with no args is no image).

    Raises:
        PlanError: a path climbs out, or the image is empty or has spaces, once the values are
            put in; names the step and the key.
    """
    paths = [("working_dir", check_working_dir, written.working_dir, rendered.working_dir)]
    paths += [
        (f"artifacts[{i}]", check_artifact_path, w.path, r.path)
        for i, (w, r) in enumerate(zip(written.artifacts, rendered.artifacts, strict=True))
    ]
    paths += [
        (f"cache[{i}]", check_cache_path, w, r)
        for i, (w, r) in enumerate(zip(written.cache, rendered.cache, strict=True))
    ]
    paths += [
        (f"inputs[{i}]", check_input_path, w, r)
        for i, (w, r) in enumerate(zip(written.inputs or [], rendered.inputs or [], strict=True))
    ]
    if rendered.image is not None and written.image is not None:
        paths.append(("image", partial(check_image, rendered=True), written.image, rendered.image))
    for key, check, before, after in paths:
        if after == before:
            continue
        try:
            check(after)
        except PydanticCustomError as exc:
            msg = f"step '{written.name}': {key}: {exc.message()}"
            raise PlanError(msg, hint=f"it is {before!r} with the values put in") from None
