"""Runs as the CLI sees them: list, logs, stop, remove. Reads and changes Prefect only.

No prefect import here (see _api.py): `dstack ps` must be quick.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dstack_prefect.engine._api import DSTACK_TAG, LOG_WORKERS, PAGE, LogCursor, PrefectAPI
from dstack_prefect.engine._reaper import marker_groups
from dstack_prefect.engine._status import (
    ABORTED,
    ABORTING,
    FINAL_STATE_TYPES,
    STOPPED,
    STOPPING,
    dstack_status,
    is_finished,
)
from dstack_prefect.engine._trees import remove_tree
from dstack_prefect.errors import DstackError, RunStateError, ServerUnreachableError
from dstack_prefect.server import ensure_server, is_process, read_pid_file
from dstack_prefect.settings import Settings

STEP_OUTPUT_LOGGER = "prefect.task_runs.dstack.out"
"""Step output lines go to `<this>.<step>`: the step's name travels in the record itself, because
task runs reach the API only when the server has recorded their events (eventually)."""
STEP_NOTE_LOGGER = "prefect.task_runs.dstack.note"
"""dstack's own lines about a step (reuse decisions, ports, errors), on `<this>.<step>`."""
RUN_NOTE_LOGGER = "prefect.flow_runs.dstack"
"""dstack's own lines about the run as a whole."""


def step_logger_name(base: str, step: str) -> str:
    return f"{base}.{step}"


def classify_logger(name: str) -> tuple[bool, str] | None:
    """(is a note, step; "" for the run) for dstack's loggers; None for anything else
    (Prefect's own lines), which `dstack logs` does not show."""
    if name == RUN_NOTE_LOGGER:
        return True, ""
    for base, note in ((STEP_OUTPUT_LOGGER, False), (STEP_NOTE_LOGGER, True)):
        if name.startswith(base + "."):
            return note, name[len(base) + 1 :]
    return None


@dataclass
class RunRow:
    name: str
    workflow: str
    submitted_at: datetime | None
    status: str
    tag: str
    error: str
    flow_run_id: str

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["submitted_at"] = self.submitted_at.isoformat() if self.submitted_at else None
        return d


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def run_row(fr: dict[str, Any]) -> RunRow:
    state = fr.get("state") or {}
    tags: list[str] = fr.get("tags") or []
    workflow = next((t.split(":", 1)[1] for t in tags if t.startswith("workflow:")), "")
    if not workflow:  # a run triggered through the Prefect API/UI, before its flow adopts it
        asked = (fr.get("parameters") or {}).get("plan")
        named = asked.get("workflow") if isinstance(asked, dict) else None
        workflow = named if isinstance(named, str) else ""
    tag = next((t.split(":", 1)[1] for t in tags if t.startswith("tag:")), "")
    status = dstack_status(state.get("type"), state.get("name"))
    error = state.get("message") or "" if status in ("failed", "aborted") else ""
    return RunRow(
        name=fr["name"],
        workflow=workflow,
        submitted_at=_parse_time(fr.get("created") or fr.get("expected_start_time")),
        status=status,
        tag=tag,
        error=error,
        flow_run_id=fr["id"],
    )


def list_runs(api: PrefectAPI, *, all_runs: bool = False, name: str | None = None) -> list[RunRow]:
    """Newest first. By default the unfinished runs, or the last finished one if none."""
    if name:
        return [run_row(api.flow_run_by_name(name))]
    if all_runs:
        return [run_row(fr) for fr in api.all_flow_runs()]
    unfinished = [
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "CANCELLING",
        "PAUSED",
    ]
    rows = [run_row(fr) for fr in api.flow_runs(state_types=unfinished)]
    if rows:
        return rows
    return [run_row(fr) for fr in api.flow_runs(limit=1)]


def allocate_name(api: PrefectAPI) -> str:
    """A fresh adjective-animal-N run name."""
    from dstack_prefect.engine._names import next_name, random_prefix  # noqa: PLC0415

    prefix = random_prefix()
    taken = [fr["name"] for fr in api.flow_runs(name_like=f"{prefix}-")]
    return next_name(prefix, taken)


_PREFECT_NAME = re.compile(r"^[a-z]+-[a-z]+$")
"""Prefect's own flow-run names (adjective-animal, not unique)."""


