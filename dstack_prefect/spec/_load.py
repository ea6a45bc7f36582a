"""Find, read and validate every workflow file of a repo in one pass.

    find_repo_root(cwd) -> root          the folder holding .dstack/
    workflow_files(root) -> [files]      .dstack/workflows.y(a)ml + .dstack/workflows/*.y(a)ml
    load_workflows(root) -> Workflows    every file, every problem, one SpecErrors

Problems of all files are collected and raised together. Legacy forms (before_run,
requirements, resources.local, deps mount, ports as a count) load with a located warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dstack_prefect.errors import NoWorkflowsError, SpecError, SpecErrors
from dstack_prefect.spec import _locate
from dstack_prefect.spec._locate import Located
from dstack_prefect.spec._models import Workflow, WorkflowFile, did_you_mean, show
from dstack_prefect.spec._yaml import Parsed, YAMLSyntaxProblem, parse
from dstack_prefect.spec._yaml import Path as KeyPath

_ROOT_KEYS = list(WorkflowFile.model_fields)


@dataclass(frozen=True)
class SpecWarning:
    """A located note about a file that still loads, e.g. a legacy key and its modern form."""

    path: str
    line: int
    col: int
    key: str
    message: str

    def __str__(self) -> str:
        keypart = f"{self.key}: " if self.key else ""
        return f"{self.path}:{self.line}:{self.col}: {keypart}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "key": self.key,
            "message": self.message,
        }


@dataclass
class Source:
    """Where one workflow is defined, with what is needed to locate anything inside it."""

    path: str
    line: int
    parsed: Parsed
    index: int
    lines: list[str]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    def error(self, loc: KeyPath, message: str) -> SpecError:
        """A SpecError at ``loc`` inside this workflow (e.g. ``("deps", 0)``)."""
        full = ("workflows", self.index, *loc)
        line, col = self.parsed.locate(full)
        where = Located(self.path, line, col, _locate.key_path(full), message)
        return _locate.to_error(where, self.lines)

    def warning(self, loc: KeyPath, message: str, *, at_key: bool = False) -> SpecWarning:
        full = ("workflows", self.index, *loc)
        line, col = self.parsed.locate(full, key=at_key)
        shown = full[:-1] if at_key else full
        return SpecWarning(self.path, line, col, _locate.key_path(shown), message)


@dataclass
class Workflows:
    """Every workflow of a repo, by name, with where each is defined and any warnings."""

    root: Path
    files: list[Path] = field(default_factory=list)
    by_name: dict[str, Workflow] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    warnings: list[SpecWarning] = field(default_factory=list)

    def source(self, name: str) -> str:
        """``file:line`` where workflow ``name`` is defined."""
        return str(self.sources[name])

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __len__(self) -> int:
        return len(self.by_name)


def find_repo_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` that holds a ``.dstack/`` folder.

    Raises:
        NoWorkflowsError: no such folder up to the filesystem root.
    """
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".dstack").is_dir():
            return folder
    msg = f"No .dstack/ folder in {start} or any folder above it"
    raise NoWorkflowsError(msg)


def workflow_files(root: Path) -> list[Path]:
    """The workflow files of the repo at ``root``, sorted."""
    dstack = root / ".dstack"
    files = [dstack / name for name in ("workflows.yaml", "workflows.yml") if (dstack / name).is_file()]
    folder = dstack / "workflows"
    if folder.is_dir():
        files += sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return files


