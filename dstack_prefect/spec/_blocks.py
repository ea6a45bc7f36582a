"""The models of the blocks inside a workflow: `resources` (and its `gpu`), `artifacts`, `cache`,
`deps`, `ports` and `registry_auth`, with the checks for repeated deps and local ports.

Strict like the rest (see `_models.py`): unknown keys are refused, every field is described, and
short forms are normalised on the way in (``deps: [":tag"]``, ``gpu: 2``, ``ports: ["8000:80"]``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dstack_prefect.spec._fields import (
    INTEGER,
    PORT_RE,
    ArtifactText,
    CacheText,
    Size,
    StrictFlag,
    accepts,
    check_artifact_path,
    check_cache_path,
    fail,
    show,
)

_GPU_NAME_RE = re.compile(r"^[^/\s]+$")
_NAMED_GPU_PATTERN = r"^[^/\s]+/gpu$"  # `A100/gpu: 2`
_DEP_WORKFLOW_PATTERN = r"^[^/]+(/[^/]+/[^/]+)?$"  # NAME or owner/repo/NAME


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _gpu_name(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        msg = f"got {value!r}, expected a GPU name such as 'A100'"
        raise fail(msg)
    return value


class Gpu(_Model):
    """``resources.gpu`` as a mapping; an integer is the count."""

    count: Annotated[int, INTEGER] = Field(
        1,
        ge=1,
        description="Number of GPUs, at least 1 (for none, leave out `gpu`); `name` or `memory` alone: 1",
    )
    name: Annotated[
        str | None,
        BeforeValidator(_gpu_name, json_schema_input_type=Annotated[str, Field(pattern=r"\S")] | None),
    ] = Field(None, description="GPU name or part of it, any case: `A100` matches `NVIDIA A100-SXM4-80GB`")
    memory: Size = Field(None, description="Minimum memory per GPU, a size such as `16GB`; stored in MiB")

    @model_validator(mode="before")
    @classmethod
    def _from_count(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
            return {"count": int(value)}
        if not isinstance(value, dict):
            msg = f"got {show(value)}, expected a GPU count or a mapping of count, name, memory"
            raise fail(msg)
        return value


class Resources(_Model):
    """What the step needs from the machine."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "patternProperties": {_NAMED_GPU_PATTERN: {"type": "integer", "minimum": 1}},
            # `gpu` and `<NAME>/gpu` together are two GPU requests
            "if": {"required": ["gpu"]},
            "then": {"patternProperties": {_NAMED_GPU_PATTERN: False}},
        },
    )

    cpu: Annotated[int | None, INTEGER] = Field(None, ge=1, description="Minimum number of CPUs")
    memory: Size = Field(
        None, description="Minimum RAM, a size such as `16GB` (decimal) or `16GiB`; stored in MiB"
    )
    gpu: Annotated[Gpu | None, accepts(Annotated[int, Field(ge=1)] | Gpu | None)] = Field(
        None,
        description="GPUs: a count, or a mapping of `count`, `name`, `memory`; `<NAME>/gpu: N` also works",
    )
    shm_size: Size = Field(
        None, description="Size of `/dev/shm` (Docker `--shm-size`), e.g. `8GB`; stored in MiB"
    )
    interruptible: StrictFlag = Field(False, description="Use spot / preemptible capacity")
    local: StrictFlag = Field(False, description="Legacy (0.0.x): run locally; runs are local by default now")

    @model_validator(mode="before")
    @classmethod
    def _named_gpu(cls, value: Any) -> Any:
        """Turn the ``"A100/gpu": 2`` key form into ``gpu: {name: A100, count: 2}``."""
        if not isinstance(value, dict):
            msg = f"got {show(value)}, expected a mapping of cpu, memory, gpu, shm_size, interruptible"
            raise fail(msg)
        named = [k for k in value if isinstance(k, str) and k.endswith("/gpu")]
        if not named:
            return value
        for key in named:
            if not _GPU_NAME_RE.match(key[: -len("/gpu")]):
                msg = f"got key {key!r}, expected '<NAME>/gpu' with a GPU name, e.g. 'A100/gpu'"
                raise fail(msg)
        if len(named) > 1 or "gpu" in value:
            msg = "more than one GPU request, expected one of 'gpu' or '<NAME>/gpu'"
            raise fail(msg)
        out = dict(value)
        count = out.pop(named[0])
        out["gpu"] = {"name": named[0][: -len("/gpu")], "count": count}
        return out


class Artifact(_Model):
    """A folder the step saves; downstream steps read it through `deps`."""

    path: Annotated[
        str,
        BeforeValidator(check_artifact_path, json_schema_input_type=ArtifactText),
    ] = Field(
        description="Folder to save, relative to `working_dir` (not climbing out with `..`), or absolute"
    )
    mount: StrictFlag = Field(False, description="Sync the folder while the step runs, not only at the end")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return _path_item(value, "an artifact path or a mapping of path, mount")


