"""`dstack server status|stop` when PREFECT_API_URL names a server dstack does not manage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from dstack_prefect.server import free_port


def dstack(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DSTACK_", "PREFECT_"))}
    return subprocess.run(
        [sys.executable, "-m", "dstack_prefect", *args],
        env={**clean, "DSTACK_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_names_an_unreachable_prefect_api_url(tmp_path: Path) -> None:
    """With PREFECT_API_URL set to a server that does not answer, status says so (it said the
    next command would start a server, which it never does with PREFECT_API_URL set)."""
    url = f"http://127.0.0.1:{free_port()}/api"

    text = dstack(tmp_path, "server", "status", PREFECT_API_URL=url)
    machine = dstack(tmp_path, "server", "status", "--json", PREFECT_API_URL=url)

    assert 0 == text.returncode, text.stderr
    assert (
        f"The Prefect server at PREFECT_API_URL={url} is not answering; commands fail until it does "
        "(unset PREFECT_API_URL to use the local one)\n"
    ) == text.stdout
    assert {"up": False, "url": url, "managed": False} == {
        k: v for k, v in json.loads(machine.stdout).items() if k != "launcher"
    }


def test_stop_says_it_is_not_the_server_in_use_it_stops(tmp_path: Path) -> None:
    """`server stop` acts on the local server only; with PREFECT_API_URL set it says that the
    server in use is not one it stops (it printed a bare 'Stopped')."""
    url = f"http://127.0.0.1:{free_port()}/api"

    res = dstack(tmp_path, "server", "stop", PREFECT_API_URL=url)

    assert 0 == res.returncode, res.stderr
    assert (
        f"The local Prefect server was not running; PREFECT_API_URL={url}, the server in use, "
        "is not dstack's to stop\n"
    ) == res.stdout


class TestStopNeverKillsAnotherProcess:
    """`server stop` kills the server dstack started, never a process that now has its pid."""

    def _stranger(self) -> subprocess.Popen[bytes]:
        """A process of its own session (as the server is), holding a pid a state file names."""
        return subprocess.Popen(["sleep", "60"], start_new_session=True)

    def test_a_state_file_without_stamp(self, tmp_path: Path) -> None:
        """A server.json from before stamps (pid only) whose pid another program holds now: that
        program lives on, and stop says no server was running (it SIGTERMed the pid's whole
        process group: with pid 1, every process of the machine's session)."""
        stranger = self._stranger()
        try:
            (tmp_path / "server.json").write_text(
                json.dumps({"url": f"http://127.0.0.1:{free_port()}/api", "pid": stranger.pid})
            )

            res = dstack(tmp_path, "server", "stop")

            assert 0 == res.returncode, res.stderr
            assert "The local server was not running\n" == res.stdout
            assert stranger.poll() is None
            assert not (tmp_path / "server.json").exists()
        finally:
            stranger.kill()
            stranger.wait()

    def test_a_launcher_file_without_stamp(self, tmp_path: Path) -> None:
        """The same for launcher.json: its pid, now another program's, gets no SIGTERM."""
        stranger = self._stranger()
        try:
            (tmp_path / "launcher.json").write_text(json.dumps({"pid": stranger.pid}))

            res = dstack(tmp_path, "server", "stop")
            status = dstack(tmp_path, "server", "status", "--json")

            assert 0 == res.returncode, res.stderr
            assert stranger.poll() is None
            assert json.loads(status.stdout)["launcher"] is False
        finally:
            stranger.kill()
            stranger.wait()


def test_a_server_port_in_use_is_named_before_starting(tmp_path: Path) -> None:
    """DSTACK_SERVER_PORT naming a port another program listens on fails at once with the
    setting to change (it started Prefect, which failed after seconds advising its `--port`)."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]

        res = dstack(tmp_path, "server", "start", DSTACK_SERVER_PORT=str(port))

    assert 1 == res.returncode
    assert (
        f"error: port {port} (DSTACK_SERVER_PORT) is in use by another program\n"
        "hint: set DSTACK_SERVER_PORT to a free port, or unset it to have one picked\n"
    ) == res.stderr
