"""Reading back a run longer than a page: every line once, in the server's order, however the
pages are cut and fetched (`PrefectAPI.log_pages`, `LogReader`, `dstack logs`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import LogReader, PrefectAPI
from dstack_prefect.engine._runs import STEP_OUTPUT_LOGGER, step_logger_name
from tests.conftest import Server, git_init, write_tree

pytestmark = pytest.mark.service("prefect")

LINES = 1500
NUMBERS = [str(i) for i in range(1, LINES + 1)]
CHATTY = f"""
workflows:
  - name: chatty
    provider: bash
    commands: [seq {LINES}]
"""


@pytest.fixture(scope="module")
def chatty(
    prefect_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str]]]:
    """A finished run named `chatty-1` whose one step printed 1..1500: the repo and the
    environment its `dstack` commands run in."""
    root = tmp_path_factory.mktemp("log-reader")
    repo = root / "repo"
    write_tree(repo, {".dstack/workflows.yaml": CHATTY})
    git_init(repo)
    env = prefect_server.env(root / "home")
    done = dstack(repo, env, "run", "chatty", "--name", "chatty-1")
    assert done.returncode == 0, done.stdout + done.stderr
    yield repo, env


def dstack(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dstack_prefect", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture
def api(prefect_server: Server) -> Iterator[PrefectAPI]:
    with PrefectAPI(prefect_server.url) as client:
        yield client


@pytest.mark.parametrize("args", [(), ("-a",), ("-s", "1h")], ids=["plain", "attach", "since"])
def test_dstack_logs_prints_every_line_in_order(
    chatty: tuple[Path, dict[str, str]], args: tuple[str, ...]
) -> None:
    """`dstack logs` of a 1500-line run (eight pages, four fetched at once) prints 1..1500, each
    once; following a finished run and `-s 1h` print the same."""
    repo, env = chatty

    res = dstack(repo, env, "logs", "chatty-1", *args)

    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == NUMBERS


@pytest.mark.parametrize(("page", "workers"), [(7, 1), (7, 4), (50, 3)])
def test_small_pages_read_the_same_lines(
    chatty: tuple[Path, dict[str, str]], api: PrefectAPI, page: int, workers: int
) -> None:
    """Cut into pages of 7 or 50 rows, one to four in flight, the run reads back as with the
    default pages: the same lines, notes included, in the same order."""
    flow_run_id = api.flow_run_by_name("chatty-1")["id"]
    default = LogReader(api, flow_run_id).read()

    small = LogReader(api, flow_run_id, page=page, workers=workers).read()

    assert [line.message for line in default if not line.note] == NUMBERS
    assert small == default


def flow_run_with_lines(api: PrefectAPI, messages: list[str], start: datetime, *, tick: timedelta) -> str:
    """A flow run holding one output line per message, ``tick`` apart from ``start``."""
    fr = api.create_flow_run(
        api.ensure_flow("log-reader-test"), name="log-reader-test", parameters={}, tags=[]
    )
    write_lines(api, fr["id"], messages, start, tick=tick)
    return str(fr["id"])


def write_lines(
    api: PrefectAPI, flow_run_id: str, messages: list[str], start: datetime, *, tick: timedelta
) -> None:
    api.write_logs(
        [
            {
                "name": step_logger_name(STEP_OUTPUT_LOGGER, "s"),
                "level": 20,
                "message": message,
                "timestamp": (start + i * tick).isoformat(),
                "flow_run_id": flow_run_id,
            }
            for i, message in enumerate(messages)
        ]
    )


def messages(pages: Iterator[list[dict[str, Any]]]) -> list[str]:
    return [rec["message"] for page in pages for rec in page]


def test_equal_timestamps_keep_the_servers_order(api: PrefectAPI) -> None:
    """300 lines with one timestamp come back in the order one sequential read of the server
    gives, whatever the page size and however many pages are in flight."""
    start = datetime.now(UTC)
    flow_run_id = flow_run_with_lines(api, [f"tie {i}" for i in range(300)], start, tick=timedelta(0))
    servers = [r["message"] for r in api.logs(flow_run_id)] + [
        r["message"] for r in api.logs(flow_run_id, offset=200)
    ]

    for page, workers in [(200, 4), (7, 4), (2, 2)]:
        assert messages(api.log_pages(flow_run_id, page=page, workers=workers)) == servers


def test_lines_arriving_mid_read_hide_no_line(api: PrefectAPI) -> None:
    """Lines that arrive between two pages with earlier timestamps move every later row on:
    the pages fetched ahead no longer join up, and the read goes on one page at a time. Every
    line that was there is read once, in order; the newcomers come after what was read."""
    start = datetime.now(UTC)
    old = [f"old {i}" for i in range(100)]
    flow_run_id = flow_run_with_lines(api, old, start, tick=timedelta(milliseconds=1))
    pages = api.log_pages(flow_run_id, page=10, workers=3)
    first = next(pages)  # read alone: nothing is fetched ahead yet
    write_lines(
        api, flow_run_id, [f"new {i}" for i in range(25)], start - timedelta(seconds=1), tick=timedelta(0)
    )

    read = [rec["message"] for rec in first] + messages(pages)

    assert [m for m in read if m.startswith("old")] == old
    assert len(read) == len(set(read))
    assert read[:10] == old[:10]


def test_a_page_of_one_row_is_refused(api: PrefectAPI) -> None:
    """Pages overlap by a row, so a page holds at least two."""
    with pytest.raises(ValueError, match="at least 2 rows"):
        next(api.log_pages("00000000-0000-0000-0000-000000000000", page=1))


def test_a_line_stored_late_with_an_earlier_time_comes_in_the_next_read(api: PrefectAPI) -> None:
    """A reader's next read goes on from where the last one ended, yet a line stored after it
    with an earlier time (Prefect orders by time) comes in that read, once, before the newer
    ones; the lines read before do not come again."""
    start = datetime.now(UTC)
    on_time = [f"on time {i}" for i in range(450)]
    flow_run_id = flow_run_with_lines(api, on_time, start, tick=timedelta(milliseconds=1))
    reader = LogReader(api, flow_run_id, workers=1)
    first = [line.message for line in reader.read()]
    write_lines(api, flow_run_id, ["late"], start + timedelta(milliseconds=100), tick=timedelta(0))
    write_lines(api, flow_run_id, ["new"], start + timedelta(seconds=1), tick=timedelta(0))

    second = [line.message for line in reader.read()]

    assert on_time == first
    assert ["late", "new"] == second
    assert [] == reader.read()
