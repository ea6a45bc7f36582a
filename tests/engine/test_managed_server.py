"""The embedded default: no PREFECT_API_URL, so dstack starts its own Prefect server and the
warm launcher beside it, reuses both, and stops both.

Each module-level server here is a real `prefect server start` under a temp DSTACK_HOME,
driven only through the `dstack` CLI as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI, run_row
from tests.conftest import Result, supervisor_pid, wait_until
from tests.engine.test_local_runs import marker_processes

pytestmark = pytest.mark.service("prefect")

WORKFLOWS = """
workflows:
  - name: env-check
    provider: bash
    env:
      - TOKEN=${{ secrets.TOKEN }}
    commands:
      - test "$TOKEN" = "s3cret" && echo "token-ok"
      - echo "var=$CALLER_VAR"
      - caller-tool
  - name: sleeper
    provider: bash
    commands:
      - sleep 300
"""


@dataclass
class Embedded:
    home: Path
    repo: Path
    bin: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSTACK_", "PREFECT_"))}
        env.update({"DSTACK_HOME": str(self.home), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def dstack(self, *args: str, **extra: str) -> Result:
        proc = subprocess.run(
            [
                sys.executable,
                "-P",
                "-m",
                "dstack_prefect",
                *args,
            ],  # as the `dstack` script: cwd not on sys.path
            cwd=self.repo,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=240,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def api(self) -> PrefectAPI:
        return PrefectAPI(json.loads((self.home / "server.json").read_text())["url"])

    def supervisor_log(self, run: str) -> str:
        return (self.home / "runs" / run / "supervisor.log").read_text()


def home_processes(home: Path) -> list[int]:
    """Pids of processes started for ``home`` (the server, the launcher, supervisors)."""
    return marker_processes(str(home))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    root = tmp_path_factory.mktemp("embedded")
    repo = root / "repo"
    (repo / ".dstack").mkdir(parents=True)
    (repo / ".dstack" / "workflows.yaml").write_text(WORKFLOWS)
    # A folder named like the package in the caller's folder (this repo's own checkout, in the
    # README's quick start): the server, launcher and supervisors must import the installed one.
    (repo / "dstack_prefect").mkdir()
    (repo / "dstack_prefect" / "__init__.py").write_text(
        'raise ImportError("imported the folder, not the package")\n'
    )
    tools = root / "bin"
    tools.mkdir()
    (tools / "caller-tool").write_text("#!/bin/sh\necho caller-tool-ran\n")
    (tools / "caller-tool").chmod(0o755)
    emb = Embedded(home=root / "home", repo=repo, bin=tools)
    started = emb.dstack("server", "start")
    assert started.code == 0, started.text
    yield emb
    emb.dstack("server", "stop")


def run_name(res: Result) -> str:
    line = next(ln for ln in res.out.splitlines() if ln.split() and ln.split()[0].count("-") == 2)
    return line.split()[0]


def test_runs_get_the_callers_environment_through_the_warm_launcher(embedded: Embedded) -> None:
    """A run forked by the warm launcher sees the caller's PATH, variables and secrets."""
    res = embedded.dstack(
        "run", "env-check", "--rerun", CALLER_VAR="from-the-shell", DSTACK_SECRET_TOKEN="s3cret"
    )

    assert res.code == 0, res.text
    assert "token-ok" in res.out
    assert "var=from-the-shell" in res.out
    assert "caller-tool-ran" in res.out
    assert "s3cret" not in res.text
    assert "forked by the warm launcher" in embedded.supervisor_log(run_name(res))


def test_another_prefect_setting_gets_a_fresh_interpreter(embedded: Embedded) -> None:
    """A caller with other PREFECT_* settings is not served by the launcher (prefect read its
    settings at import); its run still works, and the launcher goes on serving the others."""
    other = embedded.dstack(
        "run", "env-check", "--rerun", DSTACK_SECRET_TOKEN="s3cret", PREFECT_LOGGING_LEVEL="DEBUG"
    )
    again = embedded.dstack("run", "env-check", "--rerun", DSTACK_SECRET_TOKEN="s3cret")

    assert other.code == 0, other.text
    assert "token-ok" in other.out
    assert "forked by the warm launcher" not in embedded.supervisor_log(run_name(other))
    assert again.code == 0, again.text
    assert "forked by the warm launcher" in embedded.supervisor_log(run_name(again))


def test_killing_a_forked_supervisor_crashes_the_run_without_orphans(embedded: Embedded) -> None:
    """SIGKILL of a launcher-forked supervisor ends the run Crashed; its step dies with it."""
    res = embedded.dstack("run", "sleeper", "-d")
    name = run_name(res)
    wait_until(lambda: marker_processes(f"RUN_NAME={name}"), 60)
    assert "forked by the warm launcher" in embedded.supervisor_log(name)
    pid = supervisor_pid(embedded.home / "runs" / name)

    os.kill(pid, signal.SIGKILL)

    with embedded.api() as api:

        def crashed() -> Any:
            fr = api.flow_run_by_name(name)
            return fr if run_row(fr).status == "failed" else None

        fr = wait_until(crashed, 60)
    assert fr["state"]["type"] == "CRASHED"
    # the reaper kills the step's group (TERM, KILL after 5 s) before it marks the run
    wait_until(lambda: marker_processes(f"DSTACK_FLOW_RUN_ID={fr['id']}") == [], 30)


