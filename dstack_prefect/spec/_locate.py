"""Turn pydantic's validation errors into one clear located message each.

A pydantic error has a ``loc`` such as ``("resources", "gpu", "count")``; the YAML node for it
gives the line and column (stepping up to the parent where that node does not exist, e.g. a
missing key). Messages read ``got X, expected Y``; unknown keys suggest the closest known key.
An error that stands for several findings (`_models.fail_each`) becomes one Located per finding.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from dstack_prefect.errors import SpecError
from dstack_prefect.spec._fields import (
    Issue,
    current_keys,
    did_you_mean,
    same_but_spelling,
    show,
    squash,
    unknown_key,
)
from dstack_prefect.spec._models import PROVIDERS, WorkflowFile
from dstack_prefect.spec._yaml import Parsed, Path

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

_MISSING = {  # what a required key holds, for "missing key" messages
    "name": "a name such as 'train'",
    "provider": f"one of {', '.join(PROVIDERS)}",
    "path": "a path such as 'output'",
}


def key_path(path: Path) -> str:
    """``("workflows", 2, "resources")`` -> ``workflows[2].resources``."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else str(seg))
    return out


def snippet(lines: list[str], line: int, col: int) -> str:
    """The source line at ``line`` and a caret under ``col`` (both 1-based)."""
    if not 1 <= line <= len(lines):
        return ""
    text = lines[line - 1]
    pad = "".join("\t" if c == "\t" else " " for c in text[: col - 1])
    return f"    {text}\n    {pad}^"


@dataclass(frozen=True)
class Located:
    """Where a problem is, ready to become a SpecError or a warning."""

    path: str
    line: int
    col: int
    key: str
    message: str


def _model_at(path: Path) -> type[BaseModel] | None:
    model: type[BaseModel] | None = WorkflowFile
    for seg in path:
        if isinstance(seg, int):
            continue
        if model is None or seg not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[seg].annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


_MEANT = {  # another tool's word (or a common slip) -> the key meant, from the model the key is in
    "Workflow": {
        "environment": "env",
        "enviroment": "env",
        "variables": "env",
        "setupcommands": "setup",
        "spot": "resources.interruptible",
        "preemptible": "resources.interruptible",
        "shm": "resources.shm_size",
    },
    "Resources": {"spot": "interruptible", "preemptible": "interruptible", "shm": "shm_size"},
}


def _meant(key: str, model: type[BaseModel]) -> str:
    """``"did you mean 'x'?"`` or where ``key`` belongs (`spot`: under 'resources' as
    'interruptible'), for a key of another tool or a common slip; else ``""``."""
    meant = _MEANT.get(model.__name__, {}).get(squash(key))
    if meant is None:
        return ""
    block, _, inner = meant.rpartition(".")
    if not block:
        return f"did you mean '{inner}'?"
    return f"it belongs under '{block}' as '{inner}', indent it below '{block}:'"


def _misplaced(key: str, parent: Path, model: type[BaseModel]) -> str:
    """Where ``key``, unknown in ``model`` (at ``parent``), belongs when it is a key of a block
    one level in (`cpu` beside `resources:`, `shm-size` too) or out (`setup` under
    `resources:`); else ``""``."""
    for name, info in model.model_fields.items():
        inner = _inner_model(info.annotation)
        same = same_but_spelling(key, list(inner.model_fields)) if inner is not None else None
        if same is not None:
            if typing.get_origin(info.annotation) is list:
                return f"it belongs in an item of '{name}', e.g. '{name}: [{{{same}: ...}}]'"
            written = f" as '{same}'" if same != key else ""
            return f"it belongs under '{name}'{written}, indent it below '{name}:'"
    names = [seg for seg in parent if isinstance(seg, str)]
    for depth in range(len(parent) - 1, 1, -1):  # the workflow (workflows[i]) at the shallowest
        outer = _model_at(parent[:depth])
        same = same_but_spelling(key, list(outer.model_fields)) if outer is not None else None
        if same is not None:
            owner = "the workflow" if depth == 2 else f"'{parent[depth - 1]}'"
            written = f" (as '{same}')" if same != key else ""
            return (
                f"it is a key of {owner}{written}, not of '{names[-1]}': indent it level with '{names[-1]}:'"
            )
    return ""


