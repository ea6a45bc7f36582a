"""The executor contract: where one step's commands run.

The engine prepares a fresh working directory (code snapshot, dep artifacts, cache) and the
step's full environment, then:

    handle = executor.start(job)       # returns once the step is running
    result = executor.wait(handle)     # blocks; every output line goes to job.on_line
    executor.stop(handle, grace=10)    # from another thread: SIGTERM, then kill after `grace`
    executor.stop(handle, grace=0)     # abort: kill at once

``check(step)`` runs before anything else and raises ResourcesUnavailableError or
ExecutorUnavailableError, so a step that cannot run fails before it starts.
Backends: ``local.LocalExecutor`` (bash process group), ``docker.DockerExecutor``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from dstack_prefect.graph import Step


@dataclass
class StepJob:
    """Everything an executor needs to run one step."""

    run_name: str
    step: Step
    workdir: Path
    """The step's root folder (mounted at /workflow in containers); commands run in
    ``workdir / step.working_dir``."""
    env: dict[str, str]
    """The complete environment for the commands (secret values included; never log it)."""
    on_line: Callable[[str], None]
    """Called with each output line (stdout and stderr merged), without the newline."""
    gpus: list[str] = field(default_factory=list)
    """GPU indices handed to this step (CUDA_VISIBLE_DEVICES)."""
    ports: list[int] = field(default_factory=list)
    """Host ports allocated for the step, in the order of step.ports (PORT_0...)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Marks the processes/containers of this step so leftovers can be found."""
    mounts: dict[str, Path] = field(default_factory=dict)
    """Cache folders outside the workdir for containers: path in the container (``~/...`` is
    the container's HOME) -> host folder kept between runs. The local executor ignores them
    (on the host those paths persist by themselves)."""


@dataclass
class StepResult:
    exit_code: int
    """The commands' exit status; negative for a signal (-15 = SIGTERM)."""
    stopped: bool = False
    """True when stop() ended the step."""
    oom: bool = False
    """True when the step was killed for exceeding its memory limit."""
    message: str = ""


@dataclass
class Handle:
    identifier: str
    """Enough to find the step from another process (a pgid, ``docker:<container id>``)."""
    native: object = None


class Executor(abc.ABC):
    """Runs one step's commands somewhere and streams their output."""

    name: str = "executor"
    host_network: bool = True
    """True when a step's ports are this machine's ports (the engine relays "APP:LOCAL"
    mappings itself); False when the executor publishes them (a container's own network)."""

    def check(self, step: Step) -> None:  # noqa: B027 - optional hook
        """Raise ResourcesUnavailableError / ExecutorUnavailableError if ``step`` cannot run here."""

    @abc.abstractmethod
    def start(self, job: StepJob) -> Handle:
        """Start the step's commands and return once they run."""

    @abc.abstractmethod
    def wait(self, handle: Handle) -> StepResult:
        """Block until the step ends, delivering every output line to ``job.on_line``."""

    @abc.abstractmethod
    def stop(self, handle: Handle, grace: float = 10.0) -> None:
        """Ask the step to end (SIGTERM), killing it after ``grace`` seconds; 0 kills at once."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the executor holds (clients, connections)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
