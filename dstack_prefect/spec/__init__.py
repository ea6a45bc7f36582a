"""Workflow files: find, parse with positions, validate, interpolate, describe as JSON Schema."""

from dstack_prefect.spec._blocks import (
    Artifact,
    CacheItem,
    Dep,
    Gpu,
    Port,
    RegistryAuth,
    Resources,
)
from dstack_prefect.spec._interp import interpolate, quote_args
from dstack_prefect.spec._load import (
    check_workflows,
    find_repo_root,
    load_for,
    load_text,
    load_workflows,
    local_deps,
    workflow_files,
)
from dstack_prefect.spec._models import PROVIDERS, Workflow, WorkflowFile
from dstack_prefect.spec._schema import json_schema
from dstack_prefect.spec._sizes import parse_size
from dstack_prefect.spec._workflows import Source, SpecWarning, Workflows

__all__ = [
    "PROVIDERS",
    "Artifact",
    "CacheItem",
    "Dep",
    "Gpu",
    "Port",
    "RegistryAuth",
    "Resources",
    "Source",
    "SpecWarning",
    "Workflow",
    "WorkflowFile",
    "Workflows",
    "check_workflows",
    "find_repo_root",
    "interpolate",
    "json_schema",
    "load_for",
    "load_text",
    "load_workflows",
    "local_deps",
    "parse_size",
    "quote_args",
    "workflow_files",
]
