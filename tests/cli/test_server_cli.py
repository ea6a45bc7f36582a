"""`dstack server status|stop` when PREFECT_API_URL names a server dstack does not manage."""

from __future__ import annotations

import json
import os
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
