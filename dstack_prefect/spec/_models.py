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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from dstack_prefect.spec._blocks import (
    Artifact,
    CacheItem,
    Dep,
    Gpu,
    Port,
    RegistryAuth,
    Resources,
    _Model,
    _ports,
    prefix_note,
    repeated_deps,
    repeated_local_ports,
)
from dstack_prefect.spec._fields import (
    IMAGE_PATTERN,
    NO_CLIMB,
    NOT_HOME,
    ArtifactText,
    CacheText,
    Issue,
    Lines,
    PortNumber,
    PortText,
    StrictFlag,
    accepts,
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
# JSON Schema patterns (ECMA-262 and Python re alike) for what the validators below check.
_ENV_ITEM_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(=[\s\S]*)?$"
_DEP_TEXT_PATTERN = r"^(?!:?$)(:|[^/]+(/[^/]+/[^/]+)?$)"  # ':TAG', or a workflow as in _blocks
_RELATIVE_DIR_PATTERN = rf"^(?!\s*/){NOT_HOME}{NO_CLIMB}"


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
