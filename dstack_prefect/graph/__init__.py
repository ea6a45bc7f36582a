"""Workflows + target -> plan: a DAG of steps in topological order."""

from dstack_prefect.graph._build import apply_overrides, build_plan, to_step
from dstack_prefect.graph._ide import IDE_PROVIDERS, TOKEN_VARIABLE, ide_url
from dstack_prefect.graph._plan import (
    ArtifactSpec,
    GpuRequest,
    Plan,
    PortSpec,
    Provider,
    RegistryAuth,
    Resources,
    Step,
    StepDep,
)
from dstack_prefect.graph._secrets import resolve_secrets, secret_refs

__all__ = [
    "IDE_PROVIDERS",
    "TOKEN_VARIABLE",
    "ArtifactSpec",
    "GpuRequest",
    "Plan",
    "PortSpec",
    "Provider",
    "RegistryAuth",
    "Resources",
    "Step",
    "StepDep",
    "apply_overrides",
    "build_plan",
    "ide_url",
    "resolve_secrets",
    "secret_refs",
    "to_step",
]
