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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dstack_prefect.errors import NoWorkflowsError, SpecError, SpecErrors
from dstack_prefect.settings import Settings
from dstack_prefect.spec import _locate
from dstack_prefect.spec._fields import did_you_mean, show, unknown_key
from dstack_prefect.spec._locate import Located
from dstack_prefect.spec._models import PROVIDERS, Dep, Workflow, WorkflowFile
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
    unresolved: list[SpecError] = field(default_factory=list)
    """Deps naming a workflow no file defines, located: errors for validate and for a plan."""
    broken: dict[str, tuple[Source, list[tuple[int, Dep]]]] = field(default_factory=dict)
    """Workflows that did not validate, by name: where, and their deps that are valid on their
    own (checked with the others' for unknown names and cycles)."""
    owners: dict[tuple[str, int, int, str], set[str]] = field(default_factory=dict)
    """Each problem inside a workflow (by path, line, col, message): the names of the workflows
    it is in (several for one in an anchor that several merge). A problem outside any workflow
    (YAML syntax, the top level, an item without a name) has none."""

    def source(self, name: str) -> str:
        """``file:line`` where workflow ``name`` is defined."""
        return str(self.sources[name])

    def own(self, where: Located | SpecError, name: str) -> None:
        """Note that the problem at ``where`` is inside workflow ``name``."""
        message = where.message if isinstance(where, Located) else where.detail
        self.owners.setdefault((where.path, where.line, where.col, message), set()).add(name)

    def owners_of(self, error: SpecError) -> set[str]:
        """The workflows ``error`` is inside; none for a problem outside any workflow."""
        return self.owners.get((error.path, error.line, error.col, error.detail), set())

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __len__(self) -> int:
        return len(self.by_name)


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

    Raises:
        NoWorkflowsError: the repo has no workflow file.
        SpecErrors: the problems that stop ``target``, unknown deps of the workflows it needs included.
    """
    workflows, errors = check_workflows(root)
    if target in PROVIDERS and not _defined(workflows, target):
        return workflows, errors
    needed, missing = _needed(workflows, target)
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
        raise NoWorkflowsError(msg, hint="create .dstack/workflows.yaml with a `workflows:` list")
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
        workflows.warnings = sorted([*workflows.warnings, *_inputs_warnings(workflows)], key=key)
    return workflows, errors


def _inputs_warnings(workflows: Workflows) -> list[SpecWarning]:
    """Each `inputs` entry that matches no file of the code snapshot (as the cache key reads it):
    with none, the step's code key never changes, and a typo reuses old results forever. An
    entry holding `${{` is left out: run args complete it."""
    from dstack_prefect.engine._cache import code_files  # noqa: PLC0415 - the engine imports spec
    from dstack_prefect.engine._snapshot import take_snapshot  # noqa: PLC0415
    from dstack_prefect.graph import Step  # noqa: PLC0415

    files = take_snapshot(workflows.root).files
    code = dict.fromkeys(files, "")
    out = []
    for name, workflow in workflows.by_name.items():
        for j, entry in enumerate(workflow.inputs or []):
            if "${{" in entry or code_files(Step(name=name, inputs=[entry]), code):
                continue
            message = (
                f"{entry!r} matches no file in the repo's code (tracked, or untracked and not ignored),"
                f" so no change would make the step run again{did_you_mean(entry, files)}"
            )
            out.append(workflows.sources[name].warning(("inputs", j), message))
    return out


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


def _load_file(result: Workflows, shown: str, text: str, named: set[str]) -> list[SpecError]:
    text = text.removeprefix("\ufeff")  # a byte order mark: not part of line 1 for columns and snippets
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
    items = data.get("workflows") if isinstance(data, dict) else None
    items = items if isinstance(items, list) else []
    for problem, where in zip(parsed.problems, found, strict=True):
        if problem.path[:1] == ("workflows",) and len(problem.path) > 1:
            _own(result, where, items, problem.path[1])
    if data is None:
        found.append(Located(shown, 1, 1, "", "an empty file, expected a mapping with a 'workflows' list"))
    elif not isinstance(data, dict):
        message = f"got {show(data)}, expected a mapping with a 'workflows' list"
        if isinstance(data, list):
            message += "; put 'workflows:' on a line above the list"
        found.append(Located(shown, 1, 1, "", message))
    else:
        found += _root_problems(parsed, shown, data)
        for index, item in enumerate(items):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                named.add(item["name"])
            mine = _load_item(result, parsed, shown, lines, index, item)
            for where in mine:
                _own(result, where, items, index)
            found += mine
    found.sort(key=lambda w: (w.line, w.col))
    return [_locate.to_error(w, lines) for w in _once_per_place(found)]


def _own(result: Workflows, where: Located, items: list[Any], index: object) -> None:
    """Note the problem at ``where`` as inside item ``index`` of ``items``, if it has a name."""
    item = items[index] if isinstance(index, int) and 0 <= index < len(items) else None
    if isinstance(item, dict) and isinstance(item.get("name"), str):
        result.own(where, item["name"])


_Placed = TypeVar("_Placed", Located, SpecWarning)


def _once_per_place(found: list[_Placed]) -> list[_Placed]:
    """One problem (or warning) per place and message, the first: an anchor merged into several
    workflows (or an alias used twice) has it found once per use, each under another key path."""
    seen: set[tuple[str, int, int, str]] = set()
    out = []
    for where in found:
        place = (where.path, where.line, where.col, where.message)
        if place not in seen:
            seen.add(place)
            out.append(where)
    return out


def _root_problems(parsed: Parsed, shown: str, data: dict[str, Any]) -> list[Located]:
    """Unknown top-level keys (an ``x-`` key holds shared settings to alias, and is passed over),
    a missing or non-list `workflows`, and a workflow written without the list around it."""
    unknown = [key for key in data if key not in _ROOT_KEYS and not _is_extension(key)]
    if "workflows" not in data and unknown and _looks_like_a_workflow({k: data[k] for k in unknown}):
        keys = ", ".join(map(str, unknown[:3]))
        name = data.get("name") if isinstance(data.get("name"), str) else "train"
        message = (
            f"got a workflow's keys ({keys}) at the top level, expected them in a list under"
            f" 'workflows:', e.g. 'workflows:' then '  - name: {name}'"
        )
        return [Located(shown, *parsed.locate((unknown[0],), key=True), "", message)]
    found = []
    for key in unknown:
        line, col = parsed.locate((key,), key=True)
        message = unknown_key(str(key), _ROOT_KEYS)
        if not did_you_mean(str(key), _ROOT_KEYS):
            message += f" (a key for shared settings to alias starts with 'x-', e.g. 'x-{key}')"
        found.append(Located(shown, line, col, "", message))
    if "workflows" not in data:
        if not found:
            found.append(Located(shown, 1, 1, "", "missing key 'workflows', expected a list of workflows"))
    elif not isinstance(data["workflows"], list):
        line, col = parsed.locate(("workflows",))
        message = f"got {show(data['workflows'])}, expected a list of workflows"
        if isinstance(data["workflows"], dict) and _looks_like_a_workflow(data["workflows"]):
            message += "; start each workflow with '- ', e.g. '  - name: a'"
        found.append(Located(shown, line, col, "workflows", message))
    return found


def _is_extension(key: object) -> bool:
    """A top-level ``x-`` key, as in docker-compose: shared settings for anchors and aliases."""
    return isinstance(key, str) and key.startswith("x-")


def _looks_like_a_workflow(data: dict[Any, Any]) -> bool:
    """Every key is a workflow key, `name` or `provider` among them."""
    fields = Workflow.model_fields
    return bool({"name", "provider"} & set(data)) and all(key in fields for key in data)


def _load_item(
    result: Workflows, parsed: Parsed, shown: str, lines: list[str], index: int, item: Any
) -> list[Located]:
    prefix = ("workflows", index)
    try:
        workflow = Workflow.model_validate(item)
    except ValidationError as exc:
        _keep_deps_of_broken(result, Source(shown, parsed.locate(prefix)[0], parsed, index, lines), item)
        errors = [*exc.errors(include_url=False), *_errors_beside(item, exc)]
        return [w for e in errors for w in _locate.locate(parsed, shown, prefix, e)]
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


_STAND_INS: dict[str, Any] = {"name": "_", "provider": "code", "commands": ["true"], "image": "x"}
"""Valid values put in for a failed key that the whole-workflow checks read (a required key, or
one the provider requires), so that they run and do not report it missing as well."""


def _errors_beside(item: Any, exc: ValidationError) -> list[ErrorDetails]:
    """Every problem in one pass: pydantic skips the whole-workflow checks (repeated ports and
    deps, the provider's keys) when any key fails, so the workflow is validated again without
    the failed keys and the errors on the other keys are kept. An unknown key may be the
    provider's key misspelled (`comands`): then that key is not reported missing."""
    errors = exc.errors()
    failed = {str(e["loc"][0]) for e in errors if e["loc"]}
    if not isinstance(item, dict) or not failed:
        return []
    if any(e["type"] == "extra_forbidden" for e in errors):
        failed |= {"commands", "image"} - set(item)
    rest = {k: v for k, v in item.items() if str(k) not in failed}
    rest.update({k: v for k, v in _STAND_INS.items() if k in failed})
    try:
        Workflow.model_validate(rest)
    except ValidationError as again:
        return [e for e in again.errors(include_url=False) if not e["loc"] or str(e["loc"][0]) not in failed]
    return []


def _keep_deps_of_broken(result: Workflows, source: Source, item: Any) -> None:
    """A workflow with problems still has its deps checked (unknown names, cycles), so that
    validate lists every problem in one pass: its deps that are valid on their own are kept."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item["name"] in result.broken:
        return
    written = item.get("deps")
    deps = []
    for j, raw in enumerate(written if isinstance(written, list) else []):
        try:
            deps.append((j, Dep.model_validate(raw)))
        except ValidationError:
            continue
    result.broken[item["name"]] = (source, deps)


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
    out += _bare_memory_warnings(source, resources)
    auth = item.get("registry_auth")
    password = auth.get("password") if isinstance(auth, dict) else None
    if isinstance(password, str) and password and "${{" not in password:
        message = (
            "a password written in the file is kept with each run (in the Prefect flow run's plan);"
            " keep it in a secret: `dstack secrets add REGISTRY_PASSWORD`, then"
            " 'password: ${{ secrets.REGISTRY_PASSWORD }}'"
        )
        out.append(source.warning(("registry_auth", "password"), message))
    ports = item.get("ports")
    if isinstance(ports, int) and not isinstance(ports, bool):
        listed = [str(8000 + i) for i in range(ports)]
        listed = listed if ports <= 4 else [*listed[:2], "...", listed[-1]]
        message = f"legacy port count {ports}, list the ports instead, e.g. 'ports: [{', '.join(listed)}]'"
        out.append(source.warning(("ports",), message))
    return out


def _bare_memory_warnings(source: Source, resources: object) -> list[SpecWarning]:
    """`memory: 16` is 16 MiB: below a GiB, a bare number is more likely gigabytes meant."""
    if not isinstance(resources, dict):
        return []
    gpu = resources.get("gpu")
    sizes: list[tuple[KeyPath, object]] = [(("resources", "memory"), resources.get("memory"))]
    if isinstance(gpu, dict):
        sizes.append((("resources", "gpu", "memory"), gpu.get("memory")))
    out = []
    for loc, value in sizes:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1024:
            message = (
                f"{value} is {value} MiB (a bare number is MiB); write '{value}GB' for gigabytes,"
                f" or '{value}MiB' to keep it and silence this"
            )
            out.append(source.warning(loc, message))
    return out


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
                result.warnings.append(source.warning(("deps", j), message))
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
