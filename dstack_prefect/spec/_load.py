"""Find, read and validate every workflow file of a repo in one pass.

    find_repo_root(cwd) -> root          the folder holding .dstack/ (not the dstack home's)
    workflow_files(root) -> [files]      .dstack/workflows.y(a)ml + .dstack/workflows/*.y(a)ml
    check_workflows(root) -> (Workflows, [SpecError])   what loaded, and every problem
    load_workflows(root) -> Workflows    the same, raising every problem as one SpecErrors
    load_for(root, target) -> (Workflows, [SpecError])   for run/plan: raises the problems of
                                         target and what it needs, returns the others

Problems of all files are collected and reported together, sorted by file and line; so are
warnings. Legacy forms (before_run, requirements, resources.local, deps mount, ports as a count)
load with a located warning; so do a bare `memory` number below 1024 (MiB, likely meant as GB)
and an ``owner/repo/NAME`` dep (the prefix is ignored; without NAME here, skipped). Top-level
``x-`` keys are passed over. A workflow dep that no file defines is an error: `check_workflows`
(`dstack validate`) lists it, and a plan that needs it fails on it; `load_workflows` keeps it in
``Workflows.unresolved`` rather than raising, so the workflows that do not need it still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dstack_prefect.errors import NoWorkflowsError, SpecError, SpecErrors
from dstack_prefect.settings import Settings
from dstack_prefect.spec import _locate
from dstack_prefect.spec._blocks import Dep
from dstack_prefect.spec._fields import did_you_mean
from dstack_prefect.spec._file import _load_file, _once_per_place
from dstack_prefect.spec._models import PROVIDERS, Workflow
from dstack_prefect.spec._workflows import Source, SpecWarning, Workflows


def find_repo_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds a ``.dstack/`` folder.

    The dstack home (``~/.dstack`` by default, or ``DSTACK_HOME``) is where dstack keeps its
    server, runs and store, not a repo's marker: a ``.dstack`` that is the home and holds no
    workflow file is passed over, so a folder under ``~`` is not taken for a repo rooted at ``~``.

    Raises:
        NoWorkflowsError: no such folder up to the filesystem root.
    """
    start = start.resolve()
    dstack_home = Settings.from_env().home.expanduser().resolve()
    for folder in (start, *start.parents):
        marker = folder / ".dstack"
        if not marker.is_dir():
            continue
        if marker.resolve() == dstack_home and not workflow_files(folder):
            continue
        return folder
    msg = f"No .dstack/ folder in {start} or any folder above it"
    raise NoWorkflowsError(msg)


def workflow_files(root: Path) -> list[Path]:
    """The workflow files of the repo at ``root``, sorted; a broken link counts (it is an error
    to report, not a file to pass over)."""
    dstack = root / ".dstack"
    files = [dstack / name for name in ("workflows.yaml", "workflows.yml") if _is_file(dstack / name)]
    folder = dstack / "workflows"
    if folder.is_dir():
        files += sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and _is_file(p))
    return files


def _is_file(path: Path) -> bool:
    return path.is_file() or (path.is_symlink() and not path.exists())


def load_workflows(root: Path) -> Workflows:
    """Load and validate every workflow file of the repo at ``root``.

    Raises:
        NoWorkflowsError: the repo has no workflow file.
        SpecErrors: any file has any problem; every problem of every file is listed.
    """
    workflows, errors = _read(root)
    if errors:
        raise SpecErrors(errors)
    return workflows


def check_workflows(root: Path) -> tuple[Workflows, list[SpecError]]:
    """Every workflow of the repo at ``root`` that is valid on its own, and every problem found,
    unknown deps included, sorted by file and line: what `dstack validate` reports.

    Raises:
        NoWorkflowsError: the repo has no workflow file.
    """
    workflows, errors = _read(root)
    key = _in_file_order([f.relative_to(root).as_posix() for f in workflows.files])
    return workflows, sorted([*errors, *workflows.unresolved], key=key)


def load_for(root: Path, target: str) -> tuple[Workflows, list[SpecError]]:
    """The workflows of the repo at ``root`` for `dstack run|plan TARGET`, and the problems that
    do not stop it (for a warning): those of workflows ``target`` does not need.

    ``target`` fails on the problems of the workflows it needs (itself and its deps, all the way
    up) and on those outside any workflow (YAML syntax, the top level) in their files; when one
    of them is defined in no file, on every problem outside a workflow too (it may be in a file
    that did not load). A provider that no file names as a workflow needs no workflow file.
    The workflows' ``warnings`` are narrowed to those about the workflows ``target`` needs
    (`dstack validate` lists them all): a legacy key elsewhere is not this run's business.

    Raises:
        NoWorkflowsError: the repo has no workflow file.
        SpecErrors: the problems that stop ``target``, unknown deps of the workflows it needs included.
    """
    workflows, errors = check_workflows(root)
    if target in PROVIDERS and not _defined(workflows, target):
        workflows.warnings = []
        return workflows, errors
    needed, missing = _needed(workflows, target)
    workflows.warnings = workflows.warnings_about(needed)
    files = {_source_of(workflows, name).path for name in needed if _defined(workflows, name)}
    stopping: list[SpecError] = []
    other: list[SpecError] = []
    for error in errors:
        owners = workflows.owners_of(error)
        outside = not owners and (missing or error.path in files)
        (stopping if owners & needed or outside else other).append(error)
    if stopping:
        raise SpecErrors(stopping)
    return workflows, other


