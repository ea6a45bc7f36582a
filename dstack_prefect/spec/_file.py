"""One workflow file's text -> its valid workflows, their warnings, and every problem located.

The top level (unknown keys, a missing or non-list `workflows`), then each item: validated as a
`Workflow`, and when it fails, validated again without the failed keys so the whole-workflow
checks still run (`_errors_beside`); legacy forms load with a located warning.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dstack_prefect.errors import SpecError
from dstack_prefect.spec import _locate
from dstack_prefect.spec._blocks import Dep
from dstack_prefect.spec._fields import did_you_mean, show, unknown_key
from dstack_prefect.spec._locate import Located
from dstack_prefect.spec._models import Workflow, WorkflowFile
from dstack_prefect.spec._workflows import Source, SpecWarning, Workflows
from dstack_prefect.spec._yaml import Parsed, YAMLSyntaxProblem, parse
from dstack_prefect.spec._yaml import Path as KeyPath

_ROOT_KEYS = list(WorkflowFile.model_fields)


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
    duplicate = _duplicate_name(result, parsed, shown, prefix, item)
    try:
        workflow = Workflow.model_validate(item)
    except ValidationError as exc:
        _keep_deps_of_broken(result, Source(shown, parsed.locate(prefix)[0], parsed, index, lines), item)
        errors = [*exc.errors(include_url=False), *_errors_beside(item, exc)]
        return [*duplicate, *(w for e in errors for w in _locate.locate(parsed, shown, prefix, e))]
    line = parsed.locate(prefix)[0]
    source = Source(shown, line, parsed, index, lines)
    for warning in _legacy_warnings(source, item):
        result.warn(warning, workflow.name)
    if duplicate:
        return duplicate
    result.by_name[workflow.name] = workflow
    result.sources[workflow.name] = source
    return []


def _duplicate_name(
    result: Workflows, parsed: Parsed, shown: str, prefix: KeyPath, item: Any
) -> list[Located]:
    """The item's name when an earlier item took it, valid or not: validate lists the duplicate
    with the item's other problems, not only once the first definition is fixed."""
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(name, str):
        return []
    first = result.sources.get(name) or (result.broken[name][0] if name in result.broken else None)
    if first is None:
        return []
    line, col = parsed.locate((*prefix, "name"))
    message = f"duplicate workflow name '{name}', first defined at {first}"
    return [Located(shown, line, col, _locate.key_path((*prefix, "name")), message)]


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
