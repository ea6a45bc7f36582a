"""What a chatty step's output costs on its way to the user: an attached `dstack run` keeps pace
with a burst of lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dstack_prefect.cli._attach import _Shown
from dstack_prefect.engine import PrefectAPI, follow
from dstack_prefect.engine._runs import STEP_OUTPUT_LOGGER, LogLine, step_logger_name
from tests.conftest import Server


def test_an_attached_run_keeps_pace_with_a_burst() -> None:
    """40000 lines printed in a moment (all within the 5 s a resumed follower reads again) are
    remembered at a steady cost per line: each line past 20000 used to copy every id kept
    (about a minute for this burst, half an hour for 200000 lines). What a follower resumed
    after a Ctrl-C skips is still every line of the last 5 s, and nothing older is kept."""
    start = datetime.now(UTC)
    old = [LogLine("s", "old", start - timedelta(seconds=60), note=False, id=f"old-{i}") for i in range(10)]
    burst = [LogLine("s", str(i), start, note=False, id=f"id-{i}") for i in range(40000)]
    shown = _Shown()

    began = time.perf_counter()
    for line in [*old, *burst]:
        shown.add(line)
    took = time.perf_counter() - began

    assert took < 5, f"{took:.1f} s to remember 40010 lines"
    assert set(shown.reader(None, "run").seen) == {line.id for line in burst}


class CountingAPI(PrefectAPI):
    """The CLI's API client, counting the log rows the server sends it."""

    rows_read = 0

    def logs(self, flow_run_id: str, **kwargs: Any) -> list[dict[str, Any]]:
        rows = super().logs(flow_run_id, **kwargs)
        self.rows_read += len(rows)
        return rows


@pytest.fixture
def api(prefect_server: Server) -> Iterator[CountingAPI]:
    client = CountingAPI(prefect_server.url)
    yield client
    client.close()


def burst_run(api: PrefectAPI) -> str:
    fr = api.create_flow_run(
        api.ensure_flow("log-volume-test"), name="log-volume-test", parameters={}, tags=[]
    )
    return str(fr["id"])


def ship(api: PrefectAPI, flow_run_id: str, numbers: range, start: datetime) -> None:
    """Lines ``numbers``, a microsecond apart from ``start`` (a burst: all within 5 s), as the
    step's shipper sends them: 200 a POST."""
    records = [
        {
            "name": step_logger_name(STEP_OUTPUT_LOGGER, "s"),
            "level": 20,
            "message": str(n),
            "timestamp": (start + timedelta(microseconds=n)).isoformat(),
            "flow_run_id": flow_run_id,
        }
        for n in numbers
    ]
    for at in range(0, len(records), 200):
        api.write_logs(records[at : at + 200])


@pytest.mark.service("prefect")
def test_a_follower_reads_each_line_of_a_burst_about_once(api: CountingAPI) -> None:
    """A burst arriving while an attached run follows it (3000 lines, 300 at a time, each
    batch shipped as the follower shows the last line of the one before) is shown line by line,
    in order, and the server sends each line about once (3021 rows): every poll read all the
    lines within 5 s of the last one shown, here 22610 rows, and a 200000-line step's attached
    run printed nothing until the step had ended."""
    flow_run_id = burst_run(api)
    start = datetime.now(UTC)
    batch, total = 300, 3000
    ship(api, flow_run_id, range(1, batch + 1), start)
    shown: list[str] = []

    for item in follow(api, flow_run_id, interval=0.05):
        if not isinstance(item, LogLine):
            continue
        shown.append(item.message)
        if len(shown) % batch == 0 and len(shown) < total:
            ship(api, flow_run_id, range(len(shown) + 1, len(shown) + batch + 1), start)
        elif len(shown) == total:
            api.set_flow_run_state(flow_run_id, "COMPLETED", force=True)

    assert [str(n) for n in range(1, total + 1)] == shown
    assert api.rows_read < 1.2 * total, f"{api.rows_read} rows read for {total} lines"


@pytest.mark.service("prefect")
def test_a_follower_shows_a_long_reads_first_lines_before_its_last_page(api: CountingAPI) -> None:
    """A follower that finds 1000 lines waiting (five pages) shows the first while the server
    has sent at most two pages: it printed none before reading them all."""
    flow_run_id = burst_run(api)
    ship(api, flow_run_id, range(1, 1001), datetime.now(UTC))
    stream = follow(api, flow_run_id)

    first = next(stream)
    read_by_then = api.rows_read

    assert isinstance(first, LogLine)
    assert "1" == first.message
    assert read_by_then <= 400
