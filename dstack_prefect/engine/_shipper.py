"""Step output lines to the Prefect API, in batches, from one thread: every line, and fast.

Prefect's own path (a run logger, its APILogHandler and APILogWorker) costs ~0.5 ms per record
in the step's reading thread, enough to stall a chatty step on its stdout pipe, and its drain
at the end of a run gives up after a timeout, losing the last lines: the ones that say why a
step failed. A step's output is the bulk of a run's logs, so it takes this shorter road: each
line becomes one `/logs/` record (the same fields Prefect's handler sends, so the UI and
`dstack logs` read them alike) queued in memory, and a thread POSTs them ~200 at a time (a
SQLite server takes ~2500 lines/s in batches of 100-200 on a 2-core machine).

:meth:`LogShipper.close` returns when every line is on the server, however long that takes
while the server keeps taking them; a server that is down is retried (a restarted local
server comes back at the same address) until ``give_up_after`` seconds pass without one
accepted batch. A batch the server refuses is sent again in halves down to the lines it
refuses, which are dropped with a warning on the run saying how many. dstack's own notes on
the run and its steps take the same queue (`engine/_flow.py` ShippedNotes), so they keep
their place among the lines.

    shipper = LogShipper(PrefectAPI(url))
    shipper.add("prefect.task_runs.dstack.out.train", "epoch 1", flow_run_id, task_run_id)
    shipper.close()                # every line sent, or given up on (and said on stderr)
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any, Protocol

from dstack_prefect.engine._runs import RUN_NOTE_LOGGER
from dstack_prefect.errors import ServerError, ServerUnreachableError

BATCH = 200
"""Lines per POST (a SQLite server is fastest at 100-200)."""

BATCH_CHARS = 4_000_000
"""Characters per POST at most (a longer line goes alone): lines of 1 MB (`executors/_lines.py`
MAX_LINE) 200 at a time made POSTs that took the local server 7 s per 50 MB, and one past the
client's 30 s timeout is sent again: stored twice."""

INTERVAL = 0.2
"""A line waits at most this long for its batch to fill before it is sent."""


class _Api(Protocol):
    def call(self, method: str, path: str, json: Any = None) -> Any: ...


