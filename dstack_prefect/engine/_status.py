"""dstack run statuses <-> Prefect states. The table in docs/architecture.md is this one.

| dstack      | Prefect state type | state name shown in the UI            |
|-------------|--------------------|---------------------------------------|
| submitted   | SCHEDULED          | Scheduled / Submitted                 |
| pending     | PENDING            | Pending                               |
| downloading | RUNNING            | Downloading                           |
| running     | RUNNING            | Running                               |
| uploading   | RUNNING            | Uploading                             |
| stopping    | CANCELLING         | Stopping (graceful) / Aborting (-x)   |
| stopped     | CANCELLED          | Stopped                               |
| aborted     | CANCELLED          | Aborted                               |
| failed      | FAILED / CRASHED   | Failed / Crashed                      |
| done        | COMPLETED          | Done                                  |
"""

from __future__ import annotations

from typing import Literal

Status = Literal[
    "submitted",
    "pending",
    "downloading",
    "running",
    "uploading",
    "stopping",
    "stopped",
    "aborted",
    "failed",
    "done",
]

FINISHED: frozenset[str] = frozenset({"stopped", "aborted", "failed", "done"})
FINAL_STATE_TYPES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

#: The names dstack gives the states it sets.
STOPPING = "Stopping"
ABORTING = "Aborting"
STOPPED = "Stopped"
ABORTED = "Aborted"
DONE = "Done"

_BY_NAME: dict[str, Status] = {
    "Downloading": "downloading",
    "Uploading": "uploading",
    ABORTED: "aborted",
    STOPPED: "stopped",
}

_BY_TYPE: dict[str, Status] = {
    "SCHEDULED": "submitted",
    "PENDING": "pending",
    "RUNNING": "running",
    "PAUSED": "pending",
    "CANCELLING": "stopping",
    "CANCELLED": "stopped",
    "FAILED": "failed",
    "CRASHED": "failed",
    "COMPLETED": "done",
}


def dstack_status(state_type: str | None, state_name: str | None = None) -> Status:
    """The dstack status of a Prefect state (type, name)."""
    if state_name in _BY_NAME and _BY_TYPE.get(state_type or "") in ("running", "stopped"):
        return _BY_NAME[state_name]
    return _BY_TYPE.get(state_type or "", "submitted")


def is_finished(status: str) -> bool:
    return status in FINISHED


STATUS_COLORS: dict[str, str] = {
    "submitted": "yellow",
    "pending": "yellow",
    "downloading": "yellow",
    "stopping": "yellow",
    "running": "green",
    "uploading": "green",
    "done": "grey50",
    "stopped": "grey50",
    "aborted": "grey50",
    "failed": "red",
}
