"""The local Prefect server: started on demand, reused by later commands, stopped on request.

With PREFECT_API_URL set, that server is used (a team server, Prefect Cloud) and nothing is
started. Otherwise `ensure_server()` starts `prefect server start` on 127.0.0.1 in the
background with its home and SQLite database under the dstack home, waits until
/api/health answers, and records the URL in <home>/server.json for later commands.
Never ephemeral mode: it costs seconds per process and loses task runs at exit.

This module must not import prefect: it sets the environment prefect reads at import.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dstack_prefect.errors import ServerError
from dstack_prefect.settings import Settings, get_settings

#: Settings the local server runs with: no telemetry, log streaming on for `dstack logs -a`.
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
    "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
    "PREFECT_SERVER_API_KEEPALIVE_TIMEOUT": "30",
}


@dataclass
class ServerInfo:
    url: str
    """The API URL, e.g. http://127.0.0.1:4200/api"""
    pid: int | None
    managed: bool
    """True for the local server dstack started; False for PREFECT_API_URL."""
    stamp: str | None = None
    """``process_stamp(pid)`` when it started: a reboot's reused pid is not taken for it."""

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/api")


def _state_file(settings: Settings) -> Path:
    return settings.home / "server.json"


def healthy(url: str, timeout: float = 2.0) -> bool:
    """True when the server at ``url`` answers /health."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError, ValueError):
        return False


#: Background processes started here and not yet seen to end: held so a long-lived caller reaps
#: them when they exit, and Python does not warn that they outlive their Popen object.
_DETACHED: list[subprocess.Popen[bytes]] = []


def spawn_detached(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, stdin closed, output appended to ``log_path``:
    it outlives this process and a Ctrl-C in this terminal."""
    _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    _DETACHED.append(proc)
    return proc


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (killed, not yet reaped by its new parent) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def process_stamp(pid: int) -> str | None:
    """What names process ``pid`` for good: this boot's id and the process's start time. A pid
    alone can name another process after a reboot (or once pids wrap), which a stop would then
    kill; None where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        with open(f"/proc/{pid}/stat") as fh:
            ticks = fh.read().rsplit(")", 1)[-1].split()[19]  # field 22, starttime
    except (OSError, IndexError):
        return None
    return f"{boot}:{ticks}"


def is_process(pid: int, stamp: str | None) -> bool:
    """``pid`` is alive and, when ``stamp`` is given, still the process it was taken from."""
    return pid_alive(pid) and (stamp is None or process_stamp(pid) in (stamp, None))


def is_own_process(pid: int, stamp: str | None, marker: str) -> bool:
    """``pid`` is still the process dstack started in a session of its own (the local server,
    the warm launcher) and recorded with ``stamp``: alive, leading its process group, with that
    stamp. A record without a stamp (an older dstack, a hand-edited file) counts only when the
    process's command line holds ``marker``: a pid reused by another program, which a stop would
    kill, group and all, is never taken for it."""
    if pid <= 1 or not is_process(pid, stamp):
        return False
    try:
        if os.getpgid(pid) != pid:
            return False
    except OSError:
        return False
    if stamp is not None and process_stamp(pid) == stamp:
        return True
    return marker in _command_line(pid)


def _command_line(pid: int) -> str:
    """Process ``pid``'s arguments joined by spaces; "" when they cannot be read."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        pass
    try:  # no /proc (macOS)
        argv = ["ps", "-o", "args=", "-p", str(pid)]
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return out.stdout.strip()


SERVER_MARKER = "prefect server start"
"""In the local server's command line (``_start``)."""


def write_pid_file(path: Path, pid: int) -> None:
    """Write "PID STAMP" to ``path`` (see ``process_stamp``); ``read_pid_file`` reads it."""
    path.write_text(f"{pid} {process_stamp(pid) or ''}".strip())


