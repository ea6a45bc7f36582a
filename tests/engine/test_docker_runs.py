"""Docker steps end to end: `dstack run` on a real Docker engine and a real Prefect server."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from dstack_prefect.engine import PrefectAPI, run_row
from dstack_prefect.engine._runs import cleanup_leftovers
from dstack_prefect.server import pid_alive
from dstack_prefect.settings import Settings
from tests.conftest import CLI, Result, Server, run_through_the_api, serve, supervisor_pid, wait_until
from tests.docker_fixtures import TINY_IMAGE
from tests.engine.test_local_runs import attached_run, cmdline, submitted_name, wait_finished
from tests.executors.test_docker_pull import (  # noqa: F401 - the registry fixtures
    PASSWORD,
    USERNAME,
    LocalRegistry,
    local_registry,
    private_pullable,
    private_registry,
    pullable,
    saved_tiny_image,
)

pytestmark = [pytest.mark.service("docker"), pytest.mark.service("prefect")]

WORKFLOWS = f"""
workflows:
  - name: in-image
    provider: docker
    image: {TINY_IMAGE}
    commands:
      - cat /etc/tiny-marker
      - mkdir -p out && echo "made in a container" > out/note.txt
    artifacts: [out]
  - name: reader
    provider: bash
    deps: [in-image]
    commands:
      - cat out/note.txt
  - name: where
    provider: bash
    commands:
      - echo "pwd=$(pwd) venv=$(ls -d /opt/dstack)"
  - name: serve
    provider: bash
    ports: 1
    commands:
      - echo "serving on $PORT_0"
      - python3 -m http.server $PORT_0 --bind 127.0.0.1
  - name: counter
    provider: bash
    cache: [~/.cache/counter]
    commands:
      - mkdir -p ~/.cache/counter
      - echo "seen $(cat ~/.cache/counter/n 2>/dev/null || echo 0)"
      - echo $(( $(cat ~/.cache/counter/n 2>/dev/null || echo 0) + 1 )) > ~/.cache/counter/n
  - name: sleeper
    provider: bash
    commands:
      - echo "container sleeping"
      - sleep 300
  - name: make-env
    provider: bash
    commands:
      - mkdir -p /opt/dstack-test-envs/myenv/bin
      - echo "echo the env made upstream works" > /opt/dstack-test-envs/myenv/bin/hello
    artifacts: [/opt/dstack-test-envs/myenv]
  - name: use-env
    provider: bash
    deps: [make-env]
    commands:
      - sh /opt/dstack-test-envs/myenv/bin/hello
  - name: gpu
    provider: bash
    resources: {{gpu: 1}}
    commands: [nvidia-smi]
"""


@pytest.fixture
def env(prefect_server: Server, dstack_home: Path, runtime_image: str) -> dict[str, str]:
    e = prefect_server.env(dstack_home)
    e["DSTACK_RUNTIME_IMAGE"] = runtime_image
    return e


@pytest.fixture(scope="module")
def other_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A second real Prefect server in its own dstack home: another user's or CI job's, on the
    same Docker engine; it has never heard of the session server's runs."""
    yield from serve(tmp_path_factory.mktemp("other-dstack-home"))


@pytest.fixture
def other_env(other_server: Server, tmp_path: Path, runtime_image: str) -> dict[str, str]:
    """The environment of a dstack command in the other home, against the other server."""
    home = tmp_path / "other-home"
    home.mkdir()
    e = other_server.env(home)
    e["DSTACK_RUNTIME_IMAGE"] = runtime_image
    return e


@pytest.fixture
def other_api(other_server: Server) -> Iterator[PrefectAPI]:
    with PrefectAPI(other_server.url) as client:
        yield client


@pytest.fixture
def repo(make_repo: Any, tiny_image: str) -> Path:
    return make_repo({".dstack/workflows.yaml": WORKFLOWS})


@pytest.fixture
def api(prefect_server: Server) -> Any:
    with PrefectAPI(prefect_server.url) as client:
        yield client


