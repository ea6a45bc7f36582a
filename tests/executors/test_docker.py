"""DockerExecutor against the real local engine: each step one container, removed at the end."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.errors import ExecutionError, ExecutorUnavailableError, ResourcesUnavailableError
from dstack_prefect.executors import StepJob, StepResult
from dstack_prefect.executors._docker_image import runtime_tag
from dstack_prefect.executors.docker import (
    DockerExecutor,
    cleanup_containers,
    list_step_containers,
    stop_by_identifier,
)
from dstack_prefect.graph import Step
from dstack_prefect.graph._plan import GpuRequest, PortSpec, Resources
from dstack_prefect.server import free_port

pytestmark = pytest.mark.service("docker")


def make_job(step: Step, workdir: Path, run_name: str, **kw: Any) -> tuple[StepJob, list[str]]:
    lines: list[str] = []
    return StepJob(
        run_name=run_name, step=step, workdir=workdir, env=kw.pop("env", {}), on_line=lines.append, **kw
    ), lines


def leftovers(engine: Any, run_name: str) -> list[Any]:
    return list(engine.containers.list(all=True, filters={"label": f"dstack.run={run_name}"}))


def poll(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def executor(runtime_image: str) -> Iterator[DockerExecutor]:
    with DockerExecutor(runtime_image=runtime_image) as ex:
        yield ex


def run(executor: DockerExecutor, job: StepJob) -> StepResult:
    executor.check(job.step)
    return executor.wait(executor.start(job))


class TestDockerProvider:
    def test_commands_run_in_the_image_and_files_stay_deletable(
        self, executor: DockerExecutor, tiny_image: str, tmp_path: Path, run_name: str, docker_engine: Any
    ) -> None:
        """`commands` run under /bin/sh -c in the step's image, in /workflow, and leave no container."""
        step = Step(
            name="dock",
            provider="docker",
            image=tiny_image,
            commands=["cat /etc/tiny-marker", "echo x > out.txt"],
        )
        job, lines = make_job(step, tmp_path, run_name)

        result = run(executor, job)

        assert (0, ["tiny"]) == (result.exit_code, lines)
        (tmp_path / "out.txt").unlink()
        assert [] == leftovers(docker_engine, run_name)

    def test_files_are_given_back_to_the_host_user(
        self, runtime_image: str, tiny_image: str, tmp_path: Path, run_name: str
    ) -> None:
        """What a docker step writes as the image's root ends up owned by the executor's host uid:gid."""
        step = Step(
            name="dock", provider="docker", image=tiny_image, commands=["mkdir -p d && echo x > d/out.txt"]
        )
        job, _ = make_job(step, tmp_path, run_name)

        with DockerExecutor(runtime_image=runtime_image, user=(4321, 4321)) as ex:
            result = run(ex, job)

        st = (tmp_path / "d" / "out.txt").stat()
        assert (0, 4321, 4321) == (result.exit_code, st.st_uid, st.st_gid)

    def test_entrypoint_replaces_the_shell(
        self, executor: DockerExecutor, tiny_image: str, tmp_path: Path, run_name: str
    ) -> None:
        """An `entrypoint` runs as given; without commands its arguments are the image's only."""
        step = Step(
            name="ep", provider="docker", image=tiny_image, entrypoint=["python3", "-c", "print('ep')"]
        )
        job, lines = make_job(step, tmp_path, run_name)

        assert (0, ["ep"]) == (run(executor, job).exit_code, lines)

    def test_image_cmd_runs_without_commands(
        self, executor: DockerExecutor, tiny_image: str, tmp_path: Path, run_name: str
    ) -> None:
        """With neither commands nor entrypoint the image's own CMD runs."""
        job, lines = make_job(Step(name="cmd", provider="docker", image=tiny_image), tmp_path, run_name)

        assert (0, ["from-cmd"]) == (run(executor, job).exit_code, lines)

    def test_home_dir_is_home(
        self, executor: DockerExecutor, tiny_image: str, tmp_path: Path, run_name: str
    ) -> None:
        """`home_dir` becomes HOME inside the container."""
        step = Step(
            name="h", provider="docker", image=tiny_image, home_dir="/opt/home", commands=["echo $HOME"]
        )
        job, lines = make_job(step, tmp_path, run_name)

        assert (0, ["/opt/home"]) == (run(executor, job).exit_code, lines)

    def test_without_home_dir_a_non_root_images_tilde_is_its_users_home(
        self, runtime_image: str, nonroot_image: str, tmp_path: Path, run_name: str
    ) -> None:
        """With no `home_dir`, `~` is the HOME Docker gives the image's USER (/home/app), not
        /root: a `~/.cache/pip` cache lands where the step writes it and is saved."""
        workdir, cache = tmp_path / "wd", tmp_path / "cache"
        workdir.mkdir()
        cache.mkdir()
        step = Step(
            name="nr",
            provider="docker",
            image=nonroot_image,
            commands=["echo $HOME", "echo c > ~/.cache/pip/c"],
        )
        job, lines = make_job(step, workdir, run_name, mounts={"~/.cache/pip": cache})

        with DockerExecutor(runtime_image=runtime_image, user=(4321, 4321)) as ex:
            result = run(ex, job)

        assert (0, ["/home/app"]) == (result.exit_code, lines)
        assert "c\n" == (cache / "c").read_text()

    @pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "home-cache"])
    @pytest.mark.parametrize("image", ["root", "non-root"])
    def test_a_home_dir_the_image_lacks_is_made_as_the_step_users(
        self,
        runtime_image: str,
        tiny_image: str,
        nonroot_image: str,
        tmp_path: Path,
        run_name: str,
        image: str,
        cache: bool,
    ) -> None:
        """A `home_dir` the image does not have exists when the step starts and is the step
        user's (the image's USER), with or without a `~` cache mount under it."""
        workdir, folder = tmp_path / "wd", tmp_path / "cache"
        workdir.mkdir()
        folder.mkdir()
        step = Step(
            name="h",
            provider="docker",
            image=nonroot_image if image == "non-root" else tiny_image,
            home_dir="/data/home",
            commands=["stat -c '%n %U' ~", "touch ~/t"],
        )
        job, lines = make_job(step, workdir, run_name, mounts={"~/.cache/pip": folder} if cache else {})

        with DockerExecutor(runtime_image=runtime_image, user=(4321, 4321)) as ex:
            result = run(ex, job)

        user = "app" if image == "non-root" else "root"
        assert (0, [f"/data/home {user}"]) == (result.exit_code, lines)

    def test_missing_image_without_registry_fails_before_running(
        self, executor: DockerExecutor, tmp_path: Path, run_name: str, docker_engine: Any
    ) -> None:
        """An image that is neither here nor pullable fails at start, naming the image and the fix."""
        step = Step(name="x", provider="docker", image="127.0.0.1:9/nowhere/none:1", commands=["true"])
        job, _ = make_job(step, tmp_path, run_name)

        with pytest.raises(
            ExecutorUnavailableError, match=r"127\.0\.0\.1:9/nowhere/none:1 .*not on this machine"
        ) as err:
            executor.start(job)

        assert "docker build -t 127.0.0.1:9/nowhere/none:1 ." in (err.value.hint or "")
        assert "docker load -i" in (err.value.hint or "")
        assert "pulling it failed: pulling" not in err.value.message
        assert [] == leftovers(docker_engine, run_name)

    def test_a_mistyped_image_name_asks_whether_the_image_here_was_meant(
        self, executor: DockerExecutor, tiny_image: str, docker_engine: Any
    ) -> None:
        """A missing image whose name is close to one on this machine: the pull failure, one
        line, ends asking whether that one was meant."""
        here = f"127.0.0.1:9/audit/img-{uuid.uuid4().hex[:8]}:1"
        docker_engine.images.get(tiny_image).tag(here)
        step = Step(name="x", provider="docker", image=here.replace("/img-", "/imgg-"), commands=["true"])
        try:
            with pytest.raises(ExecutorUnavailableError) as err:
                executor.check(step)
        finally:
            docker_engine.images.remove(here)

        assert err.value.message.startswith(f"image {step.image} of step 'x' is not on this machine")
        assert err.value.message.endswith(f"; did you mean '{here}'?")
        assert "\n" not in err.value.message

    @pytest.mark.parametrize("host", ["user", "root"])
    def test_a_non_root_image_user_writes_the_workdir_and_the_user_gets_it_back(
        self, runtime_image: str, nonroot_image: str, tmp_path: Path, run_name: str, host: str
    ) -> None:
        """An image whose USER is not root can write its workdir and cache mounts (both are the host
        user's folders), and everything it wrote is the host user's afterwards."""
        uid = os.getuid()
        if host == "root" and uid != 0:
            pytest.skip("needs root to act as the root host user")
        owner = (0, 0) if host == "root" else (uid, os.getgid()) if uid != 0 else (4321, 4321)
        workdir, cache = tmp_path / "wd", tmp_path / "cache"
        workdir.mkdir()
        cache.mkdir()
        (workdir / "code.txt").write_text("code\n")
        for path in (workdir, cache, workdir / "code.txt"):
            os.chown(path, *owner)
        step = Step(
            name="nr",
            provider="docker",
            image=nonroot_image,
            home_dir="/home/app",
            working_dir="src",
            commands=[
                "id -u",
                "mkdir -p out/sub && echo x > out/sub/f",
                "echo more >> ../code.txt",
                "echo c > ~/.cache/x/c && mkdir ~/.cache/other",
            ],
        )
        job, lines = make_job(step, workdir, run_name, mounts={"~/.cache/x": cache})

        with DockerExecutor(runtime_image=runtime_image, user=owner) as ex:
            result = run(ex, job)

        assert (0, ["1234"]) == (result.exit_code, lines)
        written = [workdir / "src/out/sub/f", workdir / "src/out/sub", workdir / "code.txt", cache / "c"]
        assert [owner] * 4 == [(p.stat().st_uid, p.stat().st_gid) for p in written]
        assert "code\nmore\n" == (workdir / "code.txt").read_text()