class LogShipper:
    """Queues log records and ships them in order from a background thread."""

    def __init__(
        self,
        api: _Api,
        *,
        batch: int = BATCH,
        batch_chars: int = BATCH_CHARS,
        interval: float = INTERVAL,
        give_up_after: float = 120.0,
        retry_every: float = 1.0,
        max_queued: int = 100_000,
        max_queued_chars: int = 64_000_000,
        note_logger: str = RUN_NOTE_LOGGER,
    ) -> None:
        self._api = api
        self._batch = batch
        self._batch_chars = batch_chars
        self._interval = interval
        self._give_up_after = give_up_after
        self._retry_every = retry_every
        self._max_queued = max_queued
        self._max_queued_chars = max_queued_chars
        self._queued_chars = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._down_since: float | None = None
        self._cut_at: float | None = None
        self._note_logger = note_logger
        self.sent = 0
        self.dropped = 0

    def add(
        self,
        logger: str,
        message: str,
        flow_run_id: str,
        task_run_id: str | None = None,
        level: int = 20,
    ) -> None:
        """Queue one line; it is sent within ``interval`` seconds (sooner in a full batch).
        With ``max_queued`` lines or ``max_queued_chars`` characters waiting (a step printing
        faster than the server stores), this waits for room, as a full pipe would: the step
        slows down, no line is lost, and memory stays bounded (1 MB lines, too)."""
        record = {
            "name": logger,
            "level": level,
            "message": message,
            "timestamp": datetime.now(UTC).isoformat(),
            "flow_run_id": flow_run_id,
            "task_run_id": task_run_id,
        }
        with self._wake:
            if self._closing:
                msg = "LogShipper.add after close"
                raise RuntimeError(msg)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dstack-log-shipper", daemon=True)
                self._thread.start()
            while len(self._queue) >= self._max_queued or (
                self._queue and self._queued_chars >= self._max_queued_chars
            ):
                self._wake.notify_all()
                self._wake.wait()
            self._queue.append(record)
            self._queued_chars += len(message)
            if len(self._queue) >= self._batch:
                self._wake.notify_all()

    def close(self, cut_after: float | None = None) -> None:
        """Send what is queued, then stop the thread; returns when it has. With ``cut_after``
        (a run being stopped, which must end promptly), lines still waiting that many seconds
        later are dropped, and one warning line on the run says how many."""
        with self._wake:
            self._closing = True
            if cut_after is not None:
                self._cut_at = time.monotonic() + cut_after
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Up to ``batch`` records once a batch is full, ``interval`` passed, or closing; None
        when closing with nothing left."""
        with self._wake:
            if len(self._queue) < self._batch and not self._closing:
                self._wake.wait(self._interval)
            if not self._queue:
                return None if self._closing else []
            if self._cut():
                last = self._queue[-1]
                dropped = len(self._queue)
                self._queue.clear()
                self._queued_chars = 0
                self.dropped += dropped
                self._wake.notify_all()
                said = f"{dropped} output line(s) not kept: the run was stopped while they waited to be sent"
                return [self._warning(last, said)]
            batch = [self._queue.popleft()]
            chars = len(batch[0]["message"])
            while self._queue and len(batch) < self._batch:
                chars += len(self._queue[0]["message"])
                if chars > self._batch_chars:
                    break
                batch.append(self._queue.popleft())
            self._queued_chars -= sum(len(r["message"]) for r in batch)
            self._wake.notify_all()  # room for a waiting add()
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:
                continue
            try:
                self._send(batch)
            except Exception as exc:  # noqa: BLE001 - the thread must live on: add() may wait for room
                self.dropped += len(batch)
                sys.stderr.write(f"dstack: {len(batch)} log line(s) not sent: {exc!r}\n")

    def _send(self, batch: list[dict[str, Any]]) -> None:
        """POST ``batch``; the lines a refusing server (4xx, 500) costs are said on the run."""
        refused: list[ServerError] = []
        self._post(batch, refused)
        if refused:
            lost = f"{len(refused)} output line(s) not kept: {refused[-1].message}"
            with contextlib.suppress(ServerError):  # said on stderr already
                self._api.call("POST", "/logs/", [self._warning(batch[-1], lost)])

    def _warning(self, like: dict[str, Any], message: str) -> dict[str, Any]:
        """A warning on the run (not a step) about its lines, timed as the record ``like``."""
        return {**like, "name": self._note_logger, "level": 30, "message": message, "task_run_id": None}

    def _post(self, batch: list[dict[str, Any]], refused: list[ServerError]) -> None:
        """POST ``batch``. While the server is unreachable, try again every ``retry_every``
        seconds; once it has been for ``give_up_after`` seconds, each batch gets one try until
        one is accepted again. A batch the server refuses is sent again in halves, down to the
        lines it refuses alone (NUL on Postgres, a line too long), which are dropped (one error
        each in ``refused``): sending them again would be refused again."""
        while True:
            try:
                self._api.call("POST", "/logs/", batch)
            except ServerUnreachableError as exc:
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = now
                if now - self._down_since < self._give_up_after and not self._cut():
                    time.sleep(self._retry_every)
                    continue
                self._drop(batch, exc)
            except ServerError as exc:
                if len(batch) == 1:
                    refused.append(exc)
                    self._drop(batch, exc)
                else:
                    half = len(batch) // 2
                    self._post(batch[:half], refused)
                    self._post(batch[half:], refused)
            else:
                self._down_since = None
                self.sent += len(batch)
            return

    def _cut(self) -> bool:
        return self._cut_at is not None and time.monotonic() >= self._cut_at

    def _drop(self, batch: list[dict[str, Any]], exc: ServerError) -> None:
        self.dropped += len(batch)
        sys.stderr.write(f"dstack: {len(batch)} log line(s) not sent: {exc.message}\n")