def _needed(workflows: Workflows, target: str) -> tuple[set[str], bool]:
    """The workflows ``target`` needs, itself included, and whether one is defined nowhere."""
    needed: set[str] = set()
    missing = False
    todo = [target]
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        if name in workflows.by_name:
            deps = workflows.by_name[name].deps
        elif name in workflows.broken:
            deps = [dep for _, dep in workflows.broken[name][1]]
        else:
            missing = True
            continue
        for dep in deps:  # an owner/repo/NAME dep with no NAME here is skipped
            if dep.kind == "workflow" and (dep.repo is None or _defined(workflows, dep.name)):
                todo.append(dep.name)
    return needed, missing


def _defined(workflows: Workflows, name: str) -> bool:
    return name in workflows.by_name or name in workflows.broken


def _source_of(workflows: Workflows, name: str) -> Source:
    return workflows.sources[name] if name in workflows.sources else workflows.broken[name][0]


def _read(root: Path) -> tuple[Workflows, list[SpecError]]:
    files = workflow_files(root)
    if not files:
        msg = f"No workflow files in {root / '.dstack'}"
        raise NoWorkflowsError(
            msg, hint="run `dstack init` to create .dstack/workflows.yaml with a first workflow"
        )
    texts: list[tuple[str, str | None]] = []
    errors: list[SpecError] = []
    for file in files:
        shown = file.relative_to(root).as_posix()
        try:
            data = file.read_bytes()
            texts.append((shown, data.decode("utf-8")))
        except UnicodeDecodeError as exc:
            errors.append(_not_utf8(shown, data, exc.start))
            texts.append((shown, None))
        except OSError as exc:
            errors.append(SpecError(_unreadable(file, exc), path=shown))
            texts.append((shown, None))
    workflows, errors = _build(root, files, texts, errors)
    if any(workflow.inputs for workflow in workflows.by_name.values()):
        key = _in_file_order([shown for shown, _ in texts])
        _warn_unmatched_inputs(workflows)
        workflows.warnings.sort(key=key)
    return workflows, errors


def _warn_unmatched_inputs(workflows: Workflows) -> None:
    """Warn of each `inputs` entry that matches no file of the code snapshot (as the cache key
    reads it): with none, the step's code key never changes, and a typo reuses old results
    forever. An entry holding `${{` is left out: run args complete it."""
    from dstack_prefect.engine._cache import code_files  # noqa: PLC0415 - the engine imports spec
    from dstack_prefect.engine._snapshot import take_snapshot  # noqa: PLC0415
    from dstack_prefect.graph import Step  # noqa: PLC0415

    files = take_snapshot(workflows.root).files
    code = dict.fromkeys(files, "")
    for name, workflow in workflows.by_name.items():
        for j, entry in enumerate(workflow.inputs or []):
            if "${{" in entry or code_files(Step(name=name, inputs=[entry]), code):
                continue
            message = (
                f"{entry!r} matches no file in the repo's code (tracked, or untracked and not ignored),"
                f" so no change would make the step run again{did_you_mean(entry, files)}"
            )
            workflows.warn(workflows.sources[name].warning(("inputs", j), message), name)