class TestRuntimeImageSteps:
    def test_env_and_working_dir(self, executor: DockerExecutor, tmp_path: Path, run_name: str) -> None:
        """A bash step sees its env (host-only PATH dropped) and runs in /workflow/<working_dir>."""
        step = Step(name="b", commands=["echo $FOO", "pwd", "command -v python3"], working_dir="src/app")
        job, lines = make_job(step, tmp_path, run_name, env={"FOO": "bar baz", "PATH": "/host/only"})

        result = run(executor, job)

        assert (0, ["bar baz", "/workflow/src/app", "/opt/dstack/bin/python3"]) == (result.exit_code, lines)

    def test_runs_as_the_host_user(self, runtime_image: str, tmp_path: Path, run_name: str) -> None:
        """Bash steps run as the executor's uid:gid with a writable HOME, so their files are the user's."""
        step = Step(name="u", commands=["id -u", "touch ~/ok", "echo x > mine.txt"])
        job, lines = make_job(step, tmp_path, run_name)
        tmp_path.chmod(0o777)

        with DockerExecutor(runtime_image=runtime_image, user=(4321, 4321)) as ex:
            result = run(ex, job)

        assert (0, ["4321"], 4321) == (result.exit_code, lines, (tmp_path / "mine.txt").stat().st_uid)

    def test_a_cache_mount_under_home_leaves_the_rest_of_home_writable(
        self, runtime_image: str, tmp_path: Path, run_name: str
    ) -> None:
        """With ~/.cache/pip mounted, a step running as the host uid still creates ~/.cache/other:
        the folders Docker makes on the way to a mount point are the step user's, not root's."""
        cache = tmp_path / "cache"
        cache.mkdir()
        tmp_path.chmod(0o777)
        cache.chmod(0o777)
        step = Step(
            name="c", commands=["echo x > ~/.cache/pip/f", "mkdir -p ~/.cache/other/deep", "ls -n ~/.cache"]
        )
        job, lines = make_job(step, tmp_path, run_name, mounts={"~/.cache/pip": cache})

        with DockerExecutor(runtime_image=runtime_image, user=(4321, 4321)) as ex:
            result = run(ex, job)

        assert 0 == result.exit_code, lines
        assert "x\n" == (cache / "f").read_text()

    def test_failing_command_stops_the_script(
        self, executor: DockerExecutor, tmp_path: Path, run_name: str
    ) -> None:
        """The first failing command ends the step with its exit code."""
        job, lines = make_job(
            Step(name="f", commands=["echo one", "exit 3", "echo never"]), tmp_path, run_name
        )

        assert (3, ["one"]) == (run(executor, job).exit_code, lines)

    def test_lines_stream_in_order_and_the_last_partial_line_arrives(
        self, executor: DockerExecutor, tmp_path: Path, run_name: str
    ) -> None:
        """Lines arrive in order, stderr merged in, and a last line without newline is not lost.

        stdout and stderr are separate pipes in Docker: their relative order is not kept.
        """
        cmd = "for i in $(seq 1 200); do echo line-$i; done; echo err >&2; printf 'no newline'"
        job, lines = make_job(Step(name="l", commands=[cmd]), tmp_path, run_name)

        result = run(executor, job)

        assert (0, 1) == (result.exit_code, lines.count("err"))
        assert [f"line-{i}" for i in range(1, 201)] + ["no newline"] == [x for x in lines if x != "err"]

    def test_shm_size(self, executor: DockerExecutor, tmp_path: Path, run_name: str) -> None:
        """resources.shm_size sizes /dev/shm."""
        step = Step(name="s", commands=["df -m /dev/shm | tail -1"], resources=Resources(shm_size_mib=300))
        job, lines = make_job(step, tmp_path, run_name)

        assert 0 == run(executor, job).exit_code
        assert "300" == lines[-1].split()[1]

    def test_over_the_memory_limit_is_oom(
        self, executor: DockerExecutor, tmp_path: Path, run_name: str
    ) -> None:
        """A step that allocates past resources.memory ends with oom=True and says so, and how
        to give it more."""
        step = Step(
            name="m",
            commands=["python3 -c 'b = bytearray(400 * 2**20)'"],
            resources=Resources(memory_mib=64),
        )
        job, _ = make_job(step, tmp_path, run_name)

        result = run(executor, job)

        assert (True, "out of memory (limit 64 MiB; raise resources.memory or pass --memory)") == (
            result.oom,
            result.message,
        )
        assert result.exit_code != 0

    def test_port_answers_from_the_host_while_running(
        self, executor: DockerExecutor, tmp_path: Path, run_name: str, docker_engine: Any
    ) -> None:
        """A server on $PORT_0 answers on the host (host networking); stop() ends it and its container."""
        port = free_port()
        (tmp_path / "hello.txt").write_text("hello from the step")
        step = Step(name="web", commands=["python3 -m http.server --bind 127.0.0.1 $PORT_0"])
        job, _ = make_job(step, tmp_path, run_name, env={"PORT_0": str(port)}, ports=[port])
        handle = executor.start(job)
        results: list[StepResult] = []
        waiter = threading.Thread(target=lambda: results.append(executor.wait(handle)))
        waiter.start()

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=1) as resp:
                    return bool(resp.read() == b"hello from the step")
            except OSError:
                return False

        try:
            assert poll(answers)
        finally:
            executor.stop(handle, grace=5)
            waiter.join(30)

        assert (True, -15) == (results[0].stopped, results[0].exit_code)
        assert [] == leftovers(docker_engine, run_name)


