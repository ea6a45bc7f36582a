"""Local runs end to end: the real `dstack` CLI, a real Prefect server, bash steps."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI, request_stop, run_row
from dstack_prefect.server import free_port
from tests.conftest import CLI, Server, run_through_the_api, supervisor_pid, wait_until

pytestmark = pytest.mark.service("prefect")

DIAMOND = """
workflows:
  - name: a
    provider: bash
    commands:
      - echo "a-out"
  - name: b
    provider: bash
    deps: [a]
    commands:
      - echo "start $(date +%s.%N)"
      - sleep 1.5
      - echo "end $(date +%s.%N)"
  - name: c
    provider: bash
    deps: [a]
    commands:
      - echo "start $(date +%s.%N)"
      - sleep 1.5
      - echo "end $(date +%s.%N)"
  - name: d
    provider: bash
    deps: [b, c]
    commands:
      - echo "d-out"
  - name: broken
    provider: bash
    deps: [a]
    commands:
      - echo "about to fail"
      - exit 3
  - name: after-broken
    provider: bash
    deps: [broken]
    commands:
      - echo "must never print"
  - name: sleeper
    provider: bash
    commands:
      - trap 'echo "got TERM"; exit 143' TERM
      - echo "sleeping"
      - sleep 300 & wait # MARKER
