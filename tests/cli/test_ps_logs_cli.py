"""`dstack ps` and `dstack logs` as a user reads them: a run name not quite right, the end of a
followed run, lines older than a day, a `-s` that leaves nothing, the shape of `ps --json`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from tests.conftest import CLI, Server

pytestmark = pytest.mark.service("prefect")

WORKFLOWS = """
workflows:
  - name: hello
    provider: bash
    commands:
      - echo hi
  - name: boom
    provider: bash
    commands:
      - echo about to fail
      - exit 3
"""


@pytest.fixture
def repo(make_repo: Any) -> Path:
    return Path(make_repo({".dstack/workflows.yaml": WORKFLOWS}))


class TestUnknownRun:
    """A run name that names no run is answered with the names it may have meant."""

    def test_the_start_of_a_name(self, cli: CLI, repo: Path) -> None:
        """`dstack logs tidy-heron` (the name without its number) names the run it starts."""
        assert 0 == cli("run", "hello", "--name", "tidy-heron-1", cwd=repo).code

        res = cli("logs", "tidy-heron", cwd=repo)

        assert 1 == res.code
        assert (
            "error: there is no run named 'tidy-heron'\n"
            "hint: did you mean 'tidy-heron-1'? `dstack ps -a` lists runs\n"
        ) == res.err

    def test_a_typo(self, cli: CLI, repo: Path) -> None:
        """A misspelt name gets the closest run name."""
        assert 0 == cli("run", "hello", "--name", "lanky-walrus-1", cwd=repo).code

        res = cli("ps", "lanky-walros-1", cwd=repo)

        assert 1 == res.code
        assert "hint: did you mean 'lanky-walrus-1'? `dstack ps -a` lists runs\n" in res.err


class TestFollow:
    """`dstack logs RUN -a` (how `run -d` says to follow a run) ends as an attached run does:
    the run's status, and exit code 1 unless it is done."""

    def test_a_failed_run(self, cli: CLI, repo: Path) -> None:
        """The lines on stdout; the error note, then the status on stderr; exit 1."""
        cli("run", "boom", "--name", "gloomy-yak-1", cwd=repo)

        res = cli("logs", "gloomy-yak-1", "-a", cwd=repo)

        assert 1 == res.code
        assert "about to fail\n" == res.out
        assert res.err.endswith("dstack: step 'boom' failed: exit code 3\nFailed\n"), res.err

    def test_a_done_run(self, cli: CLI, repo: Path) -> None:
        """A run that ended done: its status, exit 0."""
        assert 0 == cli("run", "hello", "--name", "sunny-yak-1", cwd=repo).code

        res = cli("logs", "sunny-yak-1", "-a", cwd=repo)

        assert 0 == res.code
        assert "hi\n" == res.out
        assert res.err.endswith("Done\n"), res.err


def test_logs_shows_lines_older_than_a_day(cli: CLI, repo: Path, prefect_server: Server) -> None:
    """Without -s every line of the run shows: a run of three days ago printed nothing (old
    dstack's default, -s 1d, read a cloud log store)."""
    assert 0 == cli("run", "hello", "--name", "dusty-moth-1", cwd=repo).code
    with PrefectAPI(prefect_server.url) as api:
        run_id = api.flow_run_by_name("dusty-moth-1")["id"]
        when = datetime.now(UTC) - timedelta(days=3)
        record = {"name": "prefect.task_runs.dstack.out.hello", "level": 20, "message": "three days ago"}
        api.write_logs([{**record, "timestamp": when.isoformat(), "flow_run_id": run_id}])

    res = cli("logs", "dusty-moth-1", cwd=repo)
    recent = cli("logs", "dusty-moth-1", "-s", "1d", cwd=repo)

    assert "three days ago\nhi\n" == res.out
    assert "hi\n" == recent.out


def test_a_since_that_leaves_no_line_says_so(
    cli: CLI, repo: Path, prefect_server: Server, dstack_home: Path
) -> None:
    """`-s` after the run's last line prints no line, and says so on stderr (it printed
    nothing at all)."""
    assert 0 == cli("run", "hello", "--name", "empty-moth-1", cwd=repo).code

    env = {**prefect_server.env(dstack_home), "TZ": "UTC"}
    res = cli("logs", "empty-moth-1", "-s", "2100-01-01T00:00Z", cwd=repo, env=env)

    assert 0 == res.code
    assert "" == res.out
    assert (
        "No log lines of empty-moth-1 since 2100-01-01 00:00 UTC; without -s, all of them show\n" == res.err
    )


def test_ps_json_has_the_documented_keys(cli: CLI, repo: Path) -> None:
    """Each run of `ps --json` is an object with the keys `ps --help` documents."""
    assert 0 == cli("run", "hello", "--name", "keyed-moth-1", cwd=repo).code

    rows = cli("ps", "keyed-moth-1", "--json", cwd=repo).json()
    documented = cli("ps", "--help", cwd=repo).out

    keys = ["name", "workflow", "submitted_at", "status", "tag", "error", "flow_run_id"]
    assert [keys] == [list(row) for row in rows]
    assert "done" == rows[0]["status"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$", rows[0]["submitted_at"])
    assert all(key in " ".join(documented.split()) for key in keys)