class CacheItem(_Model):
    """A folder kept between runs of the same workflow (e.g. `~/.cache/pip`)."""

    path: Annotated[
        str,
        BeforeValidator(check_cache_path, json_schema_input_type=CacheText),
    ] = Field(
        description="Folder restored before and saved after the step: relative (not climbing out with `..`),"
        " under `~`, or absolute"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return _path_item(value, "a cache path or a mapping with path")


def _path_item(value: Any, expected: str) -> Any:
    if isinstance(value, str):
        return {"path": value}
    if not isinstance(value, dict):
        msg = f"got {show(value)}, expected {expected}"
        raise fail(msg)
    return value


def _dep_workflow(value: Any) -> Any:
    """A workflow dep is ``NAME`` or ``owner/repo/NAME``: one slash (or three) is neither."""
    if isinstance(value, str) and value and not re.match(_DEP_WORKFLOW_PATTERN, value):
        msg = f"got {value!r}, expected a workflow NAME or owner/repo/NAME"
        raise fail(msg)
    return value


class Dep(_Model):
    """An upstream whose artifacts the step reads: a workflow (its latest run) or a tag."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["workflow"],
                    "properties": {"workflow": {"type": "string", "pattern": _DEP_WORKFLOW_PATTERN}},
                },
                {"required": ["tag"], "properties": {"tag": {"type": "string", "minLength": 1}}},
            ]
        },
    )

    workflow: Annotated[
        str | None,
        BeforeValidator(
            _dep_workflow, json_schema_input_type=Annotated[str, Field(pattern=_DEP_WORKFLOW_PATTERN)] | None
        ),
    ] = Field(None, description="Workflow name, optionally `owner/repo/NAME`; a string `NAME` works")
    tag: str | None = Field(None, description="Tag name; a string `:TAG` works")
    mount: StrictFlag | None = Field(None, description="Legacy (0.0.x), ignored: mount the dep's artifacts")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.startswith(":"):
                return {"tag": value[1:]}
            return {"workflow": value}
        if not isinstance(value, dict):
            msg = f"got {show(value)}, expected 'NAME', ':TAG', or a mapping with workflow or tag"
            raise fail(msg)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Dep:
        if (self.workflow is None) == (self.tag is None):
            msg = "a dep needs exactly one of 'workflow' or 'tag', expected e.g. {workflow: prep}"
            raise fail(msg)
        if not (self.workflow or self.tag):
            msg = "an empty dep name, expected 'NAME' or ':TAG'"
            raise fail(msg)
        return self

    @property
    def kind(self) -> Literal["workflow", "tag"]:
        return "tag" if self.tag is not None else "workflow"

    @property
    def name(self) -> str:
        """The workflow or tag name, without an ``owner/repo/`` prefix."""
        return self.tag if self.tag is not None else str(self.workflow).rsplit("/", 1)[-1]

    @property
    def repo(self) -> str | None:
        """``owner/repo`` of a cross-repo dep, as written, else None."""
        if self.workflow is None or "/" not in self.workflow:
            return None
        return self.workflow.rsplit("/", 1)[0]

    def __str__(self) -> str:
        """The dep in its short form: ``NAME``, ``owner/repo/NAME`` or ``:TAG``."""
        return f":{self.tag}" if self.tag is not None else str(self.workflow)


def _repeats(keys: Iterable[Hashable | None]) -> list[tuple[int, int]]:
    """``(index, index of the first)`` for each key (not None) equal to an earlier one."""
    first: dict[Hashable, int] = {}
    repeats = []
    for j, key in enumerate(keys):
        if key is None:
            continue
        if key in first:
            repeats.append((j, first[key]))
        else:
            first[key] = j
    return repeats


def repeated_deps(deps: list[Dep]) -> list[tuple[int, int]]:
    """``(index, index of the first)`` for each dep that names the same workflow or tag as an
    earlier one (`prep` and `workflow: prep`; `owner/repo/prep` too: the prefix is ignored)."""
    return _repeats((dep.kind, dep.name) for dep in deps)


def prefix_note(deps: list[Dep], j: int, first: int) -> str:
    """Why ``deps[j]`` repeats ``deps[first]`` when a repo prefix hides it, else ``""``."""
    if (deps[j].repo or deps[first].repo) and deps[j].repo != deps[first].repo:
        return f" (the repo prefix is ignored: it is '{deps[j].name}')"
    return ""


class Port(_Model):
    """One port the step serves: `8000`, or `"8000:80"` to see app port 8000 on local port 80."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"required": ["port"]})

    port: Annotated[int | None, INTEGER] = Field(
        None, ge=1, le=65535, description="Port the app listens on; null means any free port"
    )
    local_port: Annotated[int | None, INTEGER] = Field(
        None, ge=1, le=65535, description="Port on this machine it is reached at"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"port": value}
        match = PORT_RE.match(value) if isinstance(value, str) else None
        if match:
            app, local = match.groups()
            return {"port": int(app), "local_port": int(local) if local else None}
        if isinstance(value, dict):
            if "port" not in value:
                msg = (
                    "missing key 'port', expected the port the app listens on,"
                    " e.g. {port: 8000, local_port: 3000}"
                )
                raise fail(msg)
            return value
        msg = f"got {show(value)}, expected a port number or 'APP_PORT:LOCAL_PORT'"
        raise fail(msg)


def repeated_local_ports(ports: list[Port]) -> list[tuple[int, int]]:
    """``(index, index of the first)`` for each port reached at the same local port as an earlier
    one: its ``local_port``, else its app port (steps run on the host network). Two such would
    need one local port twice, and the second fails when the step starts."""
    return _repeats(port.local_port or port.port for port in ports)


def _ports(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            msg = f"got {value}, expected a port count >= 1 or a list of ports"
            raise fail(msg)
        return [Port.model_construct() for _ in range(value)]  # any free port each (no `port` key)
    if not isinstance(value, list):
        msg = f"got {show(value)}, expected a list of ports such as [8000, '7860:80']"
        raise fail(msg)
    return value


class RegistryAuth(_Model):
    """Credentials for a private Docker registry; values may be `${{ secrets.NAME }}`."""

    username: str | None = Field(None, description="Registry user name")
    password: str | None = Field(
        None, description="Registry password or token, usually `${{ secrets.NAME }}`"
    )