def load_workflows(root: Path) -> Workflows:
    """Load and validate every workflow file of the repo at ``root``.

    Raises:
        NoWorkflowsError: the repo has no workflow file.
        SpecErrors: any file has any problem; every problem of every file is listed.
    """
    files = workflow_files(root)
    if not files:
        msg = f"No workflow files in {root / '.dstack'}"
        raise NoWorkflowsError(msg, hint="create .dstack/workflows.yaml with a `workflows:` list")
    texts: list[tuple[str, str | None]] = []
    errors: list[SpecError] = []
    for file in files:
        shown = file.relative_to(root).as_posix()
        try:
            texts.append((shown, file.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            errors.append(SpecError("not UTF-8 text, expected a UTF-8 YAML file", path=shown))
    return _build(root, files, texts, errors)


def load_text(text: str, path: str = "workflows.yaml", *, root: Path | None = None) -> Workflows:
    """Load one workflow file's ``text``, shown in messages as ``path``.

    Raises:
        SpecErrors: every problem in the text.
    """
    return _build(root or Path(), [], [(path, text)], [])


def _build(root: Path, files: list[Path], texts: list[tuple[str, Any]], errors: list[SpecError]) -> Workflows:
    result = Workflows(root=root, files=files)
    for shown, text in texts:
        errors += _load_file(result, shown, text)
    errors += _check_graph(result)
    if errors:
        raise SpecErrors(errors)
    return result


def _load_file(result: Workflows, shown: str, text: str) -> list[SpecError]:
    lines = text.splitlines()
    try:
        parsed = parse(text)
    except YAMLSyntaxProblem as exc:
        line, col = exc.pos
        if lines and line > len(lines):  # the parser stopped at the end of the file
            line, col = len(lines), len(lines[-1]) + 1
        return [
            SpecError(exc.message, path=shown, line=line, col=col, snippet=_locate.snippet(lines, line, col))
        ]
    found = [Located(shown, *p.pos, _locate.key_path(p.path), p.message) for p in parsed.problems]
    data = parsed.data
    if data is None:
        found.append(Located(shown, 1, 1, "", "an empty file, expected a mapping with a 'workflows' list"))
    elif not isinstance(data, dict):
        found.append(
            Located(shown, 1, 1, "", f"got {show(data)}, expected a mapping with a 'workflows' list")
        )
    else:
        found += _root_problems(parsed, shown, data)
        items = data.get("workflows")
        for index, item in enumerate(items if isinstance(items, list) else []):
            found += _load_item(result, parsed, shown, lines, index, item)
    found.sort(key=lambda w: (w.line, w.col))
    return [_locate.to_error(w, lines) for w in found]


def _root_problems(parsed: Parsed, shown: str, data: dict[str, Any]) -> list[Located]:
    found = []
    for key in data:
        if key not in _ROOT_KEYS:
            line, col = parsed.locate((key,), key=True)
            found.append(Located(shown, line, col, "", f"unknown key '{key}'{did_you_mean(key, _ROOT_KEYS)}"))
    if "workflows" not in data:
        if not found:
            found.append(Located(shown, 1, 1, "", "missing key 'workflows', expected a list of workflows"))
    elif not isinstance(data["workflows"], list):
        line, col = parsed.locate(("workflows",))
        message = f"got {show(data['workflows'])}, expected a list of workflows"
        found.append(Located(shown, line, col, "workflows", message))
    return found


def _load_item(
    result: Workflows, parsed: Parsed, shown: str, lines: list[str], index: int, item: Any
) -> list[Located]:
    prefix = ("workflows", index)
    try:
        workflow = Workflow.model_validate(item)
    except ValidationError as exc:
        return [_locate.locate(parsed, shown, prefix, e) for e in exc.errors(include_url=False)]
    line = parsed.locate(prefix)[0]
    source = Source(shown, line, parsed, index, lines)
    result.warnings += _legacy_warnings(source, item)
    first = result.sources.get(workflow.name)
    if first is not None:
        line, col = parsed.locate((*prefix, "name"))
        message = f"duplicate workflow name '{workflow.name}', first defined at {first}"
        return [Located(shown, line, col, _locate.key_path((*prefix, "name")), message)]
    result.by_name[workflow.name] = workflow
    result.sources[workflow.name] = source
    return []


def _legacy_warnings(source: Source, item: dict[str, Any]) -> list[SpecWarning]:
    out = []
    if "before_run" in item:
        out.append(source.warning(("before_run",), "legacy key 'before_run', use 'setup'", at_key=True))
    if "requirements" in item:
        message = "legacy key 'requirements', put 'pip install -r FILE' in 'setup'"
        out.append(source.warning(("requirements",), message, at_key=True))
    resources = item.get("resources")
    if isinstance(resources, dict) and "local" in resources:
        message = "legacy key 'local' has no effect: runs are local by default"
        out.append(source.warning(("resources", "local"), message, at_key=True))
    for j, dep in enumerate(item.get("deps") or []):
        if isinstance(dep, dict) and "mount" in dep:
            message = "legacy key 'mount' in deps is ignored; set 'mount: true' on the upstream's artifacts"
            out.append(source.warning(("deps", j, "mount"), message, at_key=True))
    ports = item.get("ports")
    if isinstance(ports, int) and not isinstance(ports, bool):
        message = f"legacy port count {ports}, list the ports instead, e.g. 'ports: [8000]'"
        out.append(source.warning(("ports",), message))
    return out


def _check_graph(result: Workflows) -> list[SpecError]:
    """Unknown workflow deps are warnings (the dep may be another repo's or an old run's);
    cycles are errors."""
    errors = []
    names = list(result.by_name)
    for name, workflow in result.by_name.items():
        for j, dep in enumerate(workflow.deps):
            if dep.kind == "workflow" and dep.repo is None and dep.name not in result.by_name:
                message = f"unknown workflow '{dep.name}' in deps{did_you_mean(dep.name, names)}"
                result.warnings.append(result.sources[name].warning(("deps", j), message))
    for cycle in find_cycles(result):
        first = result.sources[cycle[0]]
        j = next(
            j
            for j, d in enumerate(result.by_name[cycle[0]].deps)
            if d.kind == "workflow" and d.name == cycle[1]
        )
        errors.append(first.error(("deps", j), f"deps form a cycle: {' -> '.join(cycle)}"))
    return errors


def local_deps(workflows: Workflows, workflow: Workflow) -> list[str]:
    """Names of the workflows of this repo that ``workflow`` depends on, in the order written."""
    out: list[str] = []
    for dep in workflow.deps:
        if (
            dep.kind == "workflow"
            and dep.repo is None
            and dep.name in workflows.by_name
            and dep.name not in out
        ):
            out.append(dep.name)
    return out


def find_cycles(workflows: Workflows) -> list[list[str]]:
    """Each dep cycle once, as ``[a, b, a]``, starting at the first workflow (in file order) on it."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []
    for start in workflows.by_name:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, list[str]]] = [(start, local_deps(workflows, workflows.by_name[start]))]
        state[start] = 1
        path.append(start)
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
                stack.append((nxt, local_deps(workflows, workflows.by_name[nxt])))
    return cycles