def read_pid_file(path: Path) -> tuple[int, str | None] | None:
    """The pid and stamp ``write_pid_file`` wrote (a bare pid from before stamps: no stamp);
    None when the file is missing or not one."""
    try:
        pid, *rest = path.read_text().split()
        return int(pid), (rest[0] if rest else None)
    except (OSError, ValueError):
        return None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` on 127.0.0.1 now (as uvicorn binds: with
    SO_REUSEADDR, so the closed connections of a killed server do not hold the port)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_file(settings: Settings) -> Path:
    return settings.home / "server.port"


def _last_port(settings: Settings) -> int | None:
    """The port the last local server of this home listened on (server.port outlives a stop)."""
    try:
        port = int(_port_file(settings).read_text())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _read_state(settings: Settings) -> ServerInfo | None:
    try:
        data = json.loads(_state_file(settings).read_text())
    except (OSError, ValueError):
        return None
    return ServerInfo(url=data["url"], pid=data.get("pid"), managed=True, stamp=data.get("stamp"))


def client_env(url: str, settings: Settings) -> dict[str, str]:
    """This process's environment pointed at ``url``, as commands and runs see it."""
    env = dict(os.environ)
    env["PREFECT_API_URL"] = url
    env.setdefault("PREFECT_HOME", str(settings.prefect_home))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.5")
    return env


def _configure_client_env(url: str, settings: Settings) -> None:
    """Point this process (and its children) at ``url`` before prefect is imported."""
    os.environ.update(client_env(url, settings))


def external_url() -> str | None:
    """PREFECT_API_URL when it names a server dstack does not manage (a team server, Prefect
    Cloud), else None (unset, or set by dstack to its own local server)."""
    external = os.environ.get("PREFECT_API_URL")
    return external if external and not os.environ.get("DSTACK_MANAGED_SERVER") else None


def status(settings: Settings | None = None) -> ServerInfo | None:
    """The server commands would use now, or None when no server is up."""
    settings = settings or get_settings()
    external = external_url()
    if external:
        return ServerInfo(url=external, pid=None, managed=False) if healthy(external) else None
    info = _read_state(settings)
    if info and (info.pid is None or is_process(info.pid, info.stamp)) and healthy(info.url):
        return info
    return None


def ensure_server(settings: Settings | None = None) -> ServerInfo:
    """Return a healthy server, starting the local one when needed.

    Raises:
        ServerError: PREFECT_API_URL is set but unreachable, or the local server did not start.
    """
    settings = settings or get_settings()
    external = external_url()
    if external:
        if not healthy(external, timeout=5.0):
            msg = f"the Prefect server at PREFECT_API_URL={external} is not reachable"
            raise ServerError(msg, hint="start that server, or unset PREFECT_API_URL to use the local one")
        _configure_client_env(external, settings)
        return ServerInfo(url=external, pid=None, managed=False)
    settings.home.mkdir(parents=True, exist_ok=True)
    info = status(settings)
    if info is None:
        with _lock(settings):
            info = status(settings) or _start(settings)
    _configure_client_env(info.url, settings)
    os.environ["DSTACK_MANAGED_SERVER"] = "1"
    return info


@contextlib.contextmanager
def _lock(settings: Settings):  # type: ignore[no-untyped-def]
    settings.home.mkdir(parents=True, exist_ok=True)
    with open(settings.home / "server.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _start(settings: Settings) -> ServerInfo:
    # The last server's port when it is free: runs whose flow process outlived that server
    # (killed, or `server stop`) reach the new one at the address they were given, and the UI's
    # address stays the same.
    last = _last_port(settings)
    if settings.server_port and not port_is_free(settings.server_port):
        msg = f"port {settings.server_port} (DSTACK_SERVER_PORT) is in use by another program"
        raise ServerError(msg, hint="set DSTACK_SERVER_PORT to a free port, or unset it to have one picked")
    port = settings.server_port or (last if last and port_is_free(last) else free_port())
    url = f"http://127.0.0.1:{port}/api"
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(SERVER_ENV)
    env["PREFECT_HOME"] = str(settings.prefect_home)
    log_path = settings.home / "server.log"
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = spawn_detached(cmd, log_path, env)
    from dstack_prefect.engine._launcher import start_launcher  # noqa: PLC0415 - it imports this module

    # The warm launcher imports prefect while the server boots: the first run finds it ready.
    start_launcher(settings, proc.pid, env=client_env(url, settings))
    deadline = time.monotonic() + settings.server_start_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").splitlines()[-5:]
            msg = f"the local Prefect server exited with code {proc.returncode}: {' / '.join(tail)}"
            raise ServerError(msg, hint=f"see {log_path}")
        if healthy(url, timeout=1.0):
            stamp = process_stamp(proc.pid)
            state = {"url": url, "pid": proc.pid, "port": port, "stamp": stamp}
            _state_file(settings).write_text(json.dumps(state))
            _port_file(settings).write_text(f"{port}\n")
            return ServerInfo(url=url, pid=proc.pid, managed=True, stamp=stamp)
        time.sleep(0.2)
    _kill_group(proc.pid)
    msg = f"the local Prefect server did not become healthy within {settings.server_start_timeout:.0f} s"
    raise ServerError(msg, hint=f"see {log_path}; raise DSTACK_SERVER_START_TIMEOUT on a slow machine")


def _kill_group(pid: int, grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def stop(settings: Settings | None = None) -> bool:
    """Stop the local server dstack started. False when none was running."""
    from dstack_prefect.engine._launcher import stop_launcher  # noqa: PLC0415 - it imports this module

    settings = settings or get_settings()
    stop_launcher(settings)
    info = _read_state(settings)
    if info is None or info.pid is None or not is_own_process(info.pid, info.stamp, SERVER_MARKER):
        _state_file(settings).unlink(missing_ok=True)  # never kill who has its pid now (a reboot)
        return False
    _kill_group(info.pid)
    _state_file(settings).unlink(missing_ok=True)
    return True
