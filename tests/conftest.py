"""Session-wide real services and workspace builders.

- ``prefect_server``: one real `prefect server start` (SQLite) for the whole session, started
  the way dstack starts its local server, in a temporary dstack home.
- ``cli``: runs the real `dstack` console entry in a subprocess against that server.
- ``make_repo``: a declarative git repo builder: ``make_repo({".dstack/workflows.yaml": ...})``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["tests.docker_fixtures"]  # docker_engine, runtime_image, tiny_image


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's dstack or Prefect settings."""
    for key in list(os.environ):
        if key.startswith(("DSTACK_", "PREFECT_")):
            monkeypatch.delenv(key, raising=False)


@dataclass
class Server:
    url: str
    home: Path

    def env(self, home: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSTACK_", "PREFECT_"))}
        env.update(
            {
                "DSTACK_HOME": str(home or self.home),
                "PREFECT_API_URL": self.url,
                "PREFECT_HOME": str(self.home / "prefect"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
                "COLUMNS": "200",
            }
        )
        return env


def serve(home: Path) -> Iterator[Server]:
    """A real Prefect server in dstack home ``home``, started by dstack's own server module
    (whatever PREFECT_* this process has set), stopped when the generator closes."""
    from dstack_prefect import server as srv
    from dstack_prefect.settings import Settings

    settings = Settings.from_env({"home": home, "server_start_timeout": 180})
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("PREFECT_")}
    try:
        info = srv._start(settings)
    finally:
        os.environ.update(saved)
    yield Server(url=info.url, home=home)
    srv.stop(settings)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real Prefect server for the session."""
    yield from serve(tmp_path_factory.mktemp("dstack-home"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)


CLI = Callable[..., Result]


@pytest.fixture
def dstack_home(tmp_path: Path) -> Path:
    """This test's own dstack home (runs folder, store): tests share the server, nothing else."""
    home = tmp_path / "dstack-home"
    home.mkdir()
    return home


@pytest.fixture
def cli(prefect_server: Server, dstack_home: Path) -> CLI:
    """Run `dstack ARGS...` as a user would, in ``cwd``, against the session's server."""

    def run(*args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "dstack_prefect", *args],
            cwd=cwd,
            env=env or prefect_server.env(dstack_home),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))


def git_init(root: Path) -> None:
    """Make ``root`` a git repo with everything in it committed."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"],
        check=True,
    )


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Build a git repo from {path: text}; ``git=False`` leaves a plain folder."""

    def build(files: dict[str, str], *, git: bool = True, name: str = "repo") -> Path:
        root = tmp_path / name
        root.mkdir()
        write_tree(root, files)
        if git:
            git_init(root)
        return root

    return build


def supervisor_pid(run_dir: Path) -> int:
    """The pid of a run's supervisor, from the ``supervisor.pid`` in its run folder."""
    from dstack_prefect.server import read_pid_file

    written = read_pid_file(run_dir / "supervisor.pid")
    assert written is not None, f"no supervisor.pid in {run_dir}"
    return written[0]


NOBODY = 65534


def as_a_user(work: Callable[[], None]) -> int:
    """Run ``work`` where permission bits bind, and return 0 when it raised nothing, else 1.

    Not root: in this process. Root (CI), which permissions do not stop: in a forked child that
    has dropped to ``nobody``, which cannot import from root's site-packages, so ``work`` uses
    only what is imported (and opened) before it is called; it reports through files it writes.
    """
    if os.geteuid() != 0:
        work()
        return 0
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the parent reads the child's status
        code = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            work()
            code = 0
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            pass
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            msg = f"condition not met within {timeout} s"
            raise AssertionError(msg)
        time.sleep(interval)


class QuietHandler(BaseHTTPRequestHandler):
    """A test HTTP handler that logs nothing; ``reply`` sends a 200 with a body."""

    def reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A real HTTP server on 127.0.0.1 in a thread; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def run_through_the_api(
    api: Any,
    server: Server,
    home: Path,
    repo: Path,
    workflow: str,
    *,
    name: str,
    tags: tuple[str, ...] = ("dstack",),
) -> dict[str, Any]:
    """A flow run of the run flow created over REST as a deployment run is (``{"workflow": NAME}``
    parameters, the deployment's tags), then run to its end as a worker would
    (`python -m dstack_prefect.engine ID`, which exits 0 whatever state the run ends in)."""
    fr: dict[str, Any] = api.create_flow_run(
        api.ensure_flow("dstack-run"),
        name=name,
        parameters={"plan": {"workflow": workflow, "args": []}, "repo_root": str(repo)},
        tags=list(tags),
    )
    done = subprocess.run(
        [sys.executable, "-m", "dstack_prefect.engine", fr["id"]],
        env=server.env(home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return fr
