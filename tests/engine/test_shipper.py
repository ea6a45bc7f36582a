"""LogShipper: every queued line reaches the server, in order, in batches; an outage is waited
out, a refusal is dropped and said."""

from __future__ import annotations

from typing import Any

import pytest

from dstack_prefect.engine._shipper import LogShipper
from dstack_prefect.errors import ServerError, ServerUnreachableError


class FlakyServer:
    """Stands in for the Prefect API's POST /logs/: the real one stores the records (tested end
    to end in test_local_runs); this one keeps them in a list, and can answer the first
    ``down`` calls as a stopped server does (connection refused), or refuse (4xx) every batch
    holding the message ``refuse``."""

    def __init__(self, down: int = 0, refuse: str | None = None) -> None:
        self.down = down
        self.refuse = refuse
        self.calls = 0
        self.batches: list[list[dict[str, Any]]] = []

    def call(self, method: str, path: str, json: Any = None) -> Any:
        assert (method, path) == ("POST", "/logs/")
        self.calls += 1
        if self.calls <= self.down:
            msg = "the Prefect server at http://127.0.0.1:1/api is not reachable (ConnectionRefusedError)"
            raise ServerUnreachableError(msg)
        if any(r["message"] == self.refuse for r in json):
            msg = "the Prefect server answered 422 to POST /logs/"
            raise ServerError(msg)
        self.batches.append(json)
        return None

    def messages(self) -> list[str]:
        return [r["message"] for batch in self.batches for r in batch]


def lines_of(server: FlakyServer) -> list[dict[str, Any]]:
    return [r for batch in server.batches for r in batch]


def ship(server: FlakyServer, lines: int, **options: Any) -> LogShipper:
    shipper = LogShipper(server, batch=50, retry_every=0, **options)
    for i in range(lines):
        shipper.add("prefect.task_runs.dstack.out.s", str(i), "fr-1", "tr-1")
    shipper.close()
    return shipper


def test_every_line_arrives_in_order_in_batches() -> None:
    """1000 lines: all on the server when close returns, in order, at most 50 per POST, with
    the fields Prefect's own handler sends."""
    server = FlakyServer()

    shipper = ship(server, 1000)

    assert server.messages() == [str(i) for i in range(1000)]
    assert max(len(b) for b in server.batches) == 50
    assert shipper.sent == 1000 and shipper.dropped == 0
    first = server.batches[0][0]
    assert sorted(first) == ["flow_run_id", "level", "message", "name", "task_run_id", "timestamp"]
    assert (first["name"], first["level"], first["flow_run_id"], first["task_run_id"]) == (
        "prefect.task_runs.dstack.out.s",
        20,
        "fr-1",
        "tr-1",
    )


def test_an_outage_is_waited_out_and_nothing_is_lost() -> None:
    """The server refuses connections for a while (a restart): the batch is sent again until
    it is taken; every line arrives once."""
    server = FlakyServer(down=5)

    ship(server, 120)

    assert server.messages() == [str(i) for i in range(120)]


def test_a_server_gone_for_good_loses_the_lines_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """Past give_up_after, lines are dropped (counted, said on stderr) and close returns."""
    server = FlakyServer(down=10**9)

    shipper = ship(server, 120, give_up_after=0)

    assert shipper.dropped == 120 and server.batches == []
    assert "50 log line(s) not sent: the Prefect server at" in capsys.readouterr().err


def test_a_refused_line_costs_only_itself_and_is_said_on_the_run() -> None:
    """The server refuses (4xx) any batch holding line 7: its batch is sent again in halves
    until the one line is found. Every other line arrives, in order, and a warning on the run
    says what was lost and why (stderr was the supervisor's log, which nobody reads)."""
    server = FlakyServer(refuse="7")

    shipper = ship(server, 120)

    said = "1 output line(s) not kept: the Prefect server answered 422 to POST /logs/"
    messages = server.messages()
    assert [m for m in messages if m != said] == [str(i) for i in range(120) if i != 7]
    assert shipper.dropped == 1
    note = lines_of(server)[messages.index(said)]  # after the batch that lost the line
    assert messages.index("6") < messages.index(said) < messages.index("119")
    assert (note["name"], note["level"], note["task_run_id"]) == ("prefect.flow_runs.dstack", 30, None)


def test_a_post_holds_a_few_megabytes_at_most() -> None:
    """Lines of 1 MB (a step printing without newlines) go a few per POST, not 50: one POST of
    50 MB took the local server 7 s, and one past the client's 30 s timeout is sent again
    (twice on the server)."""
    server = FlakyServer()
    shipper = LogShipper(server, batch=50, retry_every=0)
    for i in range(10):
        shipper.add("prefect.task_runs.dstack.out.s", str(i) * 1_000_000, "fr-1", "tr-1")

    shipper.close()

    assert [r["message"][0] for r in lines_of(server)] == [str(i) for i in range(10)]
    assert max(sum(len(r["message"]) for r in batch) for batch in server.batches) == 4_000_000


def test_a_full_queue_waits_for_room_and_keeps_every_line() -> None:
    """With max_queued lines waiting, add() waits for the sender (as a full pipe makes a
    writer wait) instead of growing without bound or dropping."""
    server = FlakyServer()

    ship(server, 1000, max_queued=60)

    assert server.messages() == [str(i) for i in range(1000)]


def test_a_stopped_runs_backlog_is_cut_and_the_cut_is_said() -> None:
    """close(cut_after=0), as a stopped run does after its grace: the lines not yet sent are
    dropped, and one warning on the run's note logger counts them; nothing sent is lost."""
    server = FlakyServer()
    shipper = LogShipper(server, batch=50, retry_every=0)
    for i in range(1000):
        shipper.add("prefect.task_runs.dstack.out.s", str(i), "fr-1", "tr-1")

    shipper.close(cut_after=0)

    *sent, note = [r for batch in server.batches for r in batch]
    assert [r["message"] for r in sent] == [str(i) for i in range(len(sent))]
    assert (
        note["message"]
        == f"{1000 - len(sent)} output line(s) not kept: the run was stopped while they waited to be sent"
    )
    assert (note["name"], note["level"], note["task_run_id"], note["flow_run_id"]) == (
        "prefect.flow_runs.dstack",
        30,
        None,
        "fr-1",
    )


def test_nothing_added_means_no_thread_and_close_returns() -> None:
    """A run whose steps print nothing never starts the thread."""
    server = FlakyServer()
    shipper = LogShipper(server)

    shipper.close()

    assert server.calls == 0


def test_long_lines_waiting_hold_a_bounded_memory() -> None:
    """Lines of 1 MB (a step printing without newlines) wait for room past ``max_queued_chars``
    as they do past ``max_queued`` lines: 100 000 of them were let wait (100 GB). Whenever a
    POST arrives, the lines accepted and not yet sent hold at most that much, plus the one
    being added."""
    added = 0
    in_flight: list[int] = []

    class CountingServer(FlakyServer):
        def call(self, method: str, path: str, json: Any = None) -> Any:
            in_flight.append(added - len(self.messages()) - len(json))
            return super().call(method, path, json)

    server = CountingServer()
    shipper = LogShipper(server, batch=2, retry_every=0, max_queued_chars=3_000_000)
    for i in range(30):
        shipper.add("prefect.task_runs.dstack.out.s", str(i % 10) * 1_000_000, "fr-1", "tr-1")
        added += 1
    shipper.close()

    assert len(server.messages()) == 30
    assert max(in_flight) <= 4