def adopt_run(api: PrefectAPI, flow_run_id: str, workflow: str) -> str:
    """Make a flow run started through the Prefect API or UI a dstack run, as `dstack run`'s
    are: a unique name (Prefect's adjective-animal gets dstack's -N; another name is kept when
    it is a valid, unused run name, else replaced by a fresh one) and the tags `dstack` and
    `workflow:W` that `dstack ps` lists. Returns the name."""
    from dstack_prefect._words import word_problem  # noqa: PLC0415
    from dstack_prefect.engine._names import next_name  # noqa: PLC0415

    fr = api.flow_run(flow_run_id) or {}
    name = str(fr.get("name") or "")
    if _PREFECT_NAME.match(name):
        name = next_name(name, [r["name"] for r in api.flow_runs(name_like=f"{name}-")])
    elif word_problem("run", name) or any(r["id"] != flow_run_id for r in api.flow_runs(names=[name])):
        name = allocate_name(api)
    tags = [t for t in fr.get("tags") or [] if not t.startswith("workflow:")]
    tags = [*dict.fromkeys([*tags, DSTACK_TAG, f"workflow:{workflow}"])]
    if name != fr.get("name") or tags != fr.get("tags"):
        api.call("PATCH", f"/flow_runs/{flow_run_id}", {"name": name, "tags": tags})
    return name


