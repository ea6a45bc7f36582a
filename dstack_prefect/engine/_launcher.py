"""The warm launcher: a process beside the local server that has imported prefect and the run
flow once, and forks one run supervisor per `dstack run`, so no run pays the ~1 s import.

Protocol: a Unix socket at ``<home>/launcher.sock`` (mode 0600), one request per connection,
JSON both ways, the request ended by the client's shutdown(SHUT_WR):

    -> {"key": K, "flow_run_id": ID, "log": PATH, "env": {...}, "cwd": DIR}
    <- {"pid": N}            the supervisor runs, detached (its own session), logging to PATH
    <- {"error": "..."}      refused: the caller starts a fresh interpreter instead

The key covers what the launcher cannot change after its imports: the interpreter, this
package's code (file sizes and mtimes), the dstack home and every PREFECT_* variable (prefect
reads its settings at import). A request with another key is refused; a launcher whose code is
no longer the installed code also exits. The supervisor takes the caller's environment (PATH,
secrets, ...) and working directory, exactly as a fresh interpreter would.

The launcher lives as long as the local server it was started for (it checks the server's pid
every second); `dstack server stop` stops it; one launcher per home (a lock file).
This module imports prefect only in the launcher process (`serve`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import hashlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dstack_prefect.server import is_own_process, pid_alive, process_stamp, spawn_detached, write_pid_file
from dstack_prefect.settings import Settings

SOCKET_NAME = "launcher.sock"
STATE_NAME = "launcher.json"
LOCK_NAME = "launcher.lock"
LOG_NAME = "launcher.log"
MAX_SOCKET_PATH = 100
"""Bytes: Linux binds Unix socket paths up to 107."""
LOCK_WAIT = 10.0
"""Seconds a new launcher waits for the one it replaces to let go of the lock."""


def _code_stamp_now() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@functools.cache
def _code_stamp() -> str:
    return _code_stamp_now()


def launcher_key(home: Path, env: Mapping[str, str]) -> str:
    """What a launcher and its caller must agree on (see the module docstring)."""
    h = hashlib.sha256()
    h.update(f"{sys.executable}\n{_code_stamp()}\n{home.resolve()}\n".encode())
    for k in sorted(env):
        if k.startswith("PREFECT_"):
            h.update(f"{k}={env[k]}\n".encode())
    return h.hexdigest()


def launcher_pid(settings: Settings) -> int | None:
    """The pid of this home's launcher, when one is alive."""
    try:
        state = json.loads((settings.home / STATE_NAME).read_text())
        pid, stamp = int(state["pid"]), state.get("stamp")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return pid if is_own_process(pid, stamp, "dstack_prefect.engine._launcher") else None


# the caller's side (the CLI) ---------------------------------------------------------------


def hand_off(settings: Settings, flow_run_id: str, log_path: Path) -> tuple[int | None, str]:
    """Ask the warm launcher to supervise ``flow_run_id``: (its pid, "") or (None, why not):
    "absent" (no launcher), "stale" (its code is not the installed code; it exits), "refused"
    (another interpreter or PREFECT_* environment; it goes on serving its own callers)."""
    path = settings.home / SOCKET_NAME
    if not path.exists():
        return None, "absent"
    request = {
        "key": launcher_key(settings.home, os.environ),
        "flow_run_id": flow_run_id,
        "log": str(log_path),
        "env": dict(os.environ),
        "cwd": os.getcwd(),
    }
    data = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode())
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                data += chunk
        reply = json.loads(data)
    except (OSError, ValueError):
        return None, "absent"
    pid = reply.get("pid") if isinstance(reply, dict) else None
    if isinstance(pid, int):
        return pid, ""
    return None, "stale" if isinstance(reply, dict) and reply.get("error") == "stale" else "refused"


def start_launcher(
    settings: Settings,
    server_pid: int | None = None,
    *,
    replace: bool = False,
    env: Mapping[str, str] | None = None,
) -> None:
    """Start this home's launcher in the background, with ``env`` (default: this process's);
    never waits. A no-op when one runs, unless ``replace`` (the running one is stale and
    exiting: the new one waits for its lock)."""
    if not replace and (launcher_pid(settings) is not None or _lock_held(settings)):
        return  # one serves, or one is still importing (it takes the lock first)
    if len(os.fsencode(settings.home / SOCKET_NAME)) > MAX_SOCKET_PATH:
        return  # a Unix socket path this long cannot be bound: runs start fresh interpreters
    if server_pid is None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            server_pid = json.loads((settings.home / "server.json").read_text())["pid"]
    settings.home.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-P",  # not the caller's folder first on sys.path: a checkout there is not what runs
        "-m",
        "dstack_prefect.engine._launcher",
        str(settings.home),
        str(server_pid or 0),
    ]
    spawn_detached(argv, settings.home / LOG_NAME, dict(env) if env is not None else None)