def containers_of(run_name: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=dstack.run={run_name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def container_states(flow_run_id: str) -> list[str]:
    """`docker ps -a` states (running, exited...) of the step containers of one flow run."""
    label = f"label=dstack.flow-run-id={flow_run_id}"
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", label, "--format", "{{.State}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def kill_orchestrator(api: PrefectAPI, home: Path, name: str) -> None:
    """SIGKILL the supervisor of run ``name`` and its reaper: nothing is left to clean up after it."""
    pid = supervisor_pid(home / "runs" / name)
    fr_id = api.flow_run_by_name(name)["id"]
    reapers = [p for p in _pids() if fr_id.encode() in cmdline(p) and b"_reaper.py" in cmdline(p)]
    assert reapers
    for victim in [*reapers, pid]:
        os.kill(victim, signal.SIGKILL)


def test_a_docker_provider_step_runs_in_its_image_and_its_artifacts_reach_the_next(
    cli: CLI, repo: Path, env: dict[str, str]
) -> None:
    """`provider: docker` runs in its own image; the file it writes is read by a local bash dependent."""
    res = cli("run", "reader", cwd=repo, env=env)

    assert res.code == 0, res.text
    assert "in-image | tiny" in res.out
    assert "reader | made in a container" in res.out


def test_docker_flag_runs_bash_steps_in_the_runtime_image(cli: CLI, repo: Path, env: dict[str, str]) -> None:
    """`--docker` puts a bash step in the runtime image, at /workflow."""
    res = cli("run", "where", "--docker", cwd=repo, env=env)

    assert res.code == 0, res.text
    assert "pwd=/workflow venv=/opt/dstack" in res.out


def test_an_absolute_artifact_is_saved_and_mounted_at_its_path_downstream(
    cli: CLI, repo: Path, env: dict[str, str]
) -> None:
    """Old dstack's conda-env pattern: a containerised step's absolute artifact folder
    (/opt/.../myenv) is saved, and a dependent container finds it at the same path; the host's
    own /opt is never written."""
    res = cli("run", "use-env", "--docker", cwd=repo, env=env)
    row = re.search(r"^(\S+)\s+use-env\s", res.out, re.M)
    assert row, res.text
    listed = cli("ls", row.group(1), "-r", cwd=repo, env=env)

    assert res.code == 0, res.text
    assert "use-env | the env made upstream works" in res.out
    assert re.search(r"^/opt/dstack-test-envs/myenv/\s+bin/hello\s", listed.out, re.M), listed.text
    assert not Path("/opt/dstack-test-envs").exists()


def test_a_home_cache_folder_survives_between_container_runs(
    cli: CLI, repo: Path, env: dict[str, str]
) -> None:
    """`cache: [~/.cache/counter]` in a container: the next run sees what the last one left
    there (the container's own home is gone); `dstack prune cache` forgets it."""
    first = cli("run", "counter", "--docker", "--rerun", cwd=repo, env=env)
    second = cli("run", "counter", "--docker", "--rerun", cwd=repo, env=env)
    pruned = cli("prune", "cache", "counter", cwd=repo, env=env)
    third = cli("run", "counter", "--docker", "--rerun", cwd=repo, env=env)

    assert first.code == 0, first.text
    assert "seen 0" in first.out
    assert "seen 1" in second.out, second.text
    assert pruned.code == 0, pruned.text
    assert "seen 0" in third.out, third.text


def test_a_served_port_answers_from_the_host_while_attached(
    cli: CLI, repo: Path, env: dict[str, str], api: PrefectAPI
) -> None:
    """`ports: 1` gives $PORT_0; the CLI prints its URL and the server in the container answers it."""
    proc = attached_run(repo, env, "serve", "--docker")
    try:
        seen: list[str] = []

        def url() -> str | None:
            line = proc.stderr.readline() if proc.stderr else ""
            seen.append(line)
            m = re.search(r"http://127\.0\.0\.1:\d+", line)
            return m.group(0) if m else None

        address = wait_until(url, 90, interval=0)

        def answers() -> bool:
            try:
                with urllib.request.urlopen(address, timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        assert wait_until(answers, 60)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C with no terminal to answer the prompt: stop
        proc.wait(timeout=60)
    name = next(fr["name"] for fr in api.flow_runs(limit=5) if "workflow:serve" in fr["tags"])
    assert wait_finished(api, name).status == "stopped"
    assert containers_of(name) == []


@pytest.mark.parametrize(("flag", "status"), [((), "stopped"), (("-x",), "aborted")], ids=["stop", "abort"])
def test_stop_and_abort_leave_no_container(
    cli: CLI, repo: Path, env: dict[str, str], api: PrefectAPI, flag: tuple[str, ...], status: str
) -> None:
    """A stopped or aborted containerised run leaves nothing in `docker ps -a`."""
    name = submitted_name(cli("run", "sleeper", "--docker", "-d", cwd=repo, env=env).out)
    wait_until(lambda: containers_of(name), 60)

    res = cli("stop", name, *flag, "-y", cwd=repo, env=env)

    assert res.code == 0, res.text
    assert wait_finished(api, name, timeout=20).status == status
    assert containers_of(name) == []


def test_killing_the_orchestrator_then_the_next_command_leaves_no_container(
    cli: CLI, repo: Path, env: dict[str, str], api: PrefectAPI, dstack_home: Path
) -> None:
    """SIGKILL of the flow process and of its reaper: the next `dstack` command crashes the run
    and removes its container."""
    name = submitted_name(cli("run", "sleeper", "--docker", "-d", cwd=repo, env=env).out)
    wait_until(lambda: containers_of(name), 60)

    kill_orchestrator(api, dstack_home, name)
    res = cli("ps", "-a", "--json", cwd=repo, env=env)

    assert res.code == 0, res.text
    assert next(r for r in res.json() if r["name"] == name)["status"] == "failed"
    assert containers_of(name) == []


class TestHomes:
    """One Docker engine, several dstack homes each with its own Prefect server: a command in
    one home cleans up only that home's leftovers."""

    def test_a_command_in_another_home_leaves_a_running_step_container_alone(
        self, cli: CLI, repo: Path, env: dict[str, str], api: PrefectAPI, other_env: dict[str, str]
    ) -> None:
        """`dstack rm -a` in another home, whose server never heard of this run, does not stop
        or remove this run's running step container."""
        name = submitted_name(cli("run", "sleeper", "--docker", "-d", cwd=repo, env=env).out)
        fr_id = api.flow_run_by_name(name)["id"]
        try:
            wait_until(lambda: container_states(fr_id) == ["running"], 60)

            res = cli("rm", "-a", "-y", cwd=repo, env=other_env)

            assert res.code == 0, res.text
            assert ["running"] == container_states(fr_id)
        finally:
            cli("stop", name, "-x", "-y", cwd=repo, env=env)

    def test_the_next_command_removes_its_own_homes_leftovers_only(
        self,
        cli: CLI,
        repo: Path,
        env: dict[str, str],
        api: PrefectAPI,
        dstack_home: Path,
        other_env: dict[str, str],
        other_api: PrefectAPI,
    ) -> None:
        """After this home's orchestrator is killed, the next command here removes its run's
        container and leaves another home's running step container alone."""
        other = submitted_name(cli("run", "sleeper", "--docker", "-d", cwd=repo, env=other_env).out)
        other_id = other_api.flow_run_by_name(other)["id"]
        name = submitted_name(cli("run", "sleeper", "--docker", "-d", cwd=repo, env=env).out)
        fr_id = api.flow_run_by_name(name)["id"]
        try:
            wait_until(lambda: container_states(other_id) == container_states(fr_id) == ["running"], 60)
            kill_orchestrator(api, dstack_home, name)

            res = cli("ps", "-a", "--json", cwd=repo, env=env)

            assert res.code == 0, res.text
            assert ([], ["running"]) == (container_states(fr_id), container_states(other_id))
        finally:
            cli("stop", name, "-x", "-y", cwd=repo, env=env)
            cli("stop", other, "-x", "-y", cwd=repo, env=other_env)

    def test_a_container_without_a_home_label_goes_only_when_this_server_knows_its_run_ended(
        self,
        docker_engine: Any,
        dstack_home: Path,
        api: PrefectAPI,
        cli: CLI,
        repo: Path,
        env: dict[str, str],
    ) -> None:
        """A leftover from before the dstack.home label is removed when its flow run id is a
        finished run of this server, and kept when this server does not know the id."""
        name = submitted_name(cli("run", "where", "--docker", "-d", cwd=repo, env=env).out)
        finished_id = wait_finished(api, name).flow_run_id
        supervisor = supervisor_pid(dstack_home / "runs" / name)
        wait_until(lambda: not pid_alive(supervisor), 60)  # its own cleanup thread is over too
        old = {
            run_id: docker_engine.containers.create(
                env["DSTACK_RUNTIME_IMAGE"],
                ["true"],
                labels={"dstack.run": "old-run-1", "dstack.step": "s", "dstack.flow-run-id": run_id},
            )
            for run_id in (finished_id, str(uuid.uuid4()))
        }
        try:
            removed = cleanup_leftovers(api, Settings(home=dstack_home))

            assert [old[finished_id].id] == removed
        finally:
            for container in old.values():
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def test_a_gpu_step_fails_before_running_without_the_nvidia_runtime(
    cli: CLI, repo: Path, env: dict[str, str]
) -> None:
    """On this GPU-less engine a gpu: 1 container step is refused up front, naming the NVIDIA runtime."""
    res = cli("run", "gpu", "--docker", cwd=repo, env=env)

    assert res.code == 1
    assert "no NVIDIA runtime" in res.err
    assert "Traceback" not in res.text


def test_plan_says_as_a_warning_the_error_run_refuses_the_plan_with(
    cli: CLI, repo: Path, env: dict[str, str]
) -> None:
    """`plan --docker` of a step whose runtime image is not on the engine shows the plan, then
    as a warning the very error and hint `run --docker` stops with; --json carries them."""
    env = {**env, "DSTACK_RUNTIME_IMAGE": f"dstack-test/no-runtime:{uuid.uuid4().hex[:8]}"}

    ran = cli("run", "where", "--docker", cwd=repo, env=env)
    planned = cli("plan", "where", "--docker", cwd=repo, env=env)
    as_json = cli("plan", "where", "--docker", "--json", cwd=repo, env=env)

    error, hint = ran.err.splitlines()[-2:]
    assert (1, "error: ", "hint: ") == (ran.code, error[:7], hint[:6])
    assert 0 == planned.code, planned.text
    assert "where" in planned.out
    said = "warning: `dstack run` would refuse this plan: "
    assert [said + error.removeprefix("error: "), hint] == planned.err.splitlines()[-2:]
    assert {"error": error.removeprefix("error: "), "hint": hint.removeprefix("hint: ")} == {
        key: as_json.json()["refused"][key] for key in ("error", "hint")
    }


@pytest.mark.parametrize(
    ("args", "docker_flag"),
    [(("in-image",), False), (("where", "--docker"), True), (("image", "build"), False)],
    ids=["provider-docker", "--docker", "image-build"],
)
def test_an_unreachable_engine_is_one_error_line_and_one_hint_line(
    cli: CLI, repo: Path, env: dict[str, str], tmp_path: Path, args: tuple[str, ...], docker_flag: bool
) -> None:
    """With nothing at DOCKER_HOST, a run of a containerised step or `dstack image build` says
    where it looked and why in one line, then how to start an engine; only a `--docker` run is
    told it can run without it."""
    sock = f"unix://{tmp_path}/no-docker.sock"
    cmd = ("run", *args) if args[0] != "image" else args

    res = cli(*cmd, cwd=repo, env={**env, "DOCKER_HOST": sock})

    *warnings, error, hint = res.err.strip().splitlines()  # the file's legacy `ports: 1` warns first
    assert 1 == res.code
    assert not any(line.startswith(("error:", "hint:")) for line in warnings), res.err
    assert error.startswith(f"error: Docker engine not reachable at {sock}: "), error
    assert "Connection aborted" not in error
    assert hint.startswith("hint: start the Docker engine"), hint
    assert docker_flag == ("without --docker" in hint)


def test_a_port_in_use_here_stops_the_run_before_it_starts(
    cli: CLI, make_repo: Any, env: dict[str, str], tiny_image: str
) -> None:
    """`ports: [P]` on a machine where something already listens on P: one error line naming the
    port, a hint, exit 1, and no run (the app's own "Address already in use" traceback was the
    only clue)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        yaml = f"workflows:\n  - name: web\n    provider: docker\n    image: {tiny_image}\n"
        repo = make_repo({".dstack/workflows.yaml": yaml + f"    ports: [{port}]\n    commands: [echo hi]\n"})

        res = cli("run", "web", cwd=repo, env=env)

    assert 1 == res.code
    assert [f"error: port {port} of step 'web' is in use on this machine"] == [
        line.partition(" (")[0] for line in res.err.splitlines()[:1]
    ]
    assert "RUN" not in res.out


def missing_image_chain(make_repo: Any, marker: Path) -> Path:
    """`first` (a host bash step that leaves ``marker``) -> `second`, a docker-provider step
    whose image is neither on the engine nor pullable (no registry answers here)."""
    yaml = f"""
workflows:
  - name: first
    provider: bash
    commands: [touch {marker}]
  - name: second
    provider: docker
    image: dstack-test/no-such-image:1
    deps: [first]
    commands: [echo unreachable]
"""
    return make_repo({".dstack/workflows.yaml": yaml})


def test_a_missing_docker_image_fails_the_run_before_its_first_step_runs(
    cli: CLI, make_repo: Any, env: dict[str, str], tmp_path: Path, docker_engine: Any
) -> None:
    """first -> second (image not here, not pullable): the pull is tried before any step runs,
    so the run fails with the image, the step and the fix, and `first` never ran (old dstack
    found it only once `first` was done, however long that took)."""
    marker = tmp_path / "first-ran"
    repo = missing_image_chain(make_repo, marker)

    res = cli("run", "second", cwd=repo, env=env)

    assert 1 == res.code, res.text
    assert (
        "error: image dstack-test/no-such-image:1 of step 'second' is not on this machine "
        "and pulling it failed: "
    ) in res.err
    assert "hint: build it on this machine (`docker build -t dstack-test/no-such-image:1 .`)" in res.err
    assert not marker.exists()


def test_a_run_started_through_the_api_checks_the_missing_image_before_its_first_step(
    make_repo: Any,
    api: PrefectAPI,
    prefect_server: Server,
    dstack_home: Path,
    tmp_path: Path,
    docker_engine: Any,
) -> None:
    """The same chain triggered as a worker would (no `dstack run` checks first): the flow's own
    check tries the pull before any step, the run ends failed with the pull message, and
    `first` has no task run and left no marker."""
    marker = tmp_path / "first-ran"
    repo = missing_image_chain(make_repo, marker)
    fr = run_through_the_api(api, prefect_server, dstack_home, repo, "second", name="missing-image-1")

    run = api.flow_run(fr["id"]) or {}
    assert "failed" == run_row(run).status
    assert "image dstack-test/no-such-image:1 of step 'second' is not on this machine" in str(
        (run.get("state") or {}).get("message")
    )
    assert [] == api.task_runs(fr["id"])
    assert not marker.exists()


def test_two_steps_on_one_missing_image_run_from_one_pull(
    cli: CLI,
    make_repo: Any,
    env: dict[str, str],
    local_registry: LocalRegistry,  # noqa: F811 - the imported fixture
    pullable: tuple[str, str],  # noqa: F811
) -> None:
    """a -> b, both on an image the engine lacks and a registry has: it is pulled once, before
    `a` runs, saying so, and neither step's start pulls it again."""
    image, tag = pullable
    step = "  - name: {}\n    provider: docker\n    image: {}\n{}    commands: [cat /etc/tiny-marker]\n"
    steps = step.format("a", image, "") + step.format("b", image, "    deps: [a]\n")
    repo = make_repo({".dstack/workflows.yaml": "workflows:\n" + steps})

    res = cli("run", "b", cwd=repo, env=env)

    assert 0 == res.code, res.text
    assert ("a | tiny", "b | tiny") == tuple(line for line in res.out.splitlines() if "| tiny" in line)
    assert 1 == local_registry.pulls[tag]
    assert [f"Pulling image {image} for step 'a': it is not on this machine"] == [
        line for line in res.err.splitlines() if line.startswith("Pulling")
    ]


def private_repo(make_repo: Any, image: str, password: str) -> Path:
    """Workflow `private`: a docker-provider step on ``image`` with registry_auth
    :data:`USERNAME` + ``password`` (as written: a value or a `${{ secrets.X }}` reference)."""
    yaml = f"""
workflows:
  - name: private
    provider: docker
    image: {image}
    registry_auth:
      username: {USERNAME}
      password: "{password}"
    commands: [cat /etc/tiny-marker]
"""
    return make_repo({".dstack/workflows.yaml": yaml})


def all_logs(api: PrefectAPI, flow_run_id: str) -> list[dict[str, Any]]:
    """Every log record of a flow run, whatever its logger."""
    records: list[dict[str, Any]] = []
    while page := api.logs(flow_run_id, offset=len(records)):
        records += page
    return records


@dataclass
class PrivateRun:
    """`dstack secrets add` and `dstack run` of workflow `private`, and what is kept of the run
    by where: its `dstack logs`, every Prefect log record of the flow run, its parameters, its
    state message, and each file in the dstack home (by path)."""

    image: str
    added: Result
    res: Result
    kept: dict[str, str]


@pytest.fixture
def run_private(
    cli: CLI,
    make_repo: Any,
    env: dict[str, str],
    api: PrefectAPI,
    private_pullable: tuple[str, str],  # noqa: F811 - the imported fixture
) -> Iterator[Callable[[str], PrivateRun]]:
    """``run_private(value)``: workflow `private` on an image only the authenticating registry
    has, its registry_auth password `${{ secrets.REG_PASS_... }}`, a secret of this test's own
    (secrets are server-wide) holding ``value``; deleted afterwards."""
    image, _ = private_pullable
    secret = f"REG_PASS_{uuid.uuid4().hex[:8].upper()}"
    repo = private_repo(make_repo, image, "${{ secrets." + secret + " }}")

    def run(value: str) -> PrivateRun:
        added = cli("secrets", "add", secret, value, "-y", cwd=repo, env=env)
        res = cli("run", "private", cwd=repo, env=env)
        row = re.search(r"^(\S+)\s+private\s", res.out, re.M)
        assert row, res.text
        fr = api.flow_run_by_name(row.group(1))
        kept = {
            "dstack logs": cli("logs", row.group(1), cwd=repo, env=env).text,
            "prefect logs": json.dumps(all_logs(api, fr["id"])),
            "parameters": json.dumps(fr["parameters"]),
            "state message": str((fr.get("state") or {}).get("message")),
        }
        home = Path(env["DSTACK_HOME"])
        for f in home.rglob("*"):
            if f.is_file():
                kept[str(f.relative_to(home))] = f.read_bytes().decode(errors="replace")
        return PrivateRun(image, added, res, kept)

    yield run
    cli("secrets", "delete", secret, "-y", cwd=repo, env=env)


def test_registry_auth_from_a_secret_pulls_from_a_registry_that_asks_and_the_password_shows_nowhere(
    run_private: Callable[[str], PrivateRun],
    private_registry: LocalRegistry,  # noqa: F811 - the imported fixture
    private_pullable: tuple[str, str],  # noqa: F811
) -> None:
    """registry_auth with `password: ${{ secrets.REG_PASS }}` against a registry behind Basic
    auth: the step pulls its image and runs; the password is not in the CLI's output, the
    run's logs, its parameters or the dstack home's files."""
    run = run_private(PASSWORD)

    assert 0 == run.added.code, run.added.text
    assert 0 == run.res.code, run.res.text
    assert "tiny" in run.res.out.splitlines()
    assert 1 == private_registry.pulls[private_pullable[1]]
    assert "tiny" in run.kept["dstack logs"]
    assert len(run.kept) > 4, "the dstack home holds the run's files"
    assert [] == [where for where, text in run.kept.items() if PASSWORD in text]
    assert PASSWORD not in run.added.text + run.res.text


def test_a_wrong_registry_password_fails_the_run_saying_the_registry_refused_it(
    run_private: Callable[[str], PrivateRun],
) -> None:
    """A secret with the wrong password: the run fails with the image, the step, the registry's
    refusal of registry_auth's credentials and `dstack secrets` to check them; the wrong
    password shows nowhere."""
    wrong = "wrong-Reg-Pass-5be1"

    run = run_private(wrong)

    assert 1 == run.res.code, run.res.text
    assert (
        f"Failed: image {run.image} of step 'private' is not on this machine and pulling it failed: "
        "the registry refused the credentials of registry_auth"
    ) in run.res.out, run.res.text
    assert "`dstack secrets`" in run.res.out
    assert "tiny" not in run.res.out.splitlines()
    assert [] == [where for where, text in run.kept.items() if wrong in text]
    assert wrong not in run.added.text + run.res.text


def test_registry_auth_with_the_password_written_in_the_file_pulls_too(
    cli: CLI,
    make_repo: Any,
    env: dict[str, str],
    private_registry: LocalRegistry,  # noqa: F811 - the imported fixture
    private_pullable: tuple[str, str],  # noqa: F811
) -> None:
    """registry_auth with a literal password (no secret) logs in the same way, pulling when the
    step starts and saying so before the step's output."""
    image, tag = private_pullable
    repo = private_repo(make_repo, image, PASSWORD)

    res = cli("run", "private", cwd=repo, env=env)

    assert 0 == res.code, res.text
    pulling = f"dstack: Pulling image {image} for step 'private': it is not on this machine"
    assert [pulling, "tiny"] == [line for line in res.out.splitlines() if line in (pulling, "tiny")]
    assert 1 == private_registry.pulls[tag]