def _not_utf8(shown: str, data: bytes, start: int) -> SpecError:
    """The first byte that is not UTF-8, at its line and column (a whole file in UTF-16 is
    named as such)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return SpecError("UTF-16 text, expected UTF-8; save the file as UTF-8", path=shown)
    line_start = data.rfind(b"\n", 0, start) + 1
    line_end = data.find(b"\n", start)
    text = data[line_start : line_end if line_end >= 0 else len(data)].decode("utf-8", errors="replace")
    text = text.removesuffix("\r")
    line = data.count(b"\n", 0, start) + 1
    col = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    byte = data[start]
    guess = f" (Latin-1 {bytes([byte]).decode('latin-1')!r}?)" if byte >= 0xA0 else ""
    message = f"byte 0x{byte:02x} is not UTF-8{guess}, expected UTF-8 text; save the file as UTF-8"
    return SpecError(message, path=shown, line=line, col=col, snippet=_locate.snippet([text], 1, col))


def _unreadable(file: Path, exc: OSError) -> str:
    if file.is_symlink() and not file.exists():
        return (
            f"cannot be read: it links to {os.readlink(file)}, which does not exist; fix or remove the link"
        )
    return f"cannot be read: {exc.strerror or exc}"


def load_text(text: str, path: str = "workflows.yaml", *, root: Path | None = None) -> Workflows:
    """Load one workflow file's ``text``, shown in messages as ``path``.

    Raises:
        SpecErrors: every problem in the text.
    """
    workflows, errors = _build(root or Path(), [], [(path, text)], [])
    if errors:
        raise SpecErrors(errors)
    return workflows


def _build(
    root: Path, files: list[Path], texts: list[tuple[str, str | None]], errors: list[SpecError]
) -> tuple[Workflows, list[SpecError]]:
    result = Workflows(root=root, files=files)
    named: set[str] = set()  # every name written, valid or not, so a dep on a broken one is no "unknown"
    for shown, text in texts:
        if text is not None:
            errors += _load_file(result, shown, text, named)
    key = _in_file_order([shown for shown, _ in texts])
    errors += _check_graph(result, named, [shown for shown, _ in texts])
    errors.sort(key=key)
    result.warnings = sorted(_once_per_place(result.warnings), key=key)
    result.unresolved.sort(key=key)
    return result, errors


def _in_file_order(shown: list[str]) -> Callable[[SpecError | SpecWarning], tuple[int, int, int]]:
    """A sort key: the file's place in load order (``shown``), then line, then column."""
    order = {path: i for i, path in enumerate(shown)}
    return lambda p: (order.get(p.path, len(order)), p.line, p.col)


def _check_graph(result: Workflows, named: set[str], file_order: list[str]) -> list[SpecError]:
    """Cycles are errors. A workflow dep of this repo that no file defines goes to
    ``result.unresolved`` (an error for validate and for a plan that needs it); a dep on a
    workflow that is written but invalid is left to that workflow's own errors. Workflows with
    problems of their own take part with the deps they have that are valid."""
    errors = []
    names = list(result.by_name)
    placed: dict[str, tuple[Source, list[tuple[int, Dep]]]] = {
        name: (result.sources[name], list(enumerate(workflow.deps)))
        for name, workflow in result.by_name.items()
    }
    for name, (source, deps) in result.broken.items():
        placed.setdefault(name, (source, deps))
    files = {path: i for i, path in enumerate(file_order)}
    placed = dict(sorted(placed.items(), key=lambda kv: (files.get(kv[1][0].path, -1), kv[1][0].line)))
    for name, (source, deps) in placed.items():
        for j, dep in deps:
            if dep.kind == "workflow" and dep.repo is None and dep.name not in named:
                others = [n for n in names if n != name]  # never the workflow itself: a self-cycle
                message = f"unknown workflow '{dep.name}' in deps{did_you_mean(dep.name, others)}"
                result.unresolved.append(source.error(("deps", j), message))
                result.own(result.unresolved[-1], name)
            elif dep.repo is not None and name in result.by_name:
                message = f"the repo prefix '{dep.repo}' is ignored, as dstack 0.9 did" + (
                    f": the dep is this repo's '{dep.name}'"
                    if dep.name in named
                    else f", and this repo has no '{dep.name}': the dep is skipped"
                )
                result.warn(source.warning(("deps", j), message), name)
    edges = {
        name: [
            (j, dep.name)
            for j, dep in deps
            if dep.kind == "workflow" and dep.repo is None and dep.name in placed
        ]
        for name, (_, deps) in placed.items()
    }
    for cycle in _cycles(edges):
        j = next(j for j, target in edges[cycle[0]] if target == cycle[1])
        errors.append(placed[cycle[0]][0].error(("deps", j), f"deps form a cycle: {' -> '.join(cycle)}"))
        result.own(errors[-1], cycle[0])
    return errors


def local_deps(workflows: Workflows, workflow: Workflow) -> list[str]:
    """Names of the workflows of this repo that ``workflow`` depends on, in the order written."""
    out: list[str] = []
    for dep in workflow.deps:
        if dep.kind == "workflow" and dep.name in workflows.by_name and dep.name not in out:
            out.append(dep.name)
    return out


def _cycles(edges: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """Each cycle of ``edges`` (name -> its deps, in order) once, as ``[a, b, a]``, starting at the
    first workflow (in file order) on it."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def deps(name: str) -> list[str]:
        return list(dict.fromkeys(target for _, target in edges[name]))

    for start in edges:
        if state.get(start):
            continue
        path: list[str] = [start]
        stack: list[tuple[str, list[str]]] = [(start, deps(start))]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop(0)
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, deps(nxt)))
    return cycles
