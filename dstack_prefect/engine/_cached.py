"""Recording a run whose every step is reused, without starting a flow process.

When `dstack plan`'s decision is "reuse" for every step, nothing would execute: the CLI records
the run in Prefect directly (a flow run of flow `dstack-run` with the same parameters and tags,
one task run per step in state Cached, a log line per step naming the run it reuses, final
state Done) and copies the reused manifests under the new run's name in the store. The run
looks like any other in `dstack ps`, `dstack logs`, `dstack ls` and the Prefect UI, and costs a
few REST calls instead of a flow engine's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dstack_prefect.engine._api import PrefectAPI
from dstack_prefect.engine._artifacts import tag_done_run
from dstack_prefect.engine._cache import Decision, record_done
from dstack_prefect.engine._launch import create_flow_run
from dstack_prefect.engine._runs import RUN_NOTE_LOGGER, STEP_NOTE_LOGGER, set_run_tag, step_logger_name
from dstack_prefect.graph import Plan
from dstack_prefect.storage import ArtifactStore


@dataclass(frozen=True)
class CachedRun:
    """The recorded flow run, and the warning its log carries when its `-t TAG` was refused."""

    flow_run: dict[str, Any]
    warning: str | None = None


def all_reused(decisions: dict[str, Decision]) -> bool:
    return bool(decisions) and all(d.action == "reuse" and d.manifest is not None for d in decisions.values())


def record_cached_run(
    api: PrefectAPI,
    store: ArtifactStore,
    plan: Plan,
    decisions: dict[str, Decision],
    repo_root: Path,
    options: dict[str, Any],
) -> CachedRun:
    """Record ``plan`` as a finished run whose steps all reuse earlier ones."""
    name = plan.run_name
    fr = create_flow_run(api, plan, repo_root, options)
    api.set_flow_run_state(fr["id"], "RUNNING", name="Running", force=True)
    records = []
    for step in plan.steps:
        source = decisions[step.name].manifest
        assert source is not None
        record_done(
            store, store.copy_manifest(source, name, {"reused_from": source.run, "flow_run_id": fr["id"]})
        )
        tr = api.create_task_run(
            fr["id"],
            step.name,
            {"type": "COMPLETED", "name": "Cached", "message": f"reused from run {source.run}", "data": None},
        )
        records.append(
            {
                "name": step_logger_name(STEP_NOTE_LOGGER, step.name),
                "level": 20,
                "message": f"reusing {step.name} from run {source.run} ({decisions[step.name].reason})",
                "timestamp": datetime.now(UTC).isoformat(),
                "flow_run_id": fr["id"],
                "task_run_id": tr["id"],
            }
        )
    tag = options.get("tag")
    refused = tag_done_run(store, tag, name, plan.target) if tag else None
    if tag and not refused:
        set_run_tag(api, name, tag)
    if tag:  # as the flow logs it
        records.append(
            {
                "name": RUN_NOTE_LOGGER,
                "level": 30 if refused else 20,
                "message": refused or f"tagged the run as {tag}",
                "timestamp": datetime.now(UTC).isoformat(),
                "flow_run_id": fr["id"],
                "task_run_id": None,
            }
        )
    api.write_logs(records)
    message = f"{len(plan.steps)} step(s) reused, nothing to run"
    api.set_flow_run_state(fr["id"], "COMPLETED", name="Done", message=message, force=True)
    return CachedRun(api.flow_run(fr["id"]) or fr, refused)