def _lock_held(settings: Settings) -> bool:
    """True while a launcher process lives for this home (it holds the lock from its start)."""
    try:
        fd = os.open(settings.home / LOCK_NAME, os.O_WRONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_launcher(settings: Settings, timeout: float) -> bool:
    """Wait until this home's launcher serves (its socket answers); False after ``timeout``, or
    as soon as no launcher process lives (none was started, or it exited)."""
    start = time.monotonic()
    path = str(settings.home / SOCKET_NAME)
    while time.monotonic() < start + timeout:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, contextlib.suppress(OSError):
            sock.connect(path)
            sock.shutdown(socket.SHUT_WR)  # an empty request: the launcher ignores it
            return True
        if time.monotonic() > start + 2 and not _lock_held(settings):  # 2 s: time to take it
            return False
        time.sleep(0.1)
    return False


def stop_launcher(settings: Settings) -> bool:
    """SIGTERM this home's launcher (its running supervisors go on). False when none ran."""
    pid = launcher_pid(settings)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    return True


# the launcher process --------------------------------------------------------------------


_FIRST_SUBMIT_IMPORTS = (
    "prefect.utilities.visualization",  # graphviz
    "anyio._backends._asyncio",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "fsspec.implementations.chained",
    "netrc",
    "rich._emoji_codes",
)


def _warm_up() -> None:
    """Import what a run imports, before any thread exists (forking with threads is unsafe).
    The list after the engines: what a supervisor still imported on its first task submit
    (measured by diffing sys.modules around `supervise`), ~0.1 s per run otherwise."""
    import importlib  # noqa: PLC0415

    import prefect.artifacts  # noqa: PLC0415
    import prefect.filesystems  # noqa: PLC0415
    import prefect.flow_engine  # noqa: PLC0415
    import prefect.task_engine  # noqa: F401, PLC0415

    for name in _FIRST_SUBMIT_IMPORTS:
        with contextlib.suppress(ImportError):  # optional parts of other packages
            importlib.import_module(name)

    import dstack_prefect.engine._flow  # noqa: PLC0415
    import dstack_prefect.executors.docker  # noqa: F401, PLC0415


def _freeze_heap() -> None:
    """Move what the imports made out of the garbage collector's sight (``gc.freeze``).

    A supervisor's first full collection otherwise walks this whole heap (prefect and its
    imports), writing each object's GC header: every page it shares with the launcher is copied
    on write. That took ~0.2 s in each run, right as its first steps were due, holding the GIL
    (the run's other threads stood still). Frozen objects are never collected; they live as
    long as the process anyway.
    """
    gc.collect()
    gc.freeze()


class _Stop(Exception):
    pass


_LOCK_FD = -1
"""The launcher's lock on <home>/launcher.lock; supervisors close their copy."""


def serve(home: Path, server_pid: int) -> None:
    """The launcher's loop: fork a supervisor per request until the server or the socket goes."""
    global _LOCK_FD
    home.mkdir(parents=True, exist_ok=True)
    _LOCK_FD = os.open(home / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)  # held for life
    deadline = time.monotonic() + LOCK_WAIT
    while True:  # a stale launcher replying "stale" exits at once: wait for its lock a little
        try:
            fcntl.flock(_LOCK_FD, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                print("another launcher serves this home", flush=True)
                return
            time.sleep(0.1)
    _warm_up()
    if threading.active_count() > 1:
        print("threads started during the imports: cannot fork safely; not serving", flush=True)
        return
    _freeze_heap()
    key = launcher_key(home, os.environ)
    stamp = _code_stamp()
    path = home / SOCKET_NAME
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        server.bind(str(path))
    finally:
        os.umask(old_umask)
    inode = path.stat().st_ino
    state = home / STATE_NAME
    state.write_text(
        json.dumps({"pid": os.getpid(), "socket": str(path), "stamp": process_stamp(os.getpid())})
    )
    server.listen(16)  # after the state file: whoever could connect also finds the pid

    def on_term(signum: int, frame: Any) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, on_term)
    print(f"launcher {os.getpid()} serving {path}", flush=True)
    try:
        while True:
            _reap()
            if server_pid and not pid_alive(server_pid):
                break
            try:
                if path.stat().st_ino != inode:
                    break
            except OSError:
                break
            ready, _, _ = select.select([server], [], [], 1.0)
            if not ready:
                continue
            conn, _ = server.accept()
            if not _handle(server, conn, key, stamp):
                print("this package's code changed: exiting", flush=True)
                break
    except _Stop:
        pass
    finally:
        server.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:
                path.unlink()
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(state.read_text())["pid"] == os.getpid():
                state.unlink()


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _handle(server: socket.socket, conn: socket.socket, key: str, stamp: str) -> bool:
    """Serve one request; False when this launcher is stale (its code changed) and must exit."""
    try:
        conn.settimeout(5)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        request = json.loads(data)
    except (OSError, ValueError):
        conn.close()
        return True
    if request.get("key") != key:
        stale = _code_stamp_now() != stamp
        why = "this launcher's code changed" if stale else "another interpreter, code or PREFECT_* settings"
        print(f"refused a caller: {why}", flush=True)
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"error": "stale" if stale else "refused"}).encode())
        conn.close()
        return not stale
    pid = os.fork()
    if pid == 0:
        server.close()
        os.close(_LOCK_FD)  # a supervisor outliving the launcher must not keep its lock
        _supervisor(conn, request)  # never returns
    conn.close()
    return True


def _supervisor(conn: socket.socket, request: dict[str, Any]) -> None:
    """The forked run supervisor: its own session, the caller's environment; never returns."""
    code = 0
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log_path = Path(request["log"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        write_pid_file(log_path.parent / "supervisor.pid", os.getpid())
        conn.sendall(json.dumps({"pid": os.getpid()}).encode())
        conn.close()
        print(f"supervisor {os.getpid()} forked by the warm launcher {os.getppid()}", flush=True)
        from dstack_prefect.engine._launch import supervise  # noqa: PLC0415

        supervise(request["flow_run_id"])
    except BaseException:  # noqa: BLE001 - a forked child must never unwind into the launcher
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
