"""Type-checked, never run: how a program uses dstack_prefect's public API.

mypy (strict on this file, see pyproject.toml) fails when a public signature changes in a way
that breaks callers. pytest does not collect it (no test_ prefix).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dstack_prefect.errors import DstackError
from dstack_prefect.executors import Executor, Handle, StepJob, StepResult
from dstack_prefect.graph import Plan, Step, build_plan
from dstack_prefect.spec import Workflows, find_repo_root, json_schema, load_workflows, parse_size
from dstack_prefect.storage import ArtifactStore, LsRow, Manifest


def plan_of(start: Path, target: str, args: list[str]) -> Plan:
    root: Path = find_repo_root(start)
    workflows: Workflows = load_workflows(root)
    return build_plan(workflows, target, args, run_name="typing-run-1")


def schema_title() -> object:
    schema: dict[str, Any] = json_schema()
    return schema.get("title")


def mib(text: str) -> int:
    return parse_size(text)


def first_error(start: Path) -> str | None:
    try:
        plan_of(start, "train", [])
    except DstackError as exc:
        return f"{exc.message} ({exc.hint})"
    return None


def store_round_trip(store_url: str, workdir: Path, target: Path) -> list[LsRow]:
    store = ArtifactStore(store_url)
    m: Manifest = store.put_step("run-1", "train", "train", workdir, ["model"])
    written: list[Path] = store.materialize([m], target)
    assert written
    return ArtifactStore.ls(store.resolve("run-1"), recursive=True)


class EchoExecutor(Executor):
    """An executor a program could plug in: it 'runs' a step by echoing its commands."""

    name = "echo"

    def start(self, job: StepJob) -> Handle:
        return Handle(identifier=f"echo:{job.run_name}:{job.step.name}", native=job)

    def wait(self, handle: Handle) -> StepResult:
        job = handle.native
        assert isinstance(job, StepJob)
        for command in job.step.commands:
            job.on_line(command)
        return StepResult(exit_code=0)

    def stop(self, handle: Handle, grace: float = 10.0) -> None:
        del handle, grace


def run_with(executor: Executor, step: Step, workdir: Path) -> int:
    with executor as ex:
        job = StepJob(run_name="typing-run-1", step=step, workdir=workdir, env={}, on_line=print)
        return ex.wait(ex.start(job)).exit_code
