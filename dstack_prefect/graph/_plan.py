"""The plan: what `dstack run` hands to the engine, and what `dstack plan` prints.

A plan is plain data (pydantic, JSON round-trippable) because it travels as the Prefect flow
run's parameters. It never holds a secret value: secrets stay `${{ secrets.NAME }}` references
in `env` / `registry_auth` and are resolved by the executor when the step starts.

    deps point upstream:   train --needs--> prep          steps[] is topological: prep, train
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Provider = Literal["bash", "docker", "code", "lab", "notebook"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuRequest(_Model):
    count: int = Field(1, description="Number of GPUs")
    name: str | None = Field(None, description="Exact GPU name, e.g. A100")
    memory_mib: int | None = Field(None, description="Minimum memory per GPU, MiB")


class Resources(_Model):
    cpu: int | None = Field(None, description="Minimum CPUs")
    memory_mib: int | None = Field(None, description="Minimum (and, in containers, maximum) memory, MiB")
    gpu: GpuRequest | None = None
    shm_size_mib: int | None = Field(None, description="/dev/shm size, MiB")
    interruptible: bool = Field(False, description="Spot / preemptible capacity")


class PortSpec(_Model):
    """One port a step serves. ``port`` None means "any free port" (the old `ports: N` form)."""

    port: int | None = None
    local_port: int | None = None


class ArtifactSpec(_Model):
    path: str
    mount: bool = False


class RegistryAuth(_Model):
    username: str | None = None
    password: str | None = None


class StepDep(_Model):
    """An upstream a step reads artifacts from."""

    kind: Literal["workflow", "tag"]
    name: str
    repo: str | None = Field(None, description="owner/repo prefix of a cross-repo dep, as written")
    option: str | None = Field(None, description="`--dep` when `dstack run` gave it, None when the YAML did")


class Step(_Model):
    name: str = Field(description="Workflow name, or the provider name for `dstack run bash -c ...`")
    provider: Provider = "bash"
    commands: list[str] = Field(default_factory=list)
    setup: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict, description="May hold `${{ secrets.X }}` references")
    working_dir: str = "."
    artifacts: list[ArtifactSpec] = Field(default_factory=list)
    cache: list[str] = Field(default_factory=list)
    ports: list[PortSpec] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    python: str | None = None
    image: str | None = None
    entrypoint: list[str] | None = None
    registry_auth: RegistryAuth | None = None
    home_dir: str | None = None
    ssh: bool = False
    version: str | None = None
    inputs: list[str] | None = Field(None, description="Paths that make up the step's code; None = all")
    deps: list[StepDep] = Field(default_factory=list, description="Every dep, in the order written")
    upstream: list[str] = Field(
        default_factory=list, description="Names of the plan's steps this step waits for"
    )
    source: str = Field("", description="file:line where the workflow is defined")


class Plan(_Model):
    target: str
    run_args: list[str] = Field(default_factory=list)
    run_name: str = ""
    steps: list[Step] = Field(description="Topological order: every step after its upstream")

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)
