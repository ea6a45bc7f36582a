"""The workflow file format: one strict pydantic model per YAML block.

Keys are the union of dstack 0.0.x-0.9.2 for the public providers (bash, docker, code, lab,
notebook). Every model forbids unknown keys, and every field has a description: the JSON Schema
(`dstack schema`) and docs/workflows.md come from here. Short forms are normalised on the way in
(``deps: [":tag"]`` -> ``{tag: tag}``, ``memory: 16GB`` -> MiB, ``gpu: 2`` -> ``{count: 2}``), and
each union-typed field reports one "got X, expected Y" message instead of one per union member.

Where JSON Schema can say it, the schema says what the validators check (name and env patterns,
the provider's required keys, exactly one of `workflow`/`tag`), so `dstack schema` and the
loader agree. A check with several findings (every bad `env` entry, every repeated dep) raises
one error whose ``ctx["issues"]`` lists each finding at its own place; the loader reports each.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Hashable, Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dstack_prefect.spec._fields import (
    IMAGE_PATTERN,
    INTEGER,
    NO_CLIMB,
    NOT_HOME,
    PORT_RE,
    ArtifactText,
    CacheText,
    Issue,
    Lines,
    PortNumber,
    PortText,
    Size,
    StrictFlag,
    accepts,
    check_artifact_path,
    check_cache_path,
    check_home_dir,
    check_image,
    check_input_path,
    check_working_dir,
    did_you_mean,
    fail,
    fail_each,
    show,
)

PROVIDERS = ("bash", "docker", "code", "lab", "notebook")
ProviderName = Literal["bash", "docker", "code", "lab", "notebook"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PYTHON_RE = re.compile(r"^\d+\.\d+$")
_GPU_NAME_RE = re.compile(r"^[^/\s]+$")
_NAMED_GPU_PATTERN = r"^[^/\s]+/gpu$"  # `A100/gpu: 2`
# JSON Schema patterns (ECMA-262 and Python re alike) for what the validators below check.
_ENV_ITEM_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(=[\s\S]*)?$"
_DEP_WORKFLOW_PATTERN = r"^[^/]+(/[^/]+/[^/]+)?$"  # NAME or owner/repo/NAME
_DEP_TEXT_PATTERN = r"^(?!:?$)(:|[^/]+(/[^/]+/[^/]+)?$)"  # ':TAG', or a workflow as above
_RELATIVE_DIR_PATTERN = rf"^(?!\s*/){NOT_HOME}{NO_CLIMB}"


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


def _provider(value: Any) -> Any:
    if isinstance(value, str) and value not in PROVIDERS:
        hint = did_you_mean(value, PROVIDERS)
        if hint:
            msg = f"unknown provider '{value}'{hint}"
            raise fail(msg)
        msg = f"unknown provider '{value}', expected one of {', '.join(PROVIDERS)}"
        raise fail(msg)
    if not isinstance(value, str):
        msg = f"got {show(value)}, expected one of {', '.join(PROVIDERS)}"
        raise fail(msg)
    return value


def env_mapping(value: Any) -> Any:
    """A list of ``NAME=VALUE`` / ``NAME``, or a mapping, to a dict; every bad entry is an Issue."""
    if value is None:
        return {}
    out: dict[str, str] = {}
    issues: list[Issue] = []
    if isinstance(value, list):
        for j, item in enumerate(value):
            if not isinstance(item, str):
                message = f"got {show(item)}, expected 'NAME=VALUE' or 'NAME'"
                if isinstance(item, dict) and len(item) == 1:  # `- LR: 0.1`
                    ((k, v),) = item.items()
                    value = "" if v is None else v if isinstance(v, str) else show(v)
                    message += f"; write '{k}={value}'"
                issues.append(Issue((j,), message))
                continue
            key, _, val = item.partition("=")
            if not _ENV_KEY_RE.match(key):
                issues.append(Issue((j,), f"got variable name {key!r}, expected letters, digits and '_'"))
                continue
            if key in out:
                first = next(
                    i for i, e in enumerate(value) if isinstance(e, str) and e.partition("=")[0] == key
                )
                message = f"duplicate variable '{key}', first at env[{first}]; set each variable once"
                issues.append(Issue((j,), message))
            out[key] = val
    elif isinstance(value, dict):
        for key, val in value.items():
            if not isinstance(key, str) or not _ENV_KEY_RE.match(key):
                message = f"got variable name {show(key)}, expected letters, digits and '_'"
                issues.append(Issue((str(key),), message, at_key=True))
            elif isinstance(val, dict | list):
                issues.append(Issue((key,), f"got {show(val)} for {key}, expected a string"))
            else:
                out[key] = (
                    "" if val is None else ("true" if val is True else "false" if val is False else str(val))
                )
    else:
        msg = f"got {show(value)}, expected a list of 'NAME=VALUE' or a mapping"
        raise fail(msg)
    if issues:
        raise fail_each(issues)
    return out


def _python(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and not value.is_integer():
        text = repr(value)
        value = "3.10" if text == "3.1" else text
    if not isinstance(value, str) or not _PYTHON_RE.match(value):
        msg = f"got {show(value)}, expected a Python version such as '3.10'"
        raise fail(msg)
    return value


def _version(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _entrypoint(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            msg = f"got {value!r} ({exc}), expected a shell command line"
            raise fail(msg) from None
    return value


def _name(value: Any) -> Any:
    if isinstance(value, str) and not _NAME_RE.match(value):
        msg = (
            f"got {value!r}, expected a name of letters, digits, '-', '_' and '.'"
            " that starts with a letter, digit or '_'"
        )
        raise fail(msg)
    return value


_PythonText = Annotated[str, Field(pattern=_PYTHON_RE.pattern)]
_PythonNumber = Annotated[float, Field(gt=0, json_schema_extra={"not": {"type": "integer"}})]
_EnvItem = Annotated[str, Field(pattern=_ENV_ITEM_PATTERN)]
_EnvMapping = Annotated[
    dict[str, str | int | float | bool | None],
    Field(json_schema_extra={"propertyNames": {"pattern": _ENV_KEY_RE.pattern}}),
]
_DepText = Annotated[str, Field(pattern=_DEP_TEXT_PATTERN)]
_AbsolutePathText = Annotated[str, Field(pattern=r"^\s*/")]
_ImageText = Annotated[str, Field(pattern=IMAGE_PATTERN)]


def _needs(provider: str, key: str, value_schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema: when `provider` is ``provider``, ``key`` is required and matches ``value_schema``."""
    return {
        "if": {"properties": {"provider": {"const": provider}}, "required": ["provider"]},
        "then": {"required": [key], "properties": {key: value_schema}},
    }


