"""What the workflow models are made of: the error and suggestion helpers every check uses
(``fail``, ``Issue``, ``did_you_mean``), and the field types and checks that normalise short
forms (sizes, integers, string lists, ports) and keep paths inside their folder."""

from __future__ import annotations

import difflib
import posixpath
import re
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from dstack_prefect.spec._sizes import SIZE_EXPECTED, parse_size

NO_CLIMB = r"(?!\s*(\./+)*\.\.(/|\s*$))"  # does not start by climbing out with '..'
NOT_HOME = r"(?!\s*~(/|\s*$))"  # not `~` or under it
_SUB_FOLDER_PATTERN = rf"^(?!\s*(\.|~)?/*\s*$){NO_CLIMB}"  # not empty, `.`, `/`, `~` or `~/`

Loc = tuple[str | int, ...]


class Issue(NamedTuple):
    """One finding of a check that reports several: where (under the field) and what."""

    loc: Loc
    message: str
    at_key: bool = False


def fail(message: str) -> PydanticCustomError:
    """A validation error whose message is shown as written."""
    return PydanticCustomError("dstack", "{message}", {"message": message})


def fail_each(issues: list[Issue]) -> PydanticCustomError:
    """One validation error standing for several findings, each at its own place under the field.

    The message is the first finding's; the loader reports every finding from ``ctx["issues"]``.
    """
    return PydanticCustomError("dstack", "{message}", {"message": issues[0].message, "issues": issues})


def show(value: object) -> str:
    """How a bad value is quoted in a message: scalars as written, containers by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def squash(word: str) -> str:
    """``word`` with case, ``-`` and ``_`` left out: `ENV`, `shm-size` and `shmsize` are `env`
    and `shm_size` written another way."""
    return word.lower().replace("-", "").replace("_", "")


def same_but_spelling(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The one choice that is ``word`` in another case or with other separators, else None."""
    same = [c for c in choices if squash(c) == squash(word)]
    return same[0] if len(same) == 1 else None


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice (one written in another case first), or ``""``."""
    same = same_but_spelling(word, choices)
    close = [same] if same else difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_key(key: str, known: list[str]) -> str:
    """``unknown key 'k'`` with the closest known key, or else the known keys."""
    hint = did_you_mean(key, known)
    if hint or not known:
        return f"unknown key '{key}'{hint}"
    if len(known) == 1:
        return f"unknown key '{key}', expected '{known[0]}'"
    return f"unknown key '{key}', expected one of {', '.join(known)}"


def current_keys(model: type[BaseModel]) -> list[str]:
    """The keys of ``model`` that are not legacy, in the order the model lists them."""
    return [
        name for name, info in model.model_fields.items() if not (info.description or "").startswith("Legacy")
    ]


def accepts(input_type: Any) -> BeforeValidator:
    """Document a wider YAML input type in the JSON Schema; the model normalises it."""
    return BeforeValidator(lambda v: v, json_schema_input_type=input_type)


def _string_list(what: str) -> Any:
    def convert(value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [line for line in value.split("\n") if line.strip()]
        if not isinstance(value, list):
            msg = f"got {show(value)}, expected {what}"
            raise fail(msg)
        return value

    return BeforeValidator(convert, json_schema_input_type=str | list[str] | None)


Lines = Annotated[list[str], _string_list("a list of strings or one multi-line string")]


def _size(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        msg = f"got {show(value)}, expected {SIZE_EXPECTED}"
        raise fail(msg)
    try:
        return parse_size(value)
    except ValueError as exc:
        msg = str(exc)
        raise fail(msg) from None


def _integer(value: Any) -> Any:
    """YAML `true` and `"2"` are not numbers (pydantic would take them as 1 and 2; JSON Schema
    would not)."""
    if isinstance(value, bool | str):
        msg = f"got {show(value)}, expected an integer"
        raise fail(msg)
    return value


INTEGER = BeforeValidator(_integer)
StrictFlag = Annotated[bool, Field(strict=True)]  # `"yes"` and `1` are not booleans

_SizeText = Annotated[
    str, Field(pattern=r"^\s*(?=[^1-9]*[1-9])\d+(\.\d+)?\s*([KkMmGgTt]([Ii]?[Bb]|[Ii])?)?\s*$")
]
Size = Annotated[
    int | None, BeforeValidator(_size, json_schema_input_type=_SizeText | Annotated[int, Field(ge=1)] | None)
]
PortNumber = Annotated[int, Field(ge=1, le=65535)]
PORT_RE = re.compile(r"^\s*([0-9]+)\s*(?::\s*([0-9]+)\s*)?$")
# 1-65535 (leading zeros allowed), as a regex for the JSON Schema
_PORT_DIGITS = r"0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
PortText = Annotated[str, Field(pattern=rf"^\s*{_PORT_DIGITS}\s*(:\s*{_PORT_DIGITS}\s*)?$")]
ArtifactText = Annotated[str, Field(pattern=_SUB_FOLDER_PATTERN)]
CacheText = ArtifactText


def _climbs_out(path: str) -> bool:
    """``path`` (relative) leaves its folder through ``..``: ``..``, ``../x``, ``a/../../x``."""
    norm = posixpath.normpath(path.strip())
    return norm == ".." or norm.startswith("../")


def _in_repo(value: Any, noun: str) -> Any:
    """``value`` when it is not a string, or a path relative to the repo root, inside it."""
    if not isinstance(value, str):
        return value
    if value.strip().startswith("/"):
        msg = f"got {value!r}, an absolute path, expected a {noun} relative to the repo root, e.g. 'src'"
        raise fail(msg)
    if value.strip() == "~" or value.strip().startswith("~/"):
        msg = (
            f"got {value!r}, but '~' is not the home folder here,"
            f" expected a {noun} relative to the repo root, e.g. 'src'"
        )
        raise fail(msg)
    if _climbs_out(value):
        msg = (
            f"got {value!r}, which climbs out of the repo with '..', expected a {noun} inside it, e.g. 'src'"
        )
        raise fail(msg)
    return value


def check_working_dir(value: Any) -> Any:
    """A `working_dir` stays inside the repo: relative, and not climbing out with ``..``."""
    return _in_repo(value, "folder")


def check_input_path(value: Any) -> Any:
    """An `inputs` entry names files of the repo's code: relative to the repo root, inside it."""
    return _in_repo(value, "path")


