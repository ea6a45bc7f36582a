"""A pid in one of dstack's files names a process only while that process lives: after a reboot
(or once pids wrap) the same number can belong to anyone, and dstack must neither kill that
process nor take it for a run still going."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI, run_row
from dstack_prefect.engine._launcher import stop_launcher
from dstack_prefect.server import is_process, process_stamp, read_pid_file, stop, write_pid_file
from dstack_prefect.settings import Settings
from tests.conftest import CLI

#: What the stamp of a process from an earlier boot looks like: another boot id.
EARLIER_BOOT = "00000000-0000-0000-0000-000000000000:12345"


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is none of dstack's: the one that got the pid after a reboot."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_pid_file_names_its_process_and_no_other(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    """The stamp written with a pid tells the same process from a later one with its number."""
    write_pid_file(tmp_path / "x.pid", stranger.pid)

    written = read_pid_file(tmp_path / "x.pid")

    assert written == (stranger.pid, process_stamp(stranger.pid))
    assert is_process(*written)
    assert not is_process(stranger.pid, EARLIER_BOOT)


def test_a_bare_pid_from_before_stamps_still_reads(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    (tmp_path / "x.pid").write_text(str(stranger.pid))

    assert read_pid_file(tmp_path / "x.pid") == (stranger.pid, None)
    assert read_pid_file(tmp_path / "missing.pid") is None


def test_server_stop_after_a_reboot_kills_nobody(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    """server.json and launcher.json left by the last boot name pids someone else has now:
    `dstack server stop` forgets them and leaves that process alone."""
    settings = Settings(home=tmp_path)
    state = {"url": "http://127.0.0.1:9/api", "pid": stranger.pid, "port": 9, "stamp": EARLIER_BOOT}
    (tmp_path / "server.json").write_text(json.dumps(state))
    (tmp_path / "launcher.json").write_text(json.dumps({"pid": stranger.pid, "stamp": EARLIER_BOOT}))

    assert stop_launcher(settings) is False
    assert stop(settings) is False
    assert stranger.poll() is None
    assert not (tmp_path / "server.json").exists()


@pytest.mark.service("prefect")
def test_a_run_whose_supervisor_pid_went_to_another_process_is_crashed(
    cli: CLI, prefect_server: Any, dstack_home: Path, tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """A run left Running by the last boot, its supervisor's pid now someone else's: the next
    `dstack ps` ends it Failed, as when the pid is free."""
    with PrefectAPI(prefect_server.url) as api:
        fr = api.create_flow_run(
            api.ensure_flow("dstack-run"), name="before-reboot-1", parameters={}, tags=["dstack"]
        )
        api.set_flow_run_state(fr["id"], "RUNNING", name="Running")
        run_dir = dstack_home / "runs" / "before-reboot-1"
        run_dir.mkdir(parents=True)
        (run_dir / "supervisor.pid").write_text(f"{stranger.pid} {EARLIER_BOOT}")

        cli("ps", cwd=tmp_path)

        assert run_row(api.flow_run(fr["id"]) or {}).status == "failed"
    assert stranger.poll() is None