class TestStopAndCleanup:
    @pytest.mark.parametrize(("grace", "code"), [(5, -15), (0, -9)], ids=["sigterm", "kill"])
    def test_stop_ends_the_step_promptly_and_leaves_no_container(
        self,
        executor: DockerExecutor,
        tmp_path: Path,
        run_name: str,
        docker_engine: Any,
        grace: float,
        code: int,
    ) -> None:
        """stop() reaches bash's children at once (init + process group); 0 kills."""
        job, lines = make_job(Step(name="z", commands=["echo up", "sleep 60"]), tmp_path, run_name)
        handle = executor.start(job)
        results: list[StepResult] = []
        waiter = threading.Thread(target=lambda: results.append(executor.wait(handle)))
        waiter.start()
        assert poll(lambda: lines == ["up"])
        began = time.monotonic()

        executor.stop(handle, grace=grace)
        waiter.join(30)

        assert time.monotonic() - began < 4
        assert (True, code) == (results[0].stopped, results[0].exit_code)
        assert [] == leftovers(docker_engine, run_name)

    def test_stop_without_wait_removes_the_container(
        self, executor: DockerExecutor, tmp_path: Path, run_name: str, docker_engine: Any
    ) -> None:
        """An abort when nobody waits (the driving thread is gone) still removes the container."""
        job, _ = make_job(Step(name="z", commands=["sleep 60"]), tmp_path, run_name)
        handle = executor.start(job)

        executor.stop(handle, grace=0)

        assert [] == leftovers(docker_engine, run_name)

    def test_stop_by_identifier_from_anywhere(
        self, executor: DockerExecutor, tmp_path: Path, run_name: str, docker_engine: Any
    ) -> None:
        """Handle.identifier (docker:<id>) is enough to stop and remove the step."""
        job, _ = make_job(Step(name="z", commands=["sleep 60"]), tmp_path, run_name)
        handle = executor.start(job)

        stop_by_identifier(handle.identifier, grace=0, client=docker_engine)

        assert [] == leftovers(docker_engine, run_name)

    def test_cleanup_removes_containers_of_finished_runs_only(
        self, executor: DockerExecutor, tmp_path: Path, docker_engine: Any
    ) -> None:
        """cleanup_containers removes what belongs to runs the predicate calls finished."""
        dead, alive = f"dead-{os.getpid()}-{time.time_ns()}", f"alive-{os.getpid()}-{time.time_ns()}"
        handles = [
            executor.start(make_job(Step(name="z", commands=["sleep 60"]), tmp_path, r)[0])
            for r in (dead, alive)
        ]
        try:
            removed = cleanup_containers(lambda run: run == dead, client=docker_engine)

            assert [handles[0].identifier] == [f"docker:{cid}" for cid in removed]
            assert [] == list_step_containers(run_name=dead, client=docker_engine)
            assert 1 == len(list_step_containers(run_name=alive, client=docker_engine))
        finally:
            for h in handles:
                executor.stop(h, grace=0)