class Workflow(_Model):
    """One item of `workflows:`: a named step that `dstack run NAME` runs."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                _needs(
                    "bash",
                    "commands",
                    {"anyOf": [{"type": "string", "pattern": r"\S"}, {"type": "array", "minItems": 1}]},
                ),
                _needs("docker", "image", {"type": "string", "minLength": 1}),
            ]
        },
    )

    name: Annotated[
        str, BeforeValidator(_name, json_schema_input_type=Annotated[str, Field(pattern=_NAME_RE.pattern)])
    ] = Field(description="Name for `dstack run NAME` and `deps`")
    provider: Annotated[ProviderName, BeforeValidator(_provider)] = Field(
        description="What runs the step: bash, docker, code, lab or notebook"
    )
    help: str | None = Field(None, description="One line shown to people; not used otherwise")
    commands: Lines = Field(
        default_factory=list,
        description="Shell commands (a list, or one multi-line string); required for bash",
    )
    setup: Lines = Field(
        default_factory=list, description="Commands run before `commands` or before the IDE starts"
    )
    before_run: Lines = Field(default_factory=list, description="Legacy (0.0.x) name of `setup`")
    requirements: str | None = Field(
        None, description="Legacy (0.0.x): a requirements file to `pip install -r`"
    )
    python: Annotated[
        str | None, BeforeValidator(_python, json_schema_input_type=_PythonText | _PythonNumber | None)
    ] = Field(None, description="Python version, e.g. '3.10' (the YAML float 3.1 means 3.10)")
    env: Annotated[
        dict[str, str],
        BeforeValidator(env_mapping, json_schema_input_type=list[_EnvItem] | _EnvMapping | None),
    ] = Field(
        default_factory=dict,
        description="Environment variables: a list of `NAME=VALUE` / `NAME`, or a mapping",
    )
    artifacts: Annotated[list[Artifact], accepts(list[ArtifactText | Artifact])] = Field(
        default_factory=list, description="Folders saved when the step ends: paths or `{path, mount}`"
    )
    deps: Annotated[list[Dep], accepts(list[_DepText | Dep])] = Field(
        default_factory=list,
        description="Upstreams: `NAME`, `:TAG`, `owner/repo/NAME`, `{workflow: NAME}` or `{tag: TAG}`",
    )
    cache: Annotated[list[CacheItem], accepts(list[CacheText | CacheItem])] = Field(
        default_factory=list, description="Folders kept between runs of this workflow: paths or `{path}`"
    )
    ports: Annotated[
        list[Port],
        BeforeValidator(
            _ports,
            json_schema_input_type=Annotated[int, Field(ge=1)] | list[PortNumber | PortText | Port] | None,
        ),
    ] = Field(
        default_factory=list,
        description="Ports served: a list of `PORT` / `'APP:LOCAL'`, or (legacy) a count",
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU, memory, GPU and spot requirements"
    )
    working_dir: Annotated[
        str | None,
        BeforeValidator(
            check_working_dir,
            json_schema_input_type=Annotated[str, Field(pattern=_RELATIVE_DIR_PATTERN)] | None,
        ),
    ] = Field(
        None,
        description="Folder, relative to the repo root, the commands run in (not climbing out with `..`)",
    )
    image: Annotated[
        str | None,
        BeforeValidator(
            check_image, json_schema_input_type=Annotated[str, Field(pattern=IMAGE_PATTERN)] | None
        ),
    ] = Field(None, description="Docker image; required for docker")
    entrypoint: Annotated[
        list[str] | None, BeforeValidator(_entrypoint, json_schema_input_type=str | list[str] | None)
    ] = Field(None, description="docker: the entrypoint, a string (shell-split) or a list")
    registry_auth: RegistryAuth | None = Field(None, description="docker: private registry credentials")
    home_dir: Annotated[
        str | None,
        BeforeValidator(check_home_dir, json_schema_input_type=_AbsolutePathText | None),
    ] = Field(None, description="docker: home folder in the container, an absolute path (for `~` in paths)")
    ssh: StrictFlag = Field(False, description="Run sshd in the container so you can ssh in")
    version: Annotated[str | None, BeforeValidator(_version, json_schema_input_type=str | float | None)] = (
        Field(None, description="code: openvscode-server version; lab/notebook: the Jupyter version")
    )
    inputs: (
        list[
            Annotated[
                str,
                BeforeValidator(
                    check_input_path,
                    json_schema_input_type=Annotated[str, Field(pattern=_RELATIVE_DIR_PATTERN)],
                ),
            ]
        ]
        | None
    ) = Field(
        None,
        description="Paths (files, folders, globs) relative to the repo root, inside it, that make up the"
        " step's code; unset means the whole repo",
    )

    @model_validator(mode="after")
    def _whole_workflow(self) -> Workflow:
        """The checks that read several keys, all of them: one finding does not hide another."""
        issues = [*self._provider_needs(), *self._local_ports_once(), *self._deps_once()]
        if issues:
            raise fail_each(issues)
        return self

    def _provider_needs(self) -> list[Issue]:
        if self.provider == "bash" and not self.commands:
            return [Issue((), "missing 'commands', which provider 'bash' requires")]
        if self.provider == "docker" and not self.image:
            return [Issue((), "missing 'image', which provider 'docker' requires")]
        return []

    def _local_ports_once(self) -> list[Issue]:
        message = "duplicate local port {}, first at ports[{}]; give each port its own local port"
        return [
            Issue(("ports", j), message.format(self.ports[j].local_port or self.ports[j].port, i))
            for j, i in repeated_local_ports(self.ports)
        ]

    def _deps_once(self) -> list[Issue]:
        message = "duplicate dep '{}', first at deps[{}]{}; list each dep once"
        return [
            Issue(("deps", j), message.format(self.deps[j], i, prefix_note(self.deps, j, i)))
            for j, i in repeated_deps(self.deps)
        ]


class WorkflowFile(_Model):
    """A workflow file: `.dstack/workflows.yaml` or `.dstack/workflows/*.yaml`."""

    model_config = ConfigDict(
        extra="forbid",
        # `x-common: &common {...}`: shared settings for the workflows to alias or merge. Said
        # with propertyNames, which (unlike patternProperties) also refuses a YAML 1.1 `on:` (true)
        json_schema_extra={
            "additionalProperties": True,
            "propertyNames": {"anyOf": [{"const": "workflows"}, {"type": "string", "pattern": "^x-"}]},
        },
    )

    workflows: list[Workflow] = Field(description="The workflows this file defines")


MODELS: tuple[type[BaseModel], ...] = (
    WorkflowFile,
    Workflow,
    Resources,
    Gpu,
    Artifact,
    CacheItem,
    Dep,
    Port,
    RegistryAuth,
)
