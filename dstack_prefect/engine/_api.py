"""A small synchronous client of the Prefect REST API for the CLI's read and control paths.

`dstack ps`, `logs`, `stop` and `rm` need a handful of endpoints; talking to them with the
standard library's http.client (keep-alive, one connection per thread) keeps those commands free
of the ~1.5 s `import prefect`, and of httpx's ~0.1 s import. Runs themselves go through prefect.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import os
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dstack_prefect.errors import RunNotFoundError, ServerError, ServerUnreachableError

DSTACK_TAG = "dstack"
PAGE = 200  # the server's default maximum page size
LOG_WORKERS = 4
"""Log pages in flight at most (`log_pages`): the round trips to a remote server overlap. `dstack
logs` of 20000 lines through a proxy delaying each page ~44 ms: 7.7 s one page at a time, 4.4 s
four at a time. The local server is one process spending ~0.1 ms a row whatever the page size:
there, what counts is that it works while the client prints (bench/README.md, logs.py)."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0, 4.0)
"""As Prefect's own client does, retry what a busy server answers while it catches up."""


class _Http:
    """HTTP/1.1 with keep-alive to one server: one connection per thread, JSON bodies."""

    def __init__(self, url: str, timeout: float, api_key: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"'{url}' is not an http(s) URL"
            raise ValueError(msg)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:  # Prefect Cloud, or a server behind an API key
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = kind(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def request(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        """(status, body). A kept-alive connection the server has closed meanwhile is opened
        again once; any other failure is an OSError or http.client.HTTPException."""
        data = None if body is None else jsonlib.dumps(body).encode()
        for again in (True, False):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request(method, self._base + path, body=data, headers=self._headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                if not (again and reused):
                    raise
            except BaseException:
                conn.close()  # else the next request on it fails with CannotSendRequest
                raise
        raise AssertionError  # unreachable: the second pass returns or raises

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


@dataclass(frozen=True)
class LogCursor:
    """Where a read of a flow run's log records ended: ``id`` was the row at ``offset`` among
    its records at or after ``after``, oldest first. Records are only ever added: while that
    row is still at ``offset``, none came in before it, and a read goes on from there."""

    after: datetime | None
    offset: int
    id: str


class LogPage(list[dict[str, Any]]):
    """Log records, and where the read they come from stands after them: None where rows moved
    during the read (the next read looks back instead of going on)."""

    def __init__(self, rows: list[dict[str, Any]], cursor: LogCursor | None) -> None:
        super().__init__(rows)
        self.cursor = cursor


class PrefectAPI:
    def __init__(self, url: str, timeout: float = 30.0, *, shared: bool = False) -> None:
        self.url = url.rstrip("/")
        self.shared = shared
        """A server dstack does not manage (PREFECT_API_URL): other homes' runs are on it too."""
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        try:
            self._http = _Http(self.url, timeout, os.environ.get("PREFECT_API_KEY"))
        except ValueError as exc:
            raise ServerError(str(exc), hint="set PREFECT_API_URL to the server's API URL") from None

    def close(self) -> None:
        if self._pool is not None:  # its requests finish first: their connections close after
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._http.close()

    def _workers(self) -> ThreadPoolExecutor:
        """The threads that fetch pages ahead: kept, with their kept-alive connections, for
        this client's life (a follower reads every 0.15 s)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=LOG_WORKERS, thread_name_prefix="dstack-api")
            return self._pool

    def __enter__(self) -> PrefectAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, json: Any = None) -> Any:
        """One REST call: the decoded answer, None for 404; retries like Prefect's client."""
        return self._call(method, path, json)

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        for delay in (*RETRY_DELAYS, None):
            try:
                status, content = self._http.request(method, path, json)
            except (OSError, http.client.HTTPException) as exc:
                msg = f"the Prefect server at {self.url} is not reachable ({type(exc).__name__})"
                raise ServerUnreachableError(
                    msg, hint="check `dstack server status`, or PREFECT_API_URL"
                ) from exc
            if status not in RETRY_STATUSES or delay is None:
                break
            time.sleep(delay)  # a busy SQLite server answers 503 ("database is locked"): back off
        if status == 404:
            return None
        if status >= 400:
            text = content[:200].decode(errors="replace")
            msg = f"the Prefect server answered {status} to {method} {path}: {text}"
            raise ServerError(msg)
        try:
            return jsonlib.loads(content) if content else None
        except ValueError as exc:
            msg = f"the server at {self.url} did not answer like a Prefect server ({method} {path})"
            raise ServerError(msg, hint="check PREFECT_API_URL: it ends in /api") from exc

    # flow runs ---------------------------------------------------------------------------

    def flow_runs(
        self,
        *,
        names: list[str] | None = None,
        name_like: str | None = None,
        state_types: list[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """dstack's flow runs, newest first."""
        flt = self._filter(names, name_like, state_types)
        offset = 0
        while True:
            page = min(PAGE, limit - offset) if limit else PAGE
            if page <= 0:
                return
            body = {"flow_runs": flt, "sort": "EXPECTED_START_TIME_DESC", "limit": page, "offset": offset}
            rows = self._call("POST", "/flow_runs/filter", body) or []
            yield from rows
            if len(rows) < page:
                return
            offset += len(rows)

    def all_flow_runs(self, workers: int = 4) -> list[dict[str, Any]]:
        """Every dstack flow run, newest first: the pages are fetched concurrently."""
        flt = self._filter(None, None, None)
        total = int(self._call("POST", "/flow_runs/count", {"flow_runs": flt}) or 0)
        bodies = [
            {"flow_runs": flt, "sort": "EXPECTED_START_TIME_DESC", "limit": PAGE, "offset": off}
            for off in range(0, total, PAGE)
        ]
        if len(bodies) <= 1:
            return list(self.flow_runs())
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pages = list(pool.map(lambda b: self._call("POST", "/flow_runs/filter", b) or [], bodies))
        seen: set[str] = set()
        rows = []
        for row in (r for p in pages for r in p):  # a run created meanwhile shifts pages: no duplicates
            if row["id"] not in seen:
                seen.add(row["id"])
                rows.append(row)
        return rows

    @staticmethod
    def _filter(
        names: list[str] | None, name_like: str | None, state_types: list[str] | None
    ) -> dict[str, Any]:
        flt: dict[str, Any] = {"tags": {"all_": [DSTACK_TAG]}}
        if names:
            flt["name"] = {"any_": names}
        if name_like:
            flt["name"] = {"like_": name_like}
        if state_types:
            flt["state"] = {"type": {"any_": state_types}}
        return flt

    def flow_run_by_name(self, name: str) -> dict[str, Any]:
        for row in self.flow_runs(names=[name], limit=1):
            return row
        msg = f"there is no run named '{name}'"
        close = self._close_names(name)
        if not close:
            raise RunNotFoundError(msg)
        hint = f"did you mean {' or '.join(repr(n) for n in close)}? `dstack ps -a` lists runs"
        raise RunNotFoundError(msg, hint=hint)

    def _close_names(self, name: str) -> list[str]:
        """Run names ``name`` may have meant: those it starts (``clever-panda`` for
        ``clever-panda-1``), else the closest among the newest runs."""
        starting = [r["name"] for r in self.flow_runs(name_like=name, limit=PAGE)]
        starting = [n for n in starting if n.startswith(name)]
        if starting:
            return sorted(starting)[:3]
        import difflib  # noqa: PLC0415

        recent = [r["name"] for r in self.flow_runs(limit=PAGE)]
        return difflib.get_close_matches(name, recent, n=1)

    def flow_run(self, flow_run_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._call("GET", f"/flow_runs/{flow_run_id}")
        return result

    def set_flow_run_state(
        self,
        flow_run_id: str,
        state_type: str,
        *,
        name: str | None = None,
        message: str = "",
        force: bool = False,
    ) -> dict[str, Any]:
        state: dict[str, Any] = {"type": state_type, "message": message}
        if name:
            state["name"] = name
        result: dict[str, Any] = self._call(
            "POST", f"/flow_runs/{flow_run_id}/set_state", {"state": state, "force": force}
        )
        return result

    def rename_running(self, flow_run_id: str, name: str) -> bool:
        """Give a running flow run the state name ``name``, keeping it RUNNING; False when
        Prefect refuses, e.g. for a run being stopped (CANCELLING goes only to CANCELLED). Each
        RUNNING state counts in the run's run_count, as Prefect counts every entry into RUNNING."""
        body = {"state": {"type": "RUNNING", "name": name}, "force": False}
        result = self._call("POST", f"/flow_runs/{flow_run_id}/set_state", body) or {}
        return result.get("status") == "ACCEPT"

    def state_names(self, flow_run_id: str) -> list[str]:
        """The names of every state a flow run has been in, oldest first: its history as the
        Prefect UI's timeline shows it."""
        states: list[dict[str, Any]] = self._call("GET", f"/flow_run_states/?flow_run_id={flow_run_id}") or []
        return [st["name"] for st in sorted(states, key=lambda st: st["timestamp"])]

    def set_tags(self, flow_run_id: str, tags: list[str]) -> None:
        """Replace the flow run's tags (the TAG column of `dstack ps` reads `tag:NAME`)."""
        self._call("PATCH", f"/flow_runs/{flow_run_id}", {"tags": tags})

    def delete_flow_run(self, flow_run_id: str) -> None:
        self._call("DELETE", f"/flow_runs/{flow_run_id}")

    # recording a run without executing it (every step reused) --------------------------

    def ensure_flow(self, name: str) -> str:
        """The id of the flow named ``name`` (created if new)."""
        result: dict[str, Any] = self._call("POST", "/flows/", {"name": name})
        return str(result["id"])

    def create_flow_run(
        self, flow_id: str, *, name: str, parameters: dict[str, Any], tags: list[str]
    ) -> dict[str, Any]:
        body = {
            "flow_id": flow_id,
            "name": name,
            "parameters": parameters,
            "tags": tags,
            "state": {"type": "PENDING", "message": "submitted by dstack run"},
        }
        result: dict[str, Any] = self._call("POST", "/flow_runs/", body)
        return result

    def create_task_run(self, flow_run_id: str, name: str, state: dict[str, Any]) -> dict[str, Any]:
        body = {
            "name": name,
            "flow_run_id": flow_run_id,
            "task_key": "dstack-step",
            "dynamic_key": name,
            "state": state,
        }
        result: dict[str, Any] = self._call("POST", "/task_runs/", body)
        return result

    def write_logs(self, records: list[dict[str, Any]]) -> None:
        self._call("POST", "/logs/", records)

    # task runs and logs ------------------------------------------------------------------

    def task_runs(self, flow_run_id: str) -> list[dict[str, Any]]:
        body = {
            "flow_runs": {"id": {"any_": [flow_run_id]}},
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": PAGE,
        }
        result: list[dict[str, Any]] = self._call("POST", "/task_runs/filter", body) or []
        return result

    def logs(
        self, flow_run_id: str, *, after: datetime | None = None, offset: int = 0, limit: int = PAGE
    ) -> list[dict[str, Any]]:
        """One page of a flow run's log records, oldest first (equal timestamps in the server's
        order)."""
        flt: dict[str, Any] = {"flow_run_id": {"any_": [flow_run_id]}}
        if after is not None:
            flt["timestamp"] = {"after_": after.isoformat()}
        body = {"logs": flt, "sort": "TIMESTAMP_ASC", "limit": limit, "offset": offset}
        result: list[dict[str, Any]] = self._call("POST", "/logs/filter", body) or []
        return result

    def log_pages(
        self,
        flow_run_id: str,
        *,
        after: datetime | None = None,
        page: int = PAGE,
        workers: int = LOG_WORKERS,
        resume: LogCursor | None = None,
    ) -> Iterator[LogPage]:
        """Every log record of a flow run, oldest first, page by page, each once, in the
        server's order (equal timestamps as its query sorts them). Each page says where it
        ended (`LogPage.cursor`): a later read given it as ``resume`` reads only what came
        after, when nothing came in before it meanwhile; else it reads from ``after``.

        The first page is read alone (a follower's reads are mostly one short page). After a
        full one, pages are fetched ahead, one more in flight after each full page up to
        ``workers`` (a read that ends soon asks for few pages past its end), by offset, each
        starting on the last row of the page before::

            page 0: offset 0    rows 0..199
            page 1: offset 199  rows 199..398   (row 199 must be page 0's last)
            page 2: offset 398  rows 398..597

        Lines that arrive meanwhile (a live run) with earlier timestamps move the later rows on:
        a page read after them would skip a row, and its first row then is not the one the page
        before ended on. From there the pages fetched ahead are dropped and the rest is read one
        page at a time, where a moving row can only come twice (it is yielded once), never go
        missing. A line that arrives behind the page being read is missed, as in any paging:
        those pages have no cursor, and `LogReader` looks back 5 s on its next read.
        """
        if page < 2:
            msg = f"a log page holds at least 2 rows (one overlaps the next page), not {page}"
            raise ValueError(msg)
        if resume is not None:
            rows = self.logs(flow_run_id, after=resume.after, offset=resume.offset, limit=page)
            if rows and rows[0]["id"] == resume.id:  # still where the last read ended
                end = LogCursor(resume.after, resume.offset + len(rows) - 1, rows[-1]["id"])
                yield LogPage(rows[1:], end)
                if len(rows) == page:
                    yield from self._pages_on(flow_run_id, resume.after, resume.offset, rows, page, workers)
                return
        rows = self.logs(flow_run_id, after=after, limit=page)
        yield LogPage(rows, LogCursor(after, len(rows) - 1, rows[-1]["id"]) if rows else None)
        if len(rows) == page:
            yield from self._pages_on(flow_run_id, after, 0, rows, page, workers)

    def _pages_on(
        self,
        flow_run_id: str,
        after: datetime | None,
        offset: int,
        rows: list[dict[str, Any]],
        page: int,
        workers: int,
    ) -> Iterator[LogPage]:
        """The pages after ``rows``, the full page read at ``offset`` and yielded already."""
        seen = {rec["id"] for rec in rows}
        step = page - 1
        last, offset = rows[-1]["id"], offset + step
        pool = self._workers()
        ahead: deque[tuple[int, Future[list[dict[str, Any]]]]] = deque()
        depth = 1
        try:
            while True:
                while len(ahead) < depth:
                    start = offset + len(ahead) * step
                    ahead.append(
                        (start, pool.submit(self.logs, flow_run_id, after=after, offset=start, limit=page))
                    )
                offset, future = ahead.popleft()
                rows = future.result()
                if not rows or rows[0]["id"] != last:
                    break  # rows moved since the pages before were read: go on one at a time
                seen.update(rec["id"] for rec in rows)
                yield LogPage(rows[1:], LogCursor(after, offset + len(rows) - 1, rows[-1]["id"]))
                if len(rows) < page:
                    return
                last, offset = rows[-1]["id"], offset + step
                depth = min(depth + 1, max(workers, 1))
        finally:
            for _, future in ahead:
                future.cancel()
        while True:
            rows = self.logs(flow_run_id, after=after, offset=offset, limit=page)
            yield LogPage([rec for rec in rows if rec["id"] not in seen], None)
            if len(rows) < page:
                return
            seen.update(rec["id"] for rec in rows)
            offset += len(rows)