class TestCheck:
    def test_gpu_step_without_nvidia_runtime_fails_before_running(self, executor: DockerExecutor) -> None:
        """On an engine without the NVIDIA runtime a GPU step fails in check(), saying how to fix it."""
        step = Step(name="train", commands=["nvidia-smi"], resources=Resources(gpu=GpuRequest(count=1)))

        with pytest.raises(ExecutorUnavailableError, match="no NVIDIA runtime") as err:
            executor.check(step)

        assert "nvidia-container-toolkit" in (err.value.hint or "")

    @pytest.mark.parametrize("form", ["APP", "APP:LOCAL"])
    def test_a_port_in_use_on_this_machine_is_refused_before_running(
        self, executor: DockerExecutor, form: str
    ) -> None:
        """A fixed port (the app's own on host networking, or the local one of "APP:LOCAL") that
        something on this machine already listens on fails in check(), naming it and the fix."""
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            spec = PortSpec(port=port) if form == "APP" else PortSpec(port=free_port(), local_port=port)
            step = Step(name="web", commands=["true"], ports=[spec])

            with pytest.raises(
                ResourcesUnavailableError, match=f"port {port} of step 'web' is in use on this machine"
            ) as err:
                executor.check(step)

        assert "ports:" in (err.value.hint or "")

    @pytest.mark.parametrize("home_dir", ["app", "~/x"])
    def test_a_home_dir_that_is_not_absolute_is_refused_before_running(
        self, executor: DockerExecutor, tiny_image: str, home_dir: str
    ) -> None:
        """`home_dir` is a path in the container: a relative one fails in check() with an
        example, instead of Docker's "invalid mount path" (or a HOME of "~/x") at run time."""
        step = Step(name="h", provider="docker", image=tiny_image, home_dir=home_dir, commands=["true"])

        with pytest.raises(
            ExecutionError, match=f"home_dir of step 'h' must be an absolute path, not '{home_dir}'"
        ) as err:
            executor.check(step)

        assert "/home/app" in (err.value.hint or "")

    def test_an_image_name_docker_cannot_parse_is_refused_before_running(
        self, executor: DockerExecutor
    ) -> None:
        """`image: UPPER/Case:tag` fails in check() with Docker's reason and the name's form,
        instead of failing the run at its start ("looking up image ...: no such image")."""
        step = Step(name="i", provider="docker", image="UPPER/Case:tag", commands=["true"])

        with pytest.raises(
            ExecutionError, match=r"image 'UPPER/Case:tag' of step 'i' is not a valid image name: .*lowercase"
        ) as err:
            executor.check(step)

        assert "[REGISTRY/]NAME[:TAG]" in (err.value.hint or "")

    def test_more_cpus_than_the_engine_has(self, executor: DockerExecutor) -> None:
        """A step asking for more CPUs than the engine has fails in check()."""
        with pytest.raises(ResourcesUnavailableError, match="4096 CPUs"):
            executor.check(Step(name="big", commands=["true"], resources=Resources(cpu=4096)))

    def test_missing_runtime_image(self, docker_engine: Any) -> None:
        """A runtime image that is not built fails in check() with the command that builds it."""
        with (
            DockerExecutor(runtime_image="dstack-prefect/runtime:nope") as ex,
            pytest.raises(ExecutorUnavailableError, match="runtime image dstack-prefect/runtime:nope") as err,
        ):
            ex.check(Step(name="b", commands=["true"]))

        assert "dstack image build" in (err.value.hint or "")

    def test_a_missing_runtime_image_for_the_steps_python_says_the_build_that_makes_it(
        self, docker_engine: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`python: 3.10` with no such runtime image names the build that makes it (not the 3.11
        default; --slim, as a full image needs 3.11+) and what that build needs without a registry."""
        monkeypatch.delenv("DSTACK_RUNTIME_IMAGE", raising=False)

        with (
            DockerExecutor() as ex,
            pytest.raises(ExecutorUnavailableError, match=r"runtime:\S+-py3\.10-slim for step 'b'") as err,
        ):
            ex.check(Step(name="b", commands=["true"], python="3.10"))

        hint = err.value.hint or ""
        assert "`dstack image build --python 3.10 --slim`" in hint
        assert "--base" in hint

    def test_a_slim_runtime_image_serves_a_python_without_a_full_one(
        self,
        docker_engine: Any,
        runtime_image: str,
        tmp_path: Path,
        run_name: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """`python: 3.8`, with only the slim runtime image for 3.8 on the engine (what the hint's
        `dstack image build --python 3.8 --slim` makes; a full one cannot have 3.8), runs there."""
        monkeypatch.delenv("DSTACK_RUNTIME_IMAGE", raising=False)
        tag = runtime_tag("3.8", slim=True)
        ctx, workdir = tmp_path / "ctx", tmp_path / "wd"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {runtime_image}\nLABEL dstack.python=3.8\n")
        docker_engine.images.build(path=str(ctx), tag=tag, rm=True, network_mode="host")
        step = Step(name="old", commands=["echo in-slim"], python="3.8")
        job, lines = make_job(step, workdir, run_name)
        try:
            with DockerExecutor() as ex:
                result = run(ex, job)
        finally:
            docker_engine.images.remove(tag)

        assert (0, ["in-slim"]) == (result.exit_code, lines)

    def test_a_runtime_image_with_another_python_is_refused(
        self, docker_engine: Any, runtime_image: str, tmp_path: Path
    ) -> None:
        """A step's `python: 3.10` does not silently run in a 3.11 runtime image named by
        DSTACK_RUNTIME_IMAGE: the image's dstack.python label says its Python."""
        (tmp_path / "Dockerfile").write_text(f"FROM {runtime_image}\nLABEL dstack.python=3.11\n")
        tag = "dstack-prefect/test-labelled:3.11"
        docker_engine.images.build(path=str(tmp_path), tag=tag, rm=True, network_mode="host")

        with DockerExecutor(runtime_image=tag) as ex:
            ex.check(Step(name="same", commands=["true"], python="3.11"))
            ex.check(Step(name="any", commands=["true"]))
            with pytest.raises(
                ExecutorUnavailableError, match=r"asks for Python 3\.10, but runtime image"
            ) as err:
                ex.check(Step(name="b", commands=["true"], python="3.10"))

        assert "-py3.10-slim (`dstack image build --python 3.10 --slim`" in (err.value.hint or "")
