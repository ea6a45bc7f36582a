"""Workflows + target -> plan: a DAG of steps in topological order."""

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
]
