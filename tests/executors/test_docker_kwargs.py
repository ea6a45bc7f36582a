"""container_kwargs: what DockerExecutor asks the engine for, checked without an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.executors import StepJob
from dstack_prefect.executors._docker_spec import container_kwargs, home_id, runtime_image_hint, step_command
from dstack_prefect.graph import Step
from dstack_prefect.graph._plan import GpuRequest, PortSpec, Resources


def job(step: Step, **kw: Any) -> StepJob:
    env = kw.pop("env", {})
    return StepJob(run_name="r1", step=step, workdir=Path("/tmp/wd"), env=env, on_line=print, **kw)


class TestGpu:
    def test_count_becomes_a_device_request(self) -> None:
        """A GPU count with no assigned GPUs asks the nvidia driver for that many."""
        step = Step(name="t", commands=["nvidia-smi"], resources=Resources(gpu=GpuRequest(count=2)))

        kwargs = container_kwargs(job(step), image="img")

        assert [{"driver": "nvidia", "count": 2, "capabilities": [["gpu"]]}] == kwargs["device_requests"]

    def test_assigned_gpus_become_device_ids(self) -> None:
        """GPUs the engine assigned are passed by id; the host's CUDA_VISIBLE_DEVICES is dropped."""
        step = Step(name="t", commands=["nvidia-smi"], resources=Resources(gpu=GpuRequest(count=2)))

        kwargs = container_kwargs(
            job(step, gpus=["1", "3"], env={"CUDA_VISIBLE_DEVICES": "1,3"}), image="img"
        )

        assert [{"driver": "nvidia", "device_ids": ["1", "3"], "capabilities": [["gpu"]]}] == kwargs[
            "device_requests"
        ]
        assert "CUDA_VISIBLE_DEVICES" not in kwargs["environment"]

    def test_gpu_step_uses_the_cuda_runtime_image(self) -> None:
        """A bash step with a GPU runs in the -cuda runtime image by default."""
        step = Step(name="t", commands=["true"], python="3.11", resources=Resources(gpu=GpuRequest(count=1)))

        assert container_kwargs(job(step))["image"].endswith("-py3.11-cuda")

    def test_no_gpu_no_device_request(self) -> None:
        """Steps without a GPU send no device request."""
        assert "device_requests" not in container_kwargs(job(Step(name="t", commands=["true"])), image="img")


class TestLimitsAndLayout:
    def test_resources_become_limits_without_swap(self) -> None:
        """memory is the limit with swap equal to it; cpu a nano-CPU quota; shm_size /dev/shm."""
        step = Step(name="t", commands=["true"], resources=Resources(cpu=2, memory_mib=512, shm_size_mib=64))

        kwargs = container_kwargs(job(step), image="img")

        expected = {
            "mem_limit": "512m",
            "memswap_limit": "512m",
            "nano_cpus": 2_000_000_000,
            "shm_size": "64m",
        }
        assert expected == {k: kwargs[k] for k in expected}

    def test_workdir_labels_network_init(self) -> None:
        """The workdir is /workflow, labels name run, step and home, host network, init on."""
        step = Step(name="train", commands=["true"], working_dir="src/")

        kwargs = container_kwargs(
            job(step, labels={"dstack.owner": "me"}), image="img", user=(1000, 1000), home="h1"
        )

        assert {
            "working_dir": "/workflow/src",
            "volumes": {"/tmp/wd": {"bind": "/workflow", "mode": "rw"}},
            "labels": {"dstack.owner": "me", "dstack.run": "r1", "dstack.step": "train", "dstack.home": "h1"},
            "network_mode": "host",
            "init": True,
            "user": "1000:1000",
        } == {k: kwargs[k] for k in ("working_dir", "volumes", "labels", "network_mode", "init", "user")}
        assert "/tmp/home" == kwargs["environment"]["HOME"]

    def test_other_network_modes_publish_ports_on_loopback(self) -> None:
        """Off host networking, job.ports are published on 127.0.0.1 under the same numbers."""
        kwargs = container_kwargs(
            job(Step(name="t", commands=["true"]), ports=[3001]), image="img", network_mode="bridge"
        )

        assert {"3001/tcp": ("127.0.0.1", 3001)} == kwargs["ports"]

    def test_cache_mounts_land_in_the_containers_home_or_at_their_absolute_path(self) -> None:
        """`~/.cache/pip` goes under the HOME the container gets (/tmp/home for a non-root user,
        the step's home_dir for an image); an absolute cache path is mounted as is."""
        mounts = {"~/.cache/pip": Path("/h/pip"), "/opt/cache": Path("/h/opt")}
        runtime = container_kwargs(
            job(Step(name="t", commands=["true"]), mounts=mounts), image="i", user=(1000, 1000)
        )
        image_step = Step(name="t", provider="docker", image="i", commands=["true"], home_dir="/home/me")
        in_image = container_kwargs(job(image_step, mounts={"~/.cache/pip": Path("/h/pip")}))

        assert runtime["volumes"]["/h/pip"] == {"bind": "/tmp/home/.cache/pip", "mode": "rw"}
        assert runtime["volumes"]["/h/opt"] == {"bind": "/opt/cache", "mode": "rw"}
        assert in_image["volumes"]["/h/pip"] == {"bind": "/home/me/.cache/pip", "mode": "rw"}

    def test_an_app_local_mapping_publishes_the_app_port_at_the_local_one(self) -> None:
        """`ports: ["8000:3001", 9000]` off host networking: 8000 at 127.0.0.1:3001, 9000 as is."""
        step = Step(
            name="t", commands=["true"], ports=[PortSpec(port=8000, local_port=3001), PortSpec(port=9000)]
        )

        kwargs = container_kwargs(job(step, ports=[8000, 9000]), image="img", network_mode="bridge")

        assert {"8000/tcp": ("127.0.0.1", 3001), "9000/tcp": ("127.0.0.1", 9000)} == kwargs["ports"]