def humanize(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return ""
    now = now or datetime.now(UTC)
    secs = int((now - when).total_seconds())
    if secs < 5:
        return "now"
    if secs < 60:
        return f"{secs} sec ago"
    if secs < 3600:
        m = secs // 60
        return f"{m} min{'s' if m > 1 else ''} ago"
    if secs < 86400:
        h = secs // 3600
        return f"{h} hour{'s' if h > 1 else ''} ago"
    if secs < 2 * 86400:
        return "yesterday"
    return when.astimezone().strftime("%b %d, %Y")


_SINCE = re.compile(r"^(\d+)([smhdw])$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest time `parse_since` gives: no log line is older."""


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`1d`, `30m`, `2w` or an ISO time, as `dstack logs -s` takes it; an ISO time without a
    zone is this machine's local time, as old dstack read it. A time before any log line
    (`99999w`) is EPOCH: every line."""
    now = now or datetime.now(UTC)
    m = _SINCE.match(value.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
        try:
            return max(now - timedelta(seconds=n * seconds), EPOCH)
        except OverflowError:
            return EPOCH
    msg = f"cannot read the time '{value}'"
    hint = "use Ns, Nm, Nh, Nd, Nw (e.g. 1h) or an ISO time (2026-11-26T10:00)"
    try:
        written = datetime.fromisoformat(value)
    except ValueError:
        raise DstackError(msg, hint=hint) from None
    try:
        return max(written.astimezone(UTC), EPOCH)
    except OverflowError:  # out of a datetime's range once in UTC (year 1 or 9999)
        if written.year < EPOCH.year:
            return EPOCH
        raise DstackError(msg, hint=hint) from None


@dataclass
class LogLine:
    step: str
    message: str
    timestamp: datetime
    note: bool
    """True for dstack's own notes (ports, errors), False for step output."""
    level: int = 20
    """The Python logging level it was logged at (40 is ERROR)."""
    id: str = ""
    """The Prefect log's id ("" for a note made here): a follower resumed after a Ctrl-C skips
    the lines it printed by it."""


class LogReader:
    """Pages a run's log lines in order, remembering what it has shown.

    A read goes on from the row the last one ended on (`LogCursor`), so a follower polling a
    long run reads only what is new. Where a line came in before that row since (Prefect orders
    by timestamp, and a line can be stored after others logged later), the read looks back 5 s
    before the last line shown instead, and the ids of the lines shown skip those seen."""

    LOOK_BACK = timedelta(seconds=5)

    def __init__(
        self,
        api: PrefectAPI,
        flow_run_id: str,
        since: datetime | None = None,
        *,
        page: int = PAGE,
        workers: int = LOG_WORKERS,
    ) -> None:
        self.api = api
        self.flow_run_id = flow_run_id
        self.after = since
        self.floor = since
        """Nothing before this is shown, however far a later page looks back."""
        self.seen: OrderedDict[str, datetime] = OrderedDict()
        """The ids of the lines shown, with their times, oldest first: a read that looks back
        skips them. Those older than the look-back go, at a steady cost per line (a burst can
        put 100000 lines within 5 s)."""
        self.resume: LogCursor | None = None
        """Where the last read ended."""
        self.page = page
        self.workers = workers
        """Pages fetched at once (`PrefectAPI.log_pages`)."""

    def lines(self) -> Iterator[LogLine]:
        """The lines not shown yet, in order, as their pages come: the next pages are fetched
        while the caller prints these."""
        pages = self.api.log_pages(
            self.flow_run_id, after=self.after, page=self.page, workers=self.workers, resume=self.resume
        )
        for page in pages:
            for rec in page:
                kind = classify_logger(rec.get("name") or "")
                if rec["id"] in self.seen or kind is None:
                    continue
                note, step = kind
                line = LogLine(
                    step=step,
                    message=rec["message"],
                    timestamp=_parse_time(rec["timestamp"]) or datetime.now(UTC),
                    note=note,
                    level=int(rec.get("level") or 20),
                    id=rec["id"],
                )
                self._shown(line)
                yield line
            self.resume = page.cursor

    def _shown(self, line: LogLine) -> None:
        self.seen[line.id] = line.timestamp
        after = line.timestamp - self.LOOK_BACK  # a read that looks back starts a little before
        if self.floor is not None and after < self.floor:
            after = self.floor
        if self.after is None or after > self.after:
            self.after = after
        while self.seen and next(iter(self.seen.values())) < self.after:
            self.seen.popitem(last=False)

    def read(self) -> list[LogLine]:
        return list(self.lines())


def follow(
    api: PrefectAPI,
    flow_run_id: str,
    since: datetime | None = None,
    interval: float = 0.15,
    settings: Settings | None = None,
    reader: LogReader | None = None,
) -> Iterator[LogLine | RunRow]:
    """Yield log lines as they arrive, and the run's row whenever its status changes, until
    it finishes (one more read after that, for lines shipped late). With ``settings``, a run of
    this home whose flow process is gone is marked Crashed on the way, so a follower never
    waits for a run nobody runs. Each poll reads what came after the last line read, one page
    at a time, yielding each page's lines as it comes (a read gathered whole, from 5 s before
    the last line, paged through all of a burst's lines on every poll: a 200000-line step ended
    a minute before its attached run had printed them). Pages fetched ahead on every poll
    slowed a 20000-line run by half: a live run's server is busy storing its lines.
    ``reader`` (instead of ``since``): go on from what that reader has shown."""
    reader = reader or LogReader(api, flow_run_id, since, workers=1)
    last_status = None
    checked = time.monotonic()
    revived = 0
    while True:
        try:
            fr = api.flow_run(flow_run_id)
            if fr is None:
                return
            if settings is not None and time.monotonic() - checked > 2:
                checked = time.monotonic()
                fr = crash_if_gone(api, settings, fr)
            row = run_row(fr)
            yield from reader.lines()
        except ServerUnreachableError:
            if settings is None or revived >= 3 or not revive_local_server(api.url, settings):
                raise
            revived += 1
            said = f"the local Prefect server was down: started it again at {api.url}"
            yield LogLine(step="", message=said, timestamp=datetime.now(UTC), note=True, level=30)
            continue
        if row.status != last_status:
            last_status = row.status
            yield row
        if (fr.get("state") or {}).get("type") in FINAL_STATE_TYPES:
            # The flow drains its log queue before it returns its final state: one more read
            # gets every line. (A run that crashed may lose its last batch, as it would anyway.)
            yield from reader.lines()
            return
        time.sleep(interval)


def revive_local_server(url: str, settings: Settings) -> bool:
    """Start the local Prefect server dstack manages again after it died, at its old address
    ``url`` (runs in flight keep talking to it). False when the server is not dstack's own
    (PREFECT_API_URL) or came back at another address (its port was taken meanwhile)."""
    if not os.environ.get("DSTACK_MANAGED_SERVER"):
        return False
    return ensure_server(settings).url.rstrip("/") == url.rstrip("/")


def request_stop(api: PrefectAPI, row: RunRow, *, abort: bool) -> RunRow:
    """Ask a run to stop: Cancelling named Stopping or Aborting, which the flow's watcher acts
    on; a run that has not started goes straight to Cancelled (Stopped or Aborted). Returns the
    run as it stands after the request. ``row`` may be stale (read before a prompt): the run's
    state is read again, and a run that has finished, before or while this asks, keeps the state
    it ended in."""
    run_id = row.flow_run_id
    fr = api.flow_run(run_id)
    state = (fr or {}).get("state") or {}
    if fr is None or state.get("type") in FINAL_STATE_TYPES:
        return run_row(fr) if fr is not None else row
    stopping = ABORTING if abort else STOPPING
    if state.get("type") in ("SCHEDULED", "PENDING", "PAUSED"):
        stopped = ABORTED if abort else STOPPED
        replaced = _set_unless_ended(api, run_id, "CANCELLED", stopped, "stopped before it started")
        if replaced in ("RUNNING", "CANCELLING"):
            # It started meanwhile: its watcher acts on Cancelling (and a rename of the running
            # run, which Prefect takes from Cancelled, would undo the stop).
            _set_unless_ended(api, run_id, "CANCELLING", stopping, _REQUESTED)
    elif state.get("type") != "CANCELLING" or (abort and state.get("name") != ABORTING):
        _set_unless_ended(api, run_id, "CANCELLING", stopping, _REQUESTED)
    return run_row(api.flow_run(run_id) or fr)


_REQUESTED = "requested by dstack stop"


def _set_unless_ended(
    api: PrefectAPI, flow_run_id: str, state_type: str, name: str, message: str
) -> str | None:
    """Set the run's state, forced (Prefect takes Cancelling -> Cancelling, Stopping -> Aborting,
    no other way), and give a run that ended just before it its final state back. Returns the
    type of the state it replaced; None when another came after it."""
    answer = api.set_flow_run_state(flow_run_id, state_type, name=name, message=message, force=True)
    states = state_history(api, flow_run_id)
    if len(states) < 2 or states[-1].get("id") != (answer.get("state") or {}).get("id"):
        return None
    before = states[-2]
    if before.get("type") in FINAL_STATE_TYPES:
        api.set_flow_run_state(
            flow_run_id,
            before["type"],
            name=before.get("name"),
            message=before.get("message") or "",
            force=True,
        )
    return str(before.get("type"))


def state_history(api: PrefectAPI, flow_run_id: str) -> list[dict[str, Any]]:
    """Every state the flow run has been in, oldest first."""
    states: list[dict[str, Any]] = api.call("GET", f"/flow_run_states/?flow_run_id={flow_run_id}") or []
    return sorted(states, key=lambda st: st["timestamp"])


def stop_before_start(states: list[dict[str, Any]]) -> str | None:
    """How the run was stopped ("stop" or "abort") since it was last queued (Scheduled,
    Pending), by ``states``, its history oldest first: a stop that came before its flow started,
    which Prefect's Running then replaced; None when there was none."""
    queued = [i for i, st in enumerate(states) if st.get("type") in ("SCHEDULED", "PENDING")]
    since = states[queued[-1] + 1 :] if queued else states
    for st in since:
        if st.get("type") in ("CANCELLING", "CANCELLED"):
            return "abort" if st.get("name") in (ABORTING, ABORTED) else "stop"
    return None


def wait_finished(api: PrefectAPI, flow_run_id: str, timeout: float) -> RunRow | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fr = api.flow_run(flow_run_id)
        if fr is None:
            return None
        row = run_row(fr)
        if is_finished(row.status):
            return row
        time.sleep(0.25)
    return None


def remove_run(api: PrefectAPI, row: RunRow, settings: Settings) -> Path | None:
    """Delete a finished run: its manifests (tagged copies stay), its Prefect task results, its
    flow run, its folder.

    Returns the run's folder when part of it could not be deleted (files of another user), else
    None.
    """
    if not is_finished(row.status):
        msg = f"the run '{row.name}' is {row.status}, not finished"
        raise RunStateError(msg, hint=f"stop it first: dstack stop {row.name}")
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    store = ArtifactStore(settings.store_url)
    store.delete_run(row.name)  # tagged artifacts stay: tags keep copies
    store.delete_results(row.flow_run_id)
    api.delete_flow_run(row.flow_run_id)
    folder = settings.runs_dir / row.name
    return None if remove_tree(folder) else folder


def reap_dead_runs(api: PrefectAPI, settings: Settings) -> list[str]:
    """Mark Crashed the unfinished runs started on this machine whose flow process is gone
    (reaper included: a reboot, a kill of the whole session); returns their names."""
    reaped = []
    for fr in api.flow_runs(state_types=list(_UNFINISHED)):
        after = crash_if_gone(api, settings, fr)
        if after is not fr and (after.get("state") or {}).get("type") == "CRASHED":
            reaped.append(fr["name"])
    return reaped


_UNFINISHED = ("RUNNING", "CANCELLING", "PENDING")


def kill_step_processes(flow_run_id: str, step: str | None = None) -> list[int]:
    """SIGKILL the process groups of this machine's step processes of run ``flow_run_id`` (of
    its step ``step`` only, if given; those this user may read); returns the group ids."""
    groups = marker_groups(flow_run_id, step)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return sorted(groups)


def crash_if_gone(api: PrefectAPI, settings: Settings, fr: dict[str, Any]) -> dict[str, Any]:
    """``fr`` as it stands, or, for an unfinished run of this home whose supervisor process is
    gone (its ``supervisor.pid`` names a dead process), the run after marking it Crashed."""
    if (fr.get("state") or {}).get("type") not in _UNFINISHED:
        return fr
    written = read_pid_file(settings.runs_dir / fr["name"] / "supervisor.pid")
    if written is None:
        return fr  # not started here, or its pid not written yet
    if is_process(*written):
        return fr
    latest = api.flow_run(fr["id"]) or fr  # it may have ended just before its process did
    if (latest.get("state") or {}).get("type") not in _UNFINISHED:
        return latest
    message = gone_message(settings.runs_dir / fr["name"] / "supervisor.log")
    api.set_flow_run_state(fr["id"], "CRASHED", name="Crashed", message=message, force=True)
    kill_step_processes(fr["id"])  # its reaper is gone too, or they would be
    return api.flow_run(fr["id"]) or latest


def gone_message(log: Path) -> str:
    """Why a run ended Crashed when its flow process vanished: with the error its log ends on
    (an import error, a full disk) and where that log is, which is where the traceback is."""
    message = "the process running this run is gone"
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
            tail = f.read().decode(errors="replace")
    except OSError:
        return message
    last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "")
    if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", last):
        message += f" ({last[:300]})"
    return f"{message}; its log: {log}"


def cleanup_leftovers(api: PrefectAPI, settings: Settings) -> list[str]:
    """The "next command cleans up" rule: runs whose flow process died are marked Crashed and
    step containers of finished runs are removed. Quiet without Docker.

    Only this home's containers (label ``dstack.home``) are looked at, each by its flow run id:
    one the server does not know is another server's run (another home, user or CI job on the
    same engine) and is left alone, never taken for finished.
    """
    reap_dead_runs(api, settings)
    if not os.path.exists("/var/run/docker.sock") and not os.environ.get("DOCKER_HOST"):
        return []
    from dstack_prefect.executors._docker_spec import FLOW_RUN_LABEL, home_id  # noqa: PLC0415
    from dstack_prefect.executors.docker import cleanup_containers  # noqa: PLC0415

    @functools.cache
    def finished(flow_run_id: str) -> bool:
        try:
            uuid.UUID(flow_run_id)
        except ValueError:
            return False  # not a Prefect id: no server of ours made it
        fr = api.flow_run(flow_run_id)
        return fr is not None and is_finished(run_row(fr).status)

    try:
        return cleanup_containers(finished, home=home_id(settings.home), key=FLOW_RUN_LABEL)
    except DstackError:
        return []


def set_run_tag(api: PrefectAPI, run_name: str, tag: str | None) -> None:
    """Show ``tag`` (None: no tag) in the run's TAG column; a tag names one run at a time."""
    if tag:
        for fr in api.flow_runs():
            if f"tag:{tag}" in (fr.get("tags") or []) and fr["name"] != run_name:
                api.set_tags(fr["id"], [t for t in fr["tags"] if t != f"tag:{tag}"])
    fr = api.flow_run_by_name(run_name)
    tags = [t for t in fr.get("tags") or [] if not t.startswith("tag:")]
    api.set_tags(fr["id"], tags + ([f"tag:{tag}"] if tag else []))