"""


@pytest.fixture
def api(prefect_server: Server) -> Any:
    with PrefectAPI(prefect_server.url) as client:
        yield client


@pytest.fixture
def repo(make_repo: Any) -> Path:
    return make_repo({".dstack/workflows.yaml": DIAMOND, "data.txt": "hello\n"})


def submitted_name(out: str) -> str:
    m = re.search(r"Run (\S+) submitted", out)
    assert m, out
    return m.group(1)


def wait_finished(api: PrefectAPI, name: str, timeout: float = 60) -> Any:
    def finished() -> Any:
        row = run_row(api.flow_run_by_name(name))
        return row if row.status in ("done", "failed", "stopped", "aborted") else None

    return wait_until(finished, timeout)


def one_step_repo(make_repo: Any, name: str, command: str, resource: str) -> Path:
    """A repo with one bash workflow ``name`` running ``command`` with one ``resources`` entry."""
    yaml = f"workflows:\n  - name: {name}\n    provider: bash\n    commands: [{command}]\n"
    return Path(make_repo({".dstack/workflows.yaml": yaml + f"    resources:\n      {resource}\n"}))


def attached_run(repo: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`dstack run ARGS...`, attached, its stdout and stderr readable line by line."""
    return subprocess.Popen(
        [sys.executable, "-m", "dstack_prefect", "run", *args],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def marker_processes(marker: str) -> list[int]:
    """Pids whose command line or environment carries ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd or marker.encode() in env:
            found.append(int(pid))
    return found


class TestAttachedRun:
    def test_diamond_runs_in_order_and_branches_overlap(self, cli: CLI, repo: Path) -> None:
        """b and c both wait for a, run at the same time, and d runs after both."""
        res = cli("run", "d", cwd=repo)

        assert res.code == 0, res.text
        lines = res.out.splitlines()
        spans = {}
        for step in ("b", "c"):
            start = float(next(ln for ln in lines if ln.startswith(f"{step} | start")).split()[-1])
            end = float(next(ln for ln in lines if ln.startswith(f"{step} | end")).split()[-1])
            spans[step] = (start, end)
        assert spans["b"][0] < spans["c"][1] and spans["c"][0] < spans["b"][1]
        order = [ln.split(" |")[0] for ln in lines if " | " in ln]
        assert order.index("a") < order.index("b") and order.index("d") > order.index("c")
        assert "Done" in res.out

    def test_failure_stops_dependents_and_names_the_exit_code(
        self, cli: CLI, repo: Path, api: PrefectAPI
    ) -> None:
        """A step exiting 3 fails the run with the step and code; its dependent never runs."""
        res = cli("run", "after-broken", cwd=repo)

        assert res.code == 1
        assert "about to fail" in res.out
        assert "must never print" not in res.out
        assert "step 'broken' failed: exit code 3" in res.out
        assert res.text.count("exit code 3") == 1, res.text  # said once, on the last line
        rows = cli("ps", "-a", "-v", "--json", cwd=repo).json()
        assert rows[0]["status"] == "failed"
        assert "exit code 3" in rows[0]["error"]

    def test_one_flow_run_with_one_task_run_per_step(self, cli: CLI, repo: Path, api: PrefectAPI) -> None:
        """Prefect shows the run as one flow run tagged dstack and workflow:d, and a task run per step."""
        res = cli("run", "d", "-d", cwd=repo)
        name = submitted_name(res.out)
        wait_finished(api, name)

        fr = api.flow_run_by_name(name)
        assert {"dstack", "workflow:d"} <= set(fr["tags"])
        tasks = wait_until(lambda: (t := api.task_runs(fr["id"])) and len(t) == 4 and t, 20)
        assert sorted(t["name"] for t in tasks) == ["a", "b", "c", "d"]
        assert {t["state"]["type"] for t in tasks} == {"COMPLETED"}
        assert fr["state"]["name"] == "Done"

    def test_every_line_reaches_prefect_logs_with_its_step(
        self, cli: CLI, repo: Path, api: PrefectAPI
    ) -> None:
        """Each echoed line is a Prefect log record of the task run named after its step."""
        res = cli("run", "d", "-d", cwd=repo)
        name = submitted_name(res.out)
        wait_finished(api, name)
        fr = api.flow_run_by_name(name)

        def by_step() -> dict[str, list[str]]:
            names = {t["id"]: t["name"] for t in api.task_runs(fr["id"])}
            out: dict[str, list[str]] = {}
            for rec in api.logs(fr["id"]):
                if rec["name"].startswith("prefect.task_runs.dstack.out."):
                    step = names.get(rec["task_run_id"], "?")
                    assert rec["name"] == f"prefect.task_runs.dstack.out.{step}"
                    out.setdefault(step, []).append(rec["message"])
            return out

        got = wait_until(lambda: (g := by_step()) and len(g.get("d", [])) == 1 and g, 20)
        assert got["a"] == ["a-out"]
        assert got["d"] == ["d-out"]
        assert [m.split()[0] for m in got["b"]] == ["start", "end"]


class TestPorts:
    def test_an_app_local_mapping_answers_on_the_local_port_while_attached(
        self, make_repo: Any, prefect_server: Server, dstack_home: Path, api: PrefectAPI
    ) -> None:
        """`ports: ["APP:LOCAL"]`: the app binds $PORT_0 = APP, the CLI prints LOCAL's URL, and
        LOCAL answers with the app's content until the run stops."""
        app, local = free_port(), free_port()
        repo = make_repo(
            {
                ".dstack/workflows.yaml": f"""
workflows:
  - name: serve
    provider: bash
    ports: ["{app}:{local}"]
    commands:
      - echo "app-page" > page.txt
      - python3 -m http.server $PORT_0 --bind 127.0.0.1
"""
            }
        )
        proc = attached_run(repo, prefect_server.env(dstack_home), "serve")
        try:

            def printed_url() -> str | None:
                line = proc.stderr.readline() if proc.stderr else ""
                return line.strip() if re.search(r"http://127\.0\.0\.1:\d+", line) else None

            printed = wait_until(printed_url, 90, interval=0)
            address = printed[printed.index("http://") :].split()[0]

            def page() -> bytes | None:
                try:
                    with urllib.request.urlopen(f"{address}/page.txt", timeout=2) as resp:
                        return bytes(resp.read())
                except OSError:
                    return None

            assert address == f"http://127.0.0.1:{local}"
            assert printed.endswith(f"$PORT_0: http://127.0.0.1:{local} (the app's port {app})"), printed
            assert wait_until(page, 60) == b"app-page\n"
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C with no terminal to answer the prompt: stop
            proc.wait(timeout=60)
        name = next(fr["name"] for fr in api.flow_runs(limit=5) if "workflow:serve" in fr["tags"])
        assert wait_finished(api, name).status == "stopped"
        assert page() is None  # the relay closed with the step


class TestIdeProviders:
    @pytest.mark.parametrize(("provider", "page"), [("lab", "/lab"), ("notebook", "/tree")])
    def test_jupyter_serves_behind_its_token_until_stopped(
        self, cli: CLI, repo: Path, api: PrefectAPI, provider: str, page: str
    ) -> None:
        """`dstack run lab|notebook` starts JupyterLab / Jupyter Notebook on $PORT_0, logs its URL
        with the token, answers only with that token, and a stop leaves no Jupyter process."""
        name = submitted_name(cli("run", provider, "-d", cwd=repo).out)
        fr_id = api.flow_run_by_name(name)["id"]

        def ide_url() -> str | None:
            said = [r["message"] for r in api.logs(fr_id)]
            label = {"lab": "JupyterLab", "notebook": "Jupyter Notebook"}[provider]
            found = [m for text in said if (m := re.search(rf"{label}: (http://\S+)", text))]
            return found[0].group(1) if found else None

        url = wait_until(ide_url, 90)
        base, token = url.split(f"{page}?token=")

        def status(query: str) -> int | None:
            try:
                with urllib.request.urlopen(f"{base}/api/status{query}", timeout=2) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                return None  # not listening yet

        assert 200 == wait_until(lambda: status(f"?token={token}"), 60)
        assert 403 == status("")
        assert cli("stop", name, "-y", cwd=repo).code == 0
        assert "stopped" == wait_finished(api, name).status
        wait_until(lambda: marker_processes(f"RUN_NAME={name}") == [], 10)

    @pytest.mark.parametrize(
        ("provider", "expected"),
        [
            (
                "lab",
                "provider lab runs JupyterLab from the PATH, and it is not there: pip install jupyterlab",
            ),
            (
                "code",
                "provider code runs openvscode-server from the PATH, and it is not there:"
                " see https://github.com/gitpod-io/openvscode-server/releases",
            ),
        ],
    )
    def test_an_ide_missing_from_the_path_fails_saying_what_to_install(
        self, cli: CLI, repo: Path, prefect_server: Server, dstack_home: Path, provider: str, expected: str
    ) -> None:
        """A PATH without the IDE (here openvscode-server never is): the step ends failed at once,
        naming what to install."""
        env = {**prefect_server.env(dstack_home), "PATH": "/usr/bin:/bin"}

        res = cli("run", provider, cwd=repo, env=env)

        assert res.code == 1
        assert expected in " ".join(res.out.split())


class TestDetachedRuns:
    def test_detached_run_finishes_after_the_cli_exits(self, cli: CLI, repo: Path, api: PrefectAPI) -> None:
        """`run -d` returns at once with the name; the run completes on its own."""
        res = cli("run", "b", "-d", cwd=repo)

        assert res.code == 0, res.text
        name = submitted_name(res.out)
        assert run_row(api.flow_run_by_name(name)).status in ("submitted", "pending", "running")
        assert wait_finished(api, name).status == "done"
        logs = cli("logs", name, cwd=repo)
        assert re.search(r"^b \| end \d", logs.out, re.M), logs.text

    @pytest.mark.parametrize(
        ("flag", "status"), [((), "stopped"), (("-x",), "aborted")], ids=["stop", "abort"]
    )
    def test_stop_ends_the_run_and_leaves_no_process(
        self, cli: CLI, repo: Path, api: PrefectAPI, flag: tuple[str, ...], status: str
    ) -> None:
        """`dstack stop` (graceful or -x) ends a sleeping run within 10 s, with no step process left."""
        name = submitted_name(cli("run", "sleeper", "-d", cwd=repo).out)
        wait_until(lambda: run_row(api.flow_run_by_name(name)).status == "running", 60)
        wait_until(lambda: marker_processes(f"RUN_NAME={name}"), 30)

        res = cli("stop", name, *flag, "-y", cwd=repo)

        assert res.code == 0, res.text
        row = wait_finished(api, name, timeout=10)
        assert row.status == status
        assert marker_processes(f"RUN_NAME={name}") == []

    def test_killing_the_flow_process_crashes_the_run_without_orphans(
        self, cli: CLI, repo: Path, api: PrefectAPI, dstack_home: Path
    ) -> None:
        """SIGKILL of the process running the flow ends the run failed within 60 s and kills its steps."""
        name = submitted_name(cli("run", "sleeper", "-d", cwd=repo).out)
        wait_until(lambda: marker_processes(f"RUN_NAME={name}"), 60)
        pid = supervisor_pid(dstack_home / "runs" / name)

        os.kill(pid, signal.SIGKILL)

        row = wait_finished(api, name, timeout=60)
        fr = api.flow_run_by_name(name)
        assert row.status == "failed"
        assert fr["state"]["type"] == "CRASHED"
        wait_until(lambda: marker_processes(f"DSTACK_FLOW_RUN_ID={fr['id']}") == [], 30)

    def test_an_attached_cli_ends_a_run_whose_flow_process_and_reaper_are_gone(
        self, repo: Path, api: PrefectAPI, prefect_server: Server, dstack_home: Path
    ) -> None:
        """SIGKILL of the supervisor and its reaper together: the attached `dstack run` marks the
        run Crashed, kills its step processes and exits 1, with no other command run."""
        with attached_run(repo, prefect_server.env(dstack_home), "sleeper") as proc:
            assert proc.stdout is not None
            out = proc.stdout

            def run_name() -> str | None:
                m = re.search(r"^(\S+-\d+) ", out.readline())
                return m.group(1) if m else None

            name = wait_until(run_name, 60, interval=0)
            wait_until(lambda: marker_processes(f"RUN_NAME={name}"), 60)
            fr_id = api.flow_run_by_name(name)["id"]
            supervisor = supervisor_pid(dstack_home / "runs" / name)
            reapers = [p for p in marker_processes(fr_id) if p != supervisor and b"_reaper" in cmdline(p)]
            assert reapers
            for victim in [*reapers, supervisor]:
                os.kill(victim, signal.SIGKILL)

            try:
                code = proc.wait(timeout=60)
            finally:
                proc.kill()  # a CLI that never noticed must not hang the suite

        assert code == 1
        state = api.flow_run_by_name(name)["state"]
        assert "CRASHED" == state["type"]
        assert state["message"].endswith(f"; its log: {dstack_home / 'runs' / name / 'supervisor.log'}")
        wait_until(lambda: marker_processes(f"DSTACK_FLOW_RUN_ID={fr_id}") == [], 10)

    def test_rm_removes_a_finished_run_and_refuses_a_running_one(
        self, cli: CLI, repo: Path, api: PrefectAPI
    ) -> None:
        """`rm` deletes finished runs; an unfinished one gets "stop it first"."""
        name = submitted_name(cli("run", "sleeper", "-d", cwd=repo).out)
        wait_until(lambda: run_row(api.flow_run_by_name(name)).status == "running", 60)

        refused = cli("rm", name, "-y", cwd=repo)
        assert refused.code == 1
        assert "stop it first" in refused.err
        cli("stop", name, "-x", "-y", cwd=repo)
        wait_finished(api, name)
        removed = cli("rm", name, "-y", cwd=repo)

        assert removed.code == 0, removed.text
        assert list(api.flow_runs(names=[name])) == []

    def test_rm_all_on_a_shared_server_removes_only_this_homes_runs(
        self, cli: CLI, repo: Path, api: PrefectAPI, prefect_server: Server, tmp_path: Path
    ) -> None:
        """On a server dstack does not manage (PREFECT_API_URL: a team's), `rm -a` removes the
        runs this dstack home started and leaves a teammate's, saying so; by name it removes it."""
        teammate = tmp_path / "teammate-home"
        teammate.mkdir()
        theirs_env = prefect_server.env(teammate)
        theirs = submitted_name(cli("run", "a", "-d", cwd=repo, env=theirs_env).out)
        mine = submitted_name(cli("run", "a", "-d", "--rerun", cwd=repo).out)
        wait_finished(api, theirs)
        wait_finished(api, mine)

        res = cli("rm", "-a", "-y", cwd=repo)

        assert res.code == 0, res.text
        assert f"Removed {mine}" in res.out
        assert f"Removed {theirs}" not in res.out
        assert "other dstack homes started on this Prefect server" in res.out
        assert [] == list(api.flow_runs(names=[mine]))
        assert [theirs] == [fr["name"] for fr in api.flow_runs(names=[theirs])]
        assert 0 == cli("rm", theirs, "-y", cwd=repo).code
        assert [] == list(api.flow_runs(names=[theirs]))


class TestPs:
    def test_a_named_run_is_found_by_its_name_and_the_name_stays_unique(
        self, cli: CLI, repo: Path, api: PrefectAPI
    ) -> None:
        """`--name lr-0.1` names the run (as dstack 0.10's --name); ps and logs find it by that
        name, and a second run asking for the same name is refused before it starts."""
        first = cli("run", "a", "--name", "lr-0.1", cwd=repo)
        again = cli("run", "a", "--name", "lr-0.1", "--rerun", cwd=repo)

        assert first.code == 0, first.text
        assert cli("ps", "lr-0.1", "--json", cwd=repo).json()[0]["status"] == "done"
        assert cli("logs", "lr-0.1", cwd=repo).out == "a-out\n"
        assert again.code == 1
        assert "a run named 'lr-0.1' exists (a, done)" in again.err
        assert "dstack rm lr-0.1" in again.err
        assert [fr["name"] for fr in api.flow_runs(names=["lr-0.1"])] == ["lr-0.1"]

    def test_ps_lists_runs_with_humanised_time_and_status(
        self, cli: CLI, repo: Path, api: PrefectAPI
    ) -> None:
        """`ps -a` shows RUN, WORKFLOW, SUBMITTED, STATUS, TAG for each run; --json for machines."""
        name = submitted_name(cli("run", "a", "-d", cwd=repo).out)
        wait_finished(api, name)

        table = cli("ps", "-a", cwd=repo)
        rows = cli("ps", "-a", "--json", cwd=repo).json()

        header = table.out.splitlines()[0].split()
        assert header == ["RUN", "WORKFLOW", "SUBMITTED", "STATUS", "TAG"]
        line = next(ln for ln in table.out.splitlines() if ln.startswith(name))
        assert re.search(rf"^{name}\s+a\s+(now|\d+ sec ago|\d+ mins? ago)\s+Done", line), line
        assert any(r["name"] == name and r["workflow"] == "a" and r["status"] == "done" for r in rows)

    def test_watch_into_a_pipe_prints_a_table_when_the_runs_change(
        self, cli: CLI, repo: Path, api: PrefectAPI, prefect_server: Server, dstack_home: Path
    ) -> None:
        """`ps -w` with no terminal prints the table at once, then a new one when a run changes."""
        with subprocess.Popen(
            [sys.executable, "-m", "dstack_prefect", "ps", "-w", "-a"],
            cwd=repo,
            env=prefect_server.env(dstack_home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as proc:
            try:
                out = proc.stdout
                assert out is not None
                first = out.readline()
                name = submitted_name(cli("run", "a", "-d", cwd=repo).out)
                later = wait_until(lambda: name in (line := out.readline()) and line, 60, interval=0)
            finally:
                proc.kill()

        assert first.split() == ["RUN", "WORKFLOW", "SUBMITTED", "STATUS", "TAG"]
        assert later.startswith(name)


MOVING = """
workflows:
  - name: make
    provider: bash
    commands: [mkdir -p out, echo 1 > out/one.txt]
    artifacts: [out]
  - name: use
    provider: bash
    deps: [make]
    commands: [cat out/one.txt]
"""


class TestStatuses:
    def test_downloading_and_uploading_show_as_the_runs_state_names(
        self, cli: CLI, make_repo: Any, api: PrefectAPI
    ) -> None:
        """While a step stores its artifacts the run is Uploading, while one places a dep's
        files it is Downloading (RUNNING throughout: the Prefect UI's timeline and `dstack ps`
        show the names), then Done."""
        repo = make_repo({".dstack/workflows.yaml": MOVING})

        res = cli("run", "use", cwd=repo)

        assert res.code == 0, res.text
        fr = api.flow_run_by_name(re.search(r"^(\S+-\d+)\s+use", res.out, re.M).group(1))  # type: ignore[union-attr]
        names = api.state_names(fr["id"])
        assert names[:2] == ["Pending", "Running"] and names[-1] == "Done", names
        assert set(names[2:-1]) <= {"Running", "Uploading", "Downloading"}, names
        assert names.index("Uploading") < names.index("Downloading"), names


class TestLogs:
    def test_logs_prints_the_runs_lines_in_order_with_their_step(self, cli: CLI, repo: Path) -> None:
        """`dstack logs RUN` after the run: every step's lines, prefixed, deps' lines first."""
        name = submitted_name(cli("run", "d", "-d", cwd=repo).out)
        cli("logs", name, "-a", cwd=repo)  # follows until the run ends

        out = cli("logs", name, cwd=repo).out.splitlines()

        steps = [line.split(" | ")[0] for line in out]
        assert out[0] == "a | a-out" and out[-1] == "d | d-out", out
        assert sorted(steps[1:-1]) == ["b", "b", "c", "c"]

    def test_since_leaves_out_older_lines(self, cli: CLI, repo: Path, api: PrefectAPI) -> None:
        """`-s` with a time after the run ended prints nothing; `-s 1h` prints its lines."""
        name = submitted_name(cli("run", "a", "-d", cwd=repo).out)
        wait_finished(api, name)
        after = api.flow_run_by_name(name)["end_time"]

        assert cli("logs", name, "-s", after, cwd=repo).out == ""
        assert cli("logs", name, "-s", "1h", cwd=repo).out == "a-out\n"

    def test_attach_follows_a_running_run_until_it_ends(self, cli: CLI, repo: Path) -> None:
        """`dstack logs RUN -a` on a detached run returns when the run ends, with its last line."""
        name = submitted_name(cli("run", "b", "-d", cwd=repo).out)

        res = cli("logs", name, "-a", cwd=repo)

        assert res.code == 0, res.text
        assert re.search(r"^b \| end \d", res.out, re.M), res.text

    def test_a_progress_bar_shows_as_its_final_state(self, cli: CLI, make_repo: Any) -> None:
        """Carriage-return frames (tqdm, pip) are one log line, the bar as a terminal ends it."""
        command = "printf '\\r 50%%|#####     |\\r100%%|##########|\\n'; echo done"
        yaml = f"workflows:\n  - name: bar\n    provider: bash\n    commands:\n      - {command}\n"
        repo = make_repo({".dstack/workflows.yaml": yaml})
        name = submitted_name(cli("run", "bar", "-d", cwd=repo).out)

        out = cli("logs", name, "-a", cwd=repo).out

        assert out.splitlines()[-2:] == ["100%|##########|", "done"], out

    def test_a_steps_note_comes_before_its_output_on_an_attached_screen(
        self, make_repo: Any, prefect_server: Server, dstack_home: Path
    ) -> None:
        """With stdout and stderr on one screen, each step's "running" note shows before its
        first line, and the run's end after the last: notes travel in one queue with the output
        (they went through Prefect's logger, sent every 2 s, and showed up after the lines)."""
        steps = [f"  - name: s{i}\n    provider: bash\n    commands: [echo out-{i}]\n" for i in range(3)]
        chain = steps[0] + "".join(f"{step}    deps: [s{i}]\n" for i, step in enumerate(steps[1:]))
        repo = make_repo({".dstack/workflows.yaml": "workflows:\n" + chain})

        res = subprocess.run(
            [sys.executable, "-m", "dstack_prefect", "run", "s2"],
            cwd=repo,
            env=prefect_server.env(dstack_home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )

        lines = [re.sub(r"^s\d \| ", "", line) for line in res.stdout.splitlines()]
        assert res.returncode == 0, res.stdout
        wanted = [x for i in range(3) for x in (f"s{i}: running s{i} (no earlier done run)", f"out-{i}")]
        order = [lines.index(s) for s in [*wanted, "Done"]]
        assert order == sorted(order), res.stdout

    def test_a_single_dash_word_is_a_run_arg_not_run_flags(self, cli: CLI, make_repo: Any) -> None:
        """`dstack run train -data x` passes `-data x` to the script; click read it as `-d -a -t
        -a` (detached, and the word dropped). `-d` alone still detaches."""
        yaml = (
            "workflows:\n  - name: echo\n    provider: bash\n    commands: ['echo \"got ${{ run.args }}\"']\n"
        )
        repo = make_repo({".dstack/workflows.yaml": yaml})

        attached = cli("run", "echo", "-data", "x", "--", "-e", "5", cwd=repo)
        detached = cli("run", "echo", "-d", cwd=repo)

        assert attached.code == 0, attached.text
        assert "got -data x -e 5" in attached.out.splitlines()
        assert "submitted" in detached.out

    def test_long_lines_reach_a_pipe_whole(
        self, cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
    ) -> None:
        """Into a pipe (80 columns by default), a 150-character line and a 40-word line come out
        as the step printed them, attached and from `dstack logs`: not cut at 80 or padded."""
        long, words = "x" * 150, " ".join(["word"] * 40)
        yaml = f"workflows:\n  - name: wide\n    provider: bash\n    commands: [echo {long}, echo {words}]\n"
        repo = make_repo({".dstack/workflows.yaml": yaml})
        env = prefect_server.env(dstack_home)
        del env["COLUMNS"]

        attached = cli("run", "wide", cwd=repo, env=env)
        name = cli("ps", "--json", cwd=repo).json()[0]["name"]
        logs = cli("logs", name, cwd=repo, env=env)

        assert attached.out.splitlines()[-3:-1] == [long, words], attached.out
        assert logs.out.splitlines() == [long, words], logs.out

    def test_ps_verbose_into_a_pipe_keeps_each_run_on_one_line(
        self, cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
    ) -> None:
        """`dstack ps -v | grep`: a run's row, its error included, is one line however long,
        not wrapped at a pipe's 80 columns."""
        step = "a-workflow-with-a-rather-long-name-to-push-the-row-past-eighty"
        yaml = f"workflows:\n  - name: {step}\n    provider: bash\n    commands: [exit 3]\n"
        repo = make_repo({".dstack/workflows.yaml": yaml})
        env = prefect_server.env(dstack_home)
        del env["COLUMNS"]
        name = submitted_name(cli("run", step, "-d", cwd=repo, env=env).out)
        wait_until(lambda: cli("ps", name, "--json", cwd=repo).json()[0]["status"] == "failed", 60)

        res = cli("ps", name, "-v", cwd=repo, env=env)

        row = next(line for line in res.out.splitlines() if line.startswith(name))
        assert row.endswith(f"step '{step}' failed: exit code 3"), res.out

    def test_a_large_code_snapshot_is_warned_about_and_gone_after_the_run(
        self, cli: CLI, make_repo: Any, dstack_home: Path
    ) -> None:
        """A 120 MB data file left untracked is copied into every step: the run says so, naming
        the file and what to do; the run's copy of the code is removed when the run ends."""
        yaml = "workflows:\n  - name: look\n    provider: bash\n    commands: [wc -c < data.bin]\n"
        repo = make_repo({".dstack/workflows.yaml": yaml})
        with open(repo / "data.bin", "wb") as data:
            data.truncate(120_000_000)  # sparse: nothing to write, 120 MB to copy

        res = cli("run", "look", cwd=repo)

        assert res.code == 0, res.text
        assert "120000000" in res.out
        assert "the code snapshot is 120.0 MB in 2 files (largest: data.bin 120.0 MB" in res.err, res.err
        assert ".dstackignore" in res.err
        name = cli("ps", "--json", cwd=repo).json()[0]["name"]
        assert (dstack_home / "runs" / name).is_dir()
        assert not (dstack_home / "runs" / name / "code").exists()
        assert not (dstack_home / "runs" / name / "steps").exists()

    def test_a_chatty_step_loses_no_line(self, cli: CLI, make_repo: Any) -> None:
        """20000 lines printed in a second are all in the run's logs when it ends, the last
        ones (where an error would be) included."""
        yaml = "workflows:\n  - name: chatty\n    provider: bash\n    commands: [seq 1 20000]\n"
        repo = make_repo({".dstack/workflows.yaml": yaml})
        res = cli("run", "chatty", cwd=repo, timeout=300)
        name = re.search(r"^(\S+)\s+chatty\s", res.out, re.M)

        assert res.code == 0, res.text[-2000:]
        assert name, res.out[:2000]
        out = cli("logs", name.group(1), cwd=repo, timeout=300).out
        assert out.splitlines() == [str(i) for i in range(1, 20001)]


class TestBadInput:
    @pytest.mark.parametrize(
        ("files", "args", "expected"),
        [
            (
                {".dstack/workflows.yaml": DIAMOND},
                ("run", "trian"),
                "No workflow or provider 'trian' is found",
            ),
            (
                {
                    ".dstack/workflows.yaml": (
                        "workflows:\n  - name: x\n    provider: bash\n    commands: [echo\n"
                    )
                },
                ("run", "x"),
                ".dstack/workflows.yaml:",
            ),
            ({"README.md": "no dstack here"}, ("run", "train"), ".dstack"),
            (
                {".dstack/workflows.yaml": DIAMOND},
                ("stop", "no-such-run-1", "-y"),
                "no run named 'no-such-run-1'",
            ),
            ({".dstack/workflows.yaml": DIAMOND}, ("logs", "no-such-run-1"), "no run named 'no-such-run-1'"),
            (
                {".dstack/workflows.yaml": DIAMOND},
                ("run",),
                "workflows here: a, after-broken, b, broken, c, d, sleeper",
            ),
            (
                {
                    ".dstack/workflows.yaml": DIAMOND,
                    ".dstack/workflows/bad.yaml": "workflows:\n  - name: z\n",
                },
                ("run",),
                "workflows here: a, after-broken, b, broken, c, d, sleeper",
            ),
            (
                {".dstack/workflows.yaml": DIAMOND},
                ("run", "a", "--name", "lr 0.1"),
                "run name 'lr 0.1' is not valid: use letters, digits, '.', '_' and '-'",
            ),
        ],
        ids=[
            "unknown-workflow",
            "invalid-yaml",
            "no-dstack-folder",
            "stop-unknown-run",
            "logs-unknown-run",
            "run-without-a-workflow",
            "run-without-a-workflow-beside-a-broken-file",
            "run-name-with-a-space",
        ],
    )
    def test_user_mistakes_get_a_reason_and_a_next_step(
        self, cli: CLI, make_repo: Any, files: dict[str, str], args: tuple[str, ...], expected: str
    ) -> None:
        """Each mistake exits 1 with `error:` and `hint:` lines and no traceback."""
        repo = make_repo(files)

        res = cli(*args, cwd=repo)

        assert res.code == 1, res.text
        assert expected in res.err
        assert "error:" in res.err and "hint:" in res.err
        assert "Traceback" not in res.text

    def test_unreachable_server_is_a_clear_error(
        self, cli: CLI, repo: Path, prefect_server: Server, dstack_home: Path
    ) -> None:
        """With PREFECT_API_URL pointing nowhere, commands say so and what to do."""
        env = prefect_server.env(dstack_home)
        env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"

        res = cli("ps", cwd=repo, env=env)

        assert res.code == 1
        assert "not reachable" in res.err and "hint:" in res.err
        assert "Traceback" not in res.text

    @pytest.mark.parametrize("form", ["APP", "APP:LOCAL"])
    def test_a_fixed_port_in_use_here_stops_the_run_before_it_starts(
        self, cli: CLI, make_repo: Any, api: PrefectAPI, form: str
    ) -> None:
        """`ports: [P]` (or "APP:P") where something already listens on P: one error naming the
        port and a hint, exit 1, no run; the app's "Address already in use" traceback was the
        only clue, after the run had started."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            entry = port if form == "APP" else f'"{free_port()}:{port}"'
            name = "web-app" if form == "APP" else "web-app-local"
            yaml = f"workflows:\n  - name: {name}\n    provider: bash\n    ports: [{entry}]\n"
            repo = make_repo({".dstack/workflows.yaml": yaml + "    commands: [echo hi]\n"})

            res = cli("run", name, cwd=repo)

        assert res.code == 1, res.text
        assert res.err.startswith(f"error: port {port} of step '{name}' is in use on this machine")
        assert "hint:" in res.err and "Traceback" not in res.err
        assert "RUN" not in res.out

    def test_a_step_asking_too_much_fails_before_anything_runs(self, cli: CLI, make_repo: Any) -> None:
        """A step wanting more CPUs than the machine has is refused, saying what was asked and what exists."""
        repo = one_step_repo(make_repo, "big", "echo hi", "cpu: 512")

        res = cli("run", "big", cwd=repo)

        assert res.code == 1
        assert "asks for 512 CPUs" in res.err and "this machine has" in res.err

    def test_shm_size_on_the_host_is_a_warning_not_a_silence(self, cli: CLI, make_repo: Any) -> None:
        """`shm_size` means something only in a container: a host run says it is ignored, then runs."""
        repo = one_step_repo(make_repo, "shm", "echo ran", "shm_size: 1GB")

        res = cli("run", "shm", cwd=repo)

        assert res.code == 0, res.text
        assert "warning: shm: shm_size applies in containers only (--docker); ignored here" in res.err
        assert "ran" in res.out


def test_provider_mode_runs_in_an_empty_folder(cli: CLI, tmp_path: Path) -> None:
    """`dstack run bash -c ...` needs no files at all: an empty folder (a fresh `git init`) runs."""
    empty = tmp_path / "empty"
    empty.mkdir()
    subprocess.run(["git", "init", "-q", str(empty)], check=True)

    res = cli("run", "bash", "-c", "echo hi from nowhere", cwd=empty)

    assert res.code == 0, res.text
    assert "hi from nowhere" in res.out


class TestApiTriggered:
    def test_a_run_created_through_the_prefect_api_builds_its_plan_and_runs(
        self, repo: Path, api: PrefectAPI, prefect_server: Server, dstack_home: Path
    ) -> None:
        """A flow run created over REST with {"workflow": NAME} runs that workflow and its deps,
        as a worker would."""
        fr = run_through_the_api(
            api, prefect_server, dstack_home, repo, "d", name="api-triggered-1", tags=("dstack", "workflow:d")
        )

        assert run_row(api.flow_run(fr["id"]) or {}).status == "done"
        assert sorted(t["name"] for t in api.task_runs(fr["id"])) == ["a", "b", "c", "d"]

    def test_a_run_the_prefect_ui_started_gets_a_dstack_name_and_shows_in_ps(
        self, cli: CLI, repo: Path, api: PrefectAPI, prefect_server: Server, dstack_home: Path
    ) -> None:
        """A deployment run from the UI carries Prefect's adjective-animal name and only the
        deployment's `dstack` tag: it becomes adjective-animal-N, listed with its workflow, and
        `dstack logs` finds it by that name."""
        fr = run_through_the_api(api, prefect_server, dstack_home, repo, "a", name="gregarious-galago")

        row = next(
            r for r in json.loads(cli("ps", "-a", "--json", cwd=repo).out) if r["flow_run_id"] == fr["id"]
        )
        assert (row["name"], row["workflow"], row["status"]) == ("gregarious-galago-1", "a", "done")
        assert "a-out" in cli("logs", "gregarious-galago-1", cwd=repo).out

    def test_a_located_error_reads_on_one_line_in_ps_and_whole_in_json(
        self, cli: CLI, make_repo: Any, api: PrefectAPI, prefect_server: Server, dstack_home: Path
    ) -> None:
        """A run started through the API on a broken workflow file fails with the located error;
        `ps -v` shows it on one line (no quoted source, no caret), `--json` keeps all of it with
        the hint on a line of its own."""
        repo = make_repo({".dstack/workflows.yaml": "workflows:\n  - name: a\n    provider: bsh\n"})
        run_through_the_api(api, prefect_server, dstack_home, repo, "a", name="broken-file-1")

        table = cli("ps", "-v", "broken-file-1", cwd=repo).out
        error = json.loads(cli("ps", "--json", "broken-file-1", cwd=repo).out)[0]["error"]

        cell = " ".join(line.strip() for line in table.splitlines()[1:])  # rich wraps long cells
        assert cell.endswith(
            "1 problem in the workflow files .dstack/workflows.yaml:3:15: workflows[0].provider: "
            "unknown provider 'bsh'; did you mean 'bash'? fix the problems above, then run "
            "`dstack validate` again"
        )
        assert error.splitlines()[2:] == [
            "        provider: bsh",
            "                  ^",
            "fix the problems above, then run `dstack validate` again",
        ]

    def test_an_error_in_a_workflow_the_run_does_not_need_does_not_stop_it(
        self, cli: CLI, make_repo: Any, api: PrefectAPI, prefect_server: Server, dstack_home: Path
    ) -> None:
        """As `dstack run a`: a run of `a` started through the API runs though `b` is broken,
        and its log says how many problems are elsewhere."""
        yaml = (
            "workflows:\n  - name: a\n    provider: bash\n    commands: [echo a-ran]\n"
            "  - name: b\n    provider: bsh\n"
        )
        repo = make_repo({".dstack/workflows.yaml": yaml})

        fr = run_through_the_api(api, prefect_server, dstack_home, repo, "a", name="beside-broken-1")

        assert "done" == run_row(api.flow_run(fr["id"]) or {}).status
        logs = cli("logs", "beside-broken-1", cwd=repo)
        assert "a-ran\n" == logs.out
        assert "1 problem(s) in the workflow files that 'a' does not need" in logs.err

    def test_the_prefect_ui_cancel_stops_a_run_gracefully(
        self, cli: CLI, repo: Path, api: PrefectAPI
    ) -> None:
        """The UI's cancel (state Cancelling) is a graceful stop: the run ends Stopped."""
        name = submitted_name(cli("run", "sleeper", "-d", cwd=repo).out)
        wait_until(lambda: marker_processes(f"RUN_NAME={name}"), 60)

        api.set_flow_run_state(api.flow_run_by_name(name)["id"], "CANCELLING")

        assert wait_finished(api, name, timeout=30).status == "stopped"
        assert marker_processes(f"RUN_NAME={name}") == []


def leftover_repo(make_repo: Any, flag: Path) -> Path:
    """Workflows whose steps leave processes behind: in their group, or out of it (`setsid`).
    The steps `marked` (which then sleeps) and `marked-quick` touch ``flag`` when they run."""
    escape = "setsid sh -c 'touch escaped; exec sleep 300' >/dev/null 2>&1 </dev/null &"
    yaml = f"""
workflows:
  - name: bg
    provider: bash
    commands: ["sleep 600 &", "echo started bg"]
  - name: escaper
    provider: bash
    commands: ["{escape}", "until [ -e escaped ]; do sleep 0.05; done", "echo escaped"]
  - name: escaper-sleeps
    provider: bash
    commands: ["{escape}", "echo escaped", "sleep 200"]
  - name: marked
    provider: bash
    commands: ["touch {flag}", "echo the step ran", "sleep 300"]
  - name: marked-quick
    provider: bash
    commands: ["touch {flag}", "echo the step ran"]
"""
    return Path(make_repo({".dstack/workflows.yaml": yaml}))


def escaped_sleep(name: str) -> list[int]:
    """The run's `sleep 300` that left its step's process group."""
    return [p for p in marker_processes(f"RUN_NAME={name}") if cmdline(p) == b"sleep\x00300\x00"]


class TestLeftovers:
    def test_a_step_ends_with_its_script_though_a_leftover_holds_its_output(
        self, cli: CLI, make_repo: Any, tmp_path: Path
    ) -> None:
        """`sleep 600 &` then `echo`: the run prints the line and ends Done at once, and the
        leftover is killed (it kept the run Running until it exited)."""
        repo = leftover_repo(make_repo, tmp_path / "ran")

        res = cli("run", "bg", cwd=repo, timeout=60)

        assert res.code == 0, res.text
        assert "started bg" in res.out.splitlines()
        name = re.search(r"^(\S+-\d+) ", res.out, re.M)
        assert name, res.out
        wait_until(lambda: marker_processes(f"RUN_NAME={name.group(1)}") == [], 10)

    def test_a_process_that_left_the_steps_group_ends_with_the_step(
        self, cli: CLI, make_repo: Any, tmp_path: Path, api: PrefectAPI
    ) -> None:
        """A `setsid` process a step started (out of its process group) is killed when the step
        ends, as the step's group is."""
        repo = leftover_repo(make_repo, tmp_path / "ran")

        name = submitted_name(cli("run", "escaper", "-d", cwd=repo).out)

        assert wait_finished(api, name).status == "done"
        wait_until(lambda: marker_processes(f"RUN_NAME={name}") == [], 10)

    @pytest.mark.parametrize(
        ("flag", "status"), [((), "stopped"), (("-x",), "aborted")], ids=["stop", "abort"]
    )
    def test_stop_kills_a_process_that_left_the_steps_group(
        self, cli: CLI, make_repo: Any, tmp_path: Path, api: PrefectAPI, flag: tuple[str, ...], status: str
    ) -> None:
        """`dstack stop` (graceful or -x) leaves no process of the step behind, a `setsid` one
        included."""
        repo = leftover_repo(make_repo, tmp_path / "ran")
        name = submitted_name(cli("run", "escaper-sleeps", "-d", cwd=repo).out)
        wait_until(lambda: escaped_sleep(name), 60)

        res = cli("stop", name, *flag, "-y", cwd=repo)

        assert res.code == 0, res.text
        assert wait_finished(api, name, timeout=30).status == status
        wait_until(lambda: marker_processes(f"RUN_NAME={name}") == [], 10)

    def test_a_graceful_stop_terms_a_process_that_left_the_steps_group(
        self, cli: CLI, make_repo: Any, tmp_path: Path, api: PrefectAPI
    ) -> None:
        """A server a step started with `setsid` gets SIGTERM when the step's group does, so it
        can shut down cleanly within the grace (it was killed outright at the step's end)."""
        said = tmp_path / "said"
        server = (
            f"trap 'echo got-term > {said}; exit 0' TERM; touch {tmp_path}/ready; while :; do sleep 0.1; done"
        )
        yaml = f"""
workflows:
  - name: serves
    provider: bash
    commands:
      - setsid bash -c "{server}" >/dev/null 2>&1 </dev/null &
      - sleep 300
"""
        repo = make_repo({".dstack/workflows.yaml": yaml})
        name = submitted_name(cli("run", "serves", "-d", cwd=repo).out)
        wait_until(lambda: (tmp_path / "ready").exists(), 60)

        res = cli("stop", name, "-y", cwd=repo)

        assert res.code == 0, res.text
        assert wait_finished(api, name, timeout=30).status == "stopped"
        assert said.read_text() == "got-term\n"
        wait_until(lambda: marker_processes(f"RUN_NAME={name}") == [], 10)


class TestStopBeforeStart:
    def test_a_run_stopped_at_once_after_submission_ends_stopped(
        self, cli: CLI, make_repo: Any, tmp_path: Path, api: PrefectAPI
    ) -> None:
        """`run -d` then `stop` at once: the run says Stopped and stays so (it went on to run)."""
        repo = leftover_repo(make_repo, tmp_path / "ran")
        name = submitted_name(cli("run", "marked", "-d", cwd=repo).out)

        res = cli("stop", name, "-y", cwd=repo)

        assert res.code == 0, res.text
        assert f"{name}: Stopped" in res.out
        assert wait_finished(api, name, timeout=30).status == "stopped"
        wait_until(lambda: marker_processes(f"RUN_NAME={name}") == [], 10)

    @pytest.mark.parametrize("started", [False, True], ids=["before-supervisor", "overwritten-by-running"])
    def test_a_run_stopped_before_its_flow_started_never_runs_a_step(
        self,
        make_repo: Any,
        tmp_path: Path,
        api: PrefectAPI,
        prefect_server: Server,
        dstack_home: Path,
        started: bool,
    ) -> None:
        """A stop of a pending run is Cancelled (Stopped). The supervisor that comes after it
        runs no step, also when Prefect's Running replaced the Cancelled (the flow engine starting
        as the stop came): the run ends Stopped."""
        flag = tmp_path / "ran"
        repo = leftover_repo(make_repo, flag)
        fr = api.create_flow_run(
            api.ensure_flow("dstack-run"),
            name=f"pe-{uuid.uuid4().hex[:8]}",
            parameters={"plan": {"workflow": "marked-quick", "args": []}, "repo_root": str(repo)},
            tags=["dstack"],
        )
        request_stop(api, run_row(api.flow_run(fr["id"]) or fr), abort=False)
        assert run_row(api.flow_run(fr["id"]) or fr).status == "stopped"
        if started:
            api.set_flow_run_state(fr["id"], "RUNNING", force=True)

        subprocess.run(
            [sys.executable, "-m", "dstack_prefect.engine", fr["id"]],
            env=prefect_server.env(dstack_home),
            capture_output=True,
            timeout=120,
            check=True,
        )

        state = (api.flow_run(fr["id"]) or {})["state"]
        assert ("CANCELLED", "Stopped") == (state["type"], state["name"])
        assert not flag.exists()

    def test_a_cancelled_state_written_while_it_runs_stops_the_run(
        self, cli: CLI, make_repo: Any, tmp_path: Path, api: PrefectAPI
    ) -> None:
        """A stop that read the run Pending writes Cancelled; landing after the flow started, it
        still stops the run and its step."""
        repo = leftover_repo(make_repo, tmp_path / "ran")
        name = submitted_name(cli("run", "marked", "-d", cwd=repo).out)
        wait_until(lambda: marker_processes(f"RUN_NAME={name}"), 60)

        api.set_flow_run_state(api.flow_run_by_name(name)["id"], "CANCELLED", name="Stopped", force=True)

        assert wait_finished(api, name, timeout=30).status == "stopped"
        wait_until(lambda: marker_processes(f"RUN_NAME={name}") == [], 10)


class TestStopOfAFinishedRun:
    @pytest.mark.parametrize("abort", [False, True], ids=["stop", "abort"])
    def test_a_stop_asked_with_a_stale_row_leaves_a_finished_run_as_it_ended(
        self, cli: CLI, repo: Path, api: PrefectAPI, abort: bool
    ) -> None:
        """A stop asked with the run's row read while it ran (before a prompt) finds it Done
        and leaves it Done: it turned Stopping, then Crashed."""
        name = submitted_name(cli("run", "a", "-d", "--rerun", cwd=repo).out)
        done = wait_finished(api, name)
        assert done.status == "done"

        after = request_stop(api, dataclasses.replace(done, status="running"), abort=abort)

        assert ["Pending", "Running", "Done"] == api.state_names(done.flow_run_id)
        assert after.status == "done"