class TestHomeLabel:
    def test_the_home_label_is_the_id_of_this_processs_dstack_home(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """Without ``home``, a container is labelled dstack.home with the id of $DSTACK_HOME."""
        monkeypatch.setenv("DSTACK_HOME", str(tmp_path))

        kwargs = container_kwargs(job(Step(name="t", commands=["true"])), image="img")

        assert home_id(tmp_path) == kwargs["labels"]["dstack.home"]

    def test_a_job_label_cannot_claim_another_home(self) -> None:
        """The executor's home wins over a dstack.home in the job's own labels."""
        kwargs = container_kwargs(
            job(Step(name="t", commands=["true"]), labels={"dstack.home": "theirs"}), image="img", home="mine"
        )

        assert "mine" == kwargs["labels"]["dstack.home"]

    def test_one_home_has_one_id_however_its_path_is_spelled(self, tmp_path: Path) -> None:
        """A home reached through a symlink, a trailing slash or a str has the id of its real path."""
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")

        ids = {home_id(tmp_path / "real"), home_id(tmp_path / "link"), home_id(f"{tmp_path}/real/")}

        assert {home_id(tmp_path / "real")} == ids

    def test_two_homes_have_two_ids(self, tmp_path: Path) -> None:
        """Different dstack homes get different short ids."""
        ids = [home_id(tmp_path / "a"), home_id(tmp_path / "b")]

        assert [16, 16] == [len(i) for i in ids]
        assert ids[0] != ids[1]


class TestCommand:
    @pytest.mark.parametrize(
        ("step", "expected"),
        [
            (
                Step(name="d", provider="docker", image="i", commands=["a", "b c"]),
                (["/bin/sh", "-c"], ["a && b c"]),
            ),
            (
                Step(name="d", provider="docker", image="i", entrypoint=["python"], commands=["x.py"]),
                (["python"], ["x.py"]),
            ),
            (
                Step(name="d", provider="docker", image="i", entrypoint=["python", "-V"]),
                (["python", "-V"], None),
            ),
            (Step(name="d", provider="docker", image="i"), (None, None)),
        ],
        ids=["commands", "entrypoint+commands", "entrypoint", "image-default"],
    )
    def test_docker_provider(self, step: Step, expected: tuple[object, object]) -> None:
        """docker steps: /bin/sh -c of the joined commands, the user's entrypoint, or the image's own."""
        assert expected == step_command(step)

    def test_bash_provider_runs_the_local_script(self) -> None:
        """bash steps run the local executor's script under bash -c."""
        entrypoint, command = step_command(Step(name="b", setup=["s"], commands=["c"]))

        assert (["bash", "-c", "set -e; s\nc\n"], []) == (entrypoint[:3], command)  # type: ignore[index]


class TestRuntimeImageHint:
    @pytest.mark.parametrize(
        ("python", "gpu", "build"),
        [
            (None, None, "`dstack image build` (its base python:3.11-slim-bookworm needs registry access"),
            ("3.10", None, "`dstack image build --python 3.10 --slim` (its base python:3.10-slim-bookworm"),
            ("3.12", GpuRequest(count=1), "`dstack image build --python 3.12 --cuda` (its base nvidia/cuda"),
        ],
        ids=["default", "python", "cuda"],
    )
    def test_the_hint_is_the_build_that_makes_the_missing_tag(
        self, python: str | None, gpu: GpuRequest | None, build: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The hint for a missing default runtime image builds that tag: the step's python and cuda."""
        monkeypatch.delenv("DSTACK_RUNTIME_IMAGE", raising=False)
        monkeypatch.delenv("DSTACK_CUDA_RUNTIME_IMAGE", raising=False)
        step = Step(name="t", commands=["true"], python=python, resources=Resources(gpu=gpu))

        assert build in runtime_image_hint(step, container_kwargs(job(step))["image"])

    def test_an_image_named_by_the_variable_is_built_or_tagged_by_the_user(self) -> None:
        """A missing image named by DSTACK_RUNTIME_IMAGE is not what `dstack image build` makes: say so."""
        hint = runtime_image_hint(Step(name="t", commands=["true"]), "my/runtime:1")

        assert "build or tag my/runtime:1 on this engine, or unset DSTACK_RUNTIME_IMAGE" in hint