def _not_a_whole_folder(value: str, example: str) -> None:
    """An artifact or cache folder is a sub-folder: not the working folder, `/` or the home."""
    norm = posixpath.normpath(value.strip() or ".")
    what = "folder or filesystem root" if norm in (".", "/", "//") else "home folder" if norm == "~" else ""
    if what:
        msg = f"got {value!r}, the whole {what}, expected a sub-folder, e.g. {example!r}"
        raise fail(msg)


def check_home_dir(value: Any) -> Any:
    """`home_dir` is a folder in the container: an absolute path."""
    if isinstance(value, str) and not value.strip().startswith("/"):
        msg = f"got {value!r}, expected an absolute path in the container, e.g. '/root'"
        raise fail(msg)
    return value


IMAGE_PATTERN = r"^(?:[^\s$]|\$(?!\{\{)|\$\{\{[^}]*\}\})*$"  # no whitespace outside `${{ ... }}`


def check_image(value: Any, *, rendered: bool = False) -> Any:
    """A Docker image is one word (no spaces); ``rendered`` (its `${{ ... }}` put in): not empty."""
    if not isinstance(value, str) or ("${{" in value and not rendered):
        return value
    if (rendered and not value) or any(c.isspace() for c in value):
        msg = f"got {value!r}, expected a Docker image such as 'ubuntu:22.04'"
        raise fail(msg)
    return value


def check_artifact_path(value: Any) -> Any:
    """An artifact path is a sub-folder of `working_dir` (not climbing out with ``..``), or absolute."""
    if not isinstance(value, str):
        return value
    _not_a_whole_folder(value, "output")
    if not value.strip().startswith("/") and _climbs_out(value):
        msg = (
            f"got {value!r}, which climbs out of the working folder with '..',"
            " expected a path inside it, or an absolute one"
        )
        raise fail(msg)
    return value


def check_cache_path(value: Any) -> Any:
    """A cache path is inside `working_dir` (not climbing out with ``..``), under `~`, or absolute."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        msg = "got '', expected a folder such as '~/.cache/pip'"
        raise fail(msg)
    _not_a_whole_folder(value, "~/.cache/pip")
    if not value.strip().startswith(("/", "~")) and _climbs_out(value):
        msg = (
            f"got {value!r}, which climbs out of the working folder with '..',"
            " expected a path inside it, under '~', or an absolute one"
        )
        raise fail(msg)
    return value
