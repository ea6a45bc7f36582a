"""Workflows + target -> plan: a DAG of steps in topological order."""

from dstack_prefect.graph._build import apply_overrides, build_plan, to_step
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
    "resolve_secrets",
    "secret_refs",
    "to_step",
]