def test_server_stop_stops_the_server_and_the_launcher(tmp_path: Path) -> None:
    """`server start` brings up the server and the launcher (a second start says it was running);
    `server stop` leaves no process."""
    emb = Embedded(home=tmp_path / "home", repo=tmp_path, bin=tmp_path)

    started = emb.dstack("server", "start")
    again = emb.dstack("server", "start")
    status = json.loads(emb.dstack("server", "status", "--json").out)
    up = home_processes(emb.home)
    stopped = emb.dstack("server", "stop")

    assert started.code == 0, started.text
    assert started.out.startswith(f"Started the local Prefect server: {status['url']}  UI: http://127.0.0.1:")
    assert again.out.startswith(f"The local Prefect server was running already: {status['url']}  UI: ")
    assert status == {"up": True, "url": status["url"], "managed": True, "launcher": True}
    assert len(up) >= 2  # the server and the launcher
    assert stopped.code == 0, stopped.text
    wait_until(lambda: home_processes(emb.home) == [], 20)
    assert json.loads(emb.dstack("server", "status", "--json").out)["up"] is False


def waiter_home(tmp_path: Path) -> tuple[Embedded, Path]:
    """A home of its own (its server gets killed) and a repo whose `waiter` step runs until
    the returned file exists, then prints "finished"."""
    repo = tmp_path / "repo"
    (repo / ".dstack").mkdir(parents=True)
    go = tmp_path / "go"
    (repo / ".dstack" / "workflows.yaml").write_text(
        "workflows:\n  - name: waiter\n    provider: bash\n    commands:\n"
        f"      - while [ ! -e {go} ]; do sleep 0.1; done\n      - echo finished\n"
    )
    return Embedded(home=tmp_path / "home", repo=repo, bin=tmp_path), go


def test_a_run_outlives_its_server_being_killed_and_restarted(tmp_path: Path) -> None:
    """kill -9 of the local server mid-run: the next command starts it again at the same
    address, so the running flow reaches it and the run still ends Done."""
    from dstack_prefect.server import pid_alive

    emb, go = waiter_home(tmp_path)
    try:
        name = run_name(emb.dstack("run", "waiter", "-d"))
        before = json.loads((emb.home / "server.json").read_text())
        with emb.api() as api:
            wait_until(lambda: run_row(api.flow_run_by_name(name)).status == "running", 60)
        os.kill(before["pid"], signal.SIGKILL)
        wait_until(lambda: not pid_alive(before["pid"]), 20)

        listed = emb.dstack("ps")
        after = json.loads((emb.home / "server.json").read_text())
        go.touch()
        with emb.api() as api:
            row = wait_until(
                lambda: (r := run_row(api.flow_run_by_name(name))).status not in ("running", "pending") and r,
                90,
            )

        assert listed.code == 0, listed.text
        assert after["pid"] != before["pid"] and after["url"] == before["url"]
        assert row.status == "done", row
        assert "finished" in emb.dstack("logs", name).out
    finally:
        emb.dstack("server", "stop")


def test_server_stop_names_the_runs_that_go_on_without_it(tmp_path: Path) -> None:
    """`server stop` under a detached run stops the server, names the run that goes on, and
    after `server start` that run ends Done with its lines."""
    emb, go = waiter_home(tmp_path)
    try:
        name = run_name(emb.dstack("run", "waiter", "-d"))
        with emb.api() as api:
            wait_until(lambda: run_row(api.flow_run_by_name(name)).status == "running", 60)

        stopped = emb.dstack("server", "stop")
        restarted = emb.dstack("server", "start")
        go.touch()
        with emb.api() as api:
            row = wait_until(lambda: (r := run_row(api.flow_run_by_name(name))).status != "running" and r, 90)

        assert stopped.code == 0, stopped.text
        assert stopped.out.strip() == "Stopped"
        assert f"warning: 1 unfinished run(s) go on without it: {name};" in " ".join(stopped.err.split())
        assert restarted.code == 0, restarted.text
        assert row.status == "done", row
        assert "finished" in emb.dstack("logs", name).out
    finally:
        emb.dstack("server", "stop")


def test_an_attached_run_starts_its_dead_server_again_and_goes_on(tmp_path: Path) -> None:
    """kill -9 of the local server under an attached `dstack run`: the CLI starts it again at
    the same address, says so, and follows the run to its end."""
    from dstack_prefect.server import pid_alive

    emb, go = waiter_home(tmp_path)
    try:
        assert emb.dstack("server", "start").code == 0
        before = json.loads((emb.home / "server.json").read_text())
        attached = subprocess.Popen(
            [sys.executable, "-P", "-m", "dstack_prefect", "run", "waiter"],
            cwd=emb.repo,
            env=emb.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with emb.api() as api:

            def running() -> bool:
                runs = api.call("POST", "/flow_runs/filter", {"limit": 1}) or []
                return bool(runs) and runs[0]["state"]["type"] == "RUNNING"

            wait_until(running, 60)
        os.kill(before["pid"], signal.SIGKILL)

        def restarted() -> bool:
            try:
                state = json.loads((emb.home / "server.json").read_text())
            except (OSError, ValueError):  # being written
                return False
            return state["pid"] != before["pid"] and pid_alive(state["pid"])

        wait_until(restarted, 90)
        go.touch()
        out, err = attached.communicate(timeout=120)

        assert attached.returncode == 0, out + err
        assert "the local Prefect server was down: started it again" in " ".join(err.split())
        assert out.rstrip().endswith("Done"), out
        assert json.loads((emb.home / "server.json").read_text())["url"] == before["url"]
    finally:
        emb.dstack("server", "stop")