def describe(error: ErrorDetails, loc: Path) -> tuple[str, bool]:
    """The message for one pydantic error, and whether it points at a key (not a value)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "dstack":
        return str(ctx["message"]), False
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        key, known = str(loc[-1]), list(model.model_fields) if model else []
        meant = _meant(key, model) if model is not None else ""
        if meant:
            return f"unknown key '{key}'; {meant}", True
        close = same_but_spelling(key, known) or difflib.get_close_matches(key, known, n=1, cutoff=0.8)
        if model is not None and not close:
            misplaced = _misplaced(key, loc[:-1], model)
            if misplaced:
                return f"unknown key '{key}'; {misplaced}", True
        if known and not did_you_mean(key, known):  # no close key, legacy ones included
            known = current_keys(model) if model else []
        return unknown_key(key, known), True
    if kind == "missing":
        expected = _MISSING.get(str(loc[-1]))
        return f"missing key '{loc[-1]}'" + (f", expected {expected}" if expected else ""), False
    if kind == "string_type" and isinstance(value, dict) and len(value) == 1:  # `- echo time: now`
        ((k, v),) = value.items()
        if isinstance(k, str) and not isinstance(v, dict | list):
            text = f"{k}: {v if isinstance(v, str) else show(v)}" if v is not None else f"{k}:"
            quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
            hint = f"its ': ' made YAML read a mapping, quote the whole line: {quoted}"
            return f"got a mapping, expected a string; {hint}", False
    if kind == "list_type" and isinstance(value, str | int | float) and not isinstance(value, bool):
        return f"got {show(value)}, expected a list, e.g. [{value}]", False
    if kind in _EXPECTED:
        return f"got {show(value)}, expected {_EXPECTED[kind]}", False
    if kind == "greater_than_equal":
        return f"got {show(value)}, expected a number >= {ctx.get('ge')}", False
    if kind == "less_than_equal":
        return f"got {show(value)}, expected a number <= {ctx.get('le')}", False
    if kind == "literal_error":
        return f"got {show(value)}, expected {ctx.get('expected')}", False
    return f"got {show(value)}: {error['msg']}", False


def locate(parsed: Parsed, shown: str, prefix: Path, error: ErrorDetails) -> list[Located]:
    """Place one pydantic error (raised for the data at ``prefix``) in the file: one Located, or
    one per finding when the error lists several (``ctx["issues"]``)."""
    full = (*prefix, *(seg for seg in error["loc"] if isinstance(seg, int | str)))
    issues: list[Issue] = (error.get("ctx") or {}).get("issues") or []
    if issues:
        return [_at(parsed, shown, (*full, *i.loc), i.message, at_key=i.at_key) for i in issues]
    message, at_key = describe(error, full)
    if error["type"] == "missing":
        full = full[:-1]
    line, col = parsed.locate(full, key=at_key)
    shown_key = full[:-1] if at_key else full
    return [Located(shown, line, col, key_path(shown_key), message)]


def _at(parsed: Parsed, shown: str, path: Path, message: str, *, at_key: bool) -> Located:
    """A finding at ``path`` (at its key when ``at_key``, e.g. a bad name in a mapping)."""
    line, col = parsed.locate(path, key=at_key)
    return Located(shown, line, col, key_path(path), message)


def to_error(where: Located, lines: list[str]) -> SpecError:
    """A SpecError with the snippet of ``lines`` under it."""
    return SpecError(
        where.message,
        path=where.path,
        line=where.line,
        col=where.col,
        key=where.key,
        snippet=snippet(lines, where.line, where.col),
    )
