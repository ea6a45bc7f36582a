"""GPUs on the local executor: detection with nvidia-smi, checks, CUDA_VISIBLE_DEVICES.

These machines have no GPU, so tests/fakes/nvidia-smi stands in for the driver's tool: it
reports two Tesla T4 cards, or the cards FAKE_GPUS names, or fails as FAKE_NVIDIA_SMI_EXIT and
FAKE_NVIDIA_SMI_OUTPUT say. Everything after detection (checks, hand-out, env) is real.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI, run_row
from tests.conftest import CLI, Server, run_through_the_api

pytestmark = pytest.mark.service("prefect")

FAKES = Path(__file__).resolve().parents[1] / "fakes"

GPU_FLOW = """
workflows:
  - name: left
    provider: bash
    resources: {gpu: 1}
    commands:
      - echo "left sees [$CUDA_VISIBLE_DEVICES]"
      - sleep 1
  - name: right
    provider: bash
    resources: {gpu: 1}
    commands:
      - echo "right sees [$CUDA_VISIBLE_DEVICES]"
      - sleep 1
  - name: both
    provider: bash
    deps: [left, right]
    commands:
      - echo "both sees [$CUDA_VISIBLE_DEVICES]"
  - name: a100
    provider: bash
    resources:
      gpu: {name: A100}
    commands: [nvidia-smi -L]
"""


MISMATCH = "Driver/library version mismatch"
A100S_AND_T4 = "NVIDIA A100-SXM4-80GB:81920,NVIDIA A100-SXM4-80GB:81920,Tesla T4:15360"

PICKS_FLOW = """
workflows:
  - name: lower
    provider: bash
    resources: {gpu: {name: a100}}
    commands: ['echo "lower sees [$CUDA_VISIBLE_DEVICES]"']
  - name: sixteen
    provider: bash
    resources: {gpu: {memory: 16GB}}
    commands: ['echo "sixteen sees [$CUDA_VISIBLE_DEVICES]"']
  - name: big
    provider: bash
    resources: {gpu: {name: A100, memory: 80GB, count: 2}}
    commands: ['echo "big sees [$CUDA_VISIBLE_DEVICES]"']
  - name: pair
    provider: bash
    resources: {gpu: 2}
    commands:
      - echo "pair starts $(date +%s%N) [$CUDA_VISIBLE_DEVICES]"
      - sleep 1
      - echo "pair ends $(date +%s%N)"
  - name: twin
    provider: bash
    resources: {gpu: 2}
    commands:
      - echo "twin starts $(date +%s%N) [$CUDA_VISIBLE_DEVICES]"
      - sleep 1
      - echo "twin ends $(date +%s%N)"
  - name: pairs
    provider: bash
    deps: [pair, twin]
    commands: [echo both pairs done]
  - name: three
    provider: bash
    resources: {gpu: {name: A100, count: 3}}
    commands: [echo three ran]
  - name: cpu
    provider: bash
    resources: {interruptible: true}
    commands: [echo cpu ran]
"""


def env_with_fake_gpus(server: Server, home: Path, **fake: str) -> dict[str, str]:
    env = server.env(home)
    env["PATH"] = f"{FAKES}:{env['PATH']}"
    env.update(fake)
    return env


def test_parallel_gpu_steps_never_share_a_gpu(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """Two one-GPU steps running together get different CUDA_VISIBLE_DEVICES; a CPU step gets none."""
    repo = make_repo({".dstack/workflows.yaml": GPU_FLOW})

    res = cli("run", "both", cwd=repo, env=env_with_fake_gpus(prefect_server, dstack_home))

    assert res.code == 0, res.text
    seen = dict(re.findall(r"(left|right|both) sees \[([^\]]*)\]", res.out))
    assert sorted([seen["left"], seen["right"]]) == ["0", "1"]
    assert seen["both"] == ""


def test_a_gpu_name_the_machine_lacks_fails_before_running(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """Asking for an A100 on a T4 machine names both, and nothing runs."""
    repo = make_repo({".dstack/workflows.yaml": GPU_FLOW})

    res = cli("run", "a100", cwd=repo, env=env_with_fake_gpus(prefect_server, dstack_home))

    assert res.code == 1
    assert "asks for 1 GPU named A100" in res.err
    assert "Tesla T4 15360 MiB" in res.err


def test_a_gpu_step_on_a_gpu_less_machine_fails_before_running(cli: CLI, make_repo: Any) -> None:
    """Without nvidia-smi there is no GPU, and a gpu: 1 step is refused up front."""
    repo = make_repo({".dstack/workflows.yaml": GPU_FLOW})

    res = cli("run", "left", cwd=repo)

    assert res.code == 1
    assert "asks for 1 GPU" in res.err and "no GPU" in res.err


def test_gpus_match_by_name_in_any_case_and_by_memory_the_smallest_first(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """On two A100 80GB and a T4 16GB: `a100` takes an A100; 16GB (decimal, 15259 MiB) takes the
    T4, the smallest card that has it, so the A100s stay free; 2 A100s of 80GB take both."""
    repo = make_repo({".dstack/workflows.yaml": PICKS_FLOW})
    env = env_with_fake_gpus(prefect_server, dstack_home, FAKE_GPUS=A100S_AND_T4)

    seen: dict[str, str] = {}
    for name in ("lower", "sixteen", "big"):
        res = cli("run", name, cwd=repo, env=env)
        assert res.code == 0, res.text
        seen.update(re.findall(r"(\w+) sees \[([^\]]*)\]", res.out))

    assert seen == {"lower": "0", "sixteen": "2", "big": "0,1"}


def test_steps_wait_for_gpus_another_step_holds(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """Two independent gpu: 2 steps on a two-GPU machine run one after the other, each with both."""
    repo = make_repo({".dstack/workflows.yaml": PICKS_FLOW})

    res = cli("run", "pairs", cwd=repo, env=env_with_fake_gpus(prefect_server, dstack_home))

    assert res.code == 0, res.text
    times = {f"{s} {e}": int(t) for s, e, t in re.findall(r"(pair|twin) (starts|ends) (\d+)", res.out)}
    assert re.findall(r"(?:pair|twin) starts \d+ \[([^\]]*)\]", res.out) == ["0,1", "0,1"]
    first, second = sorted(("pair", "twin"), key=lambda s: times[f"{s} starts"])
    assert times[f"{first} ends"] <= times[f"{second} starts"]


def test_three_a100s_on_a_two_a100_machine_are_refused_naming_what_it_has(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """The refusal names the ask and the machine's cards, says what to do, and runs nothing."""
    repo = make_repo({".dstack/workflows.yaml": PICKS_FLOW})
    env = env_with_fake_gpus(prefect_server, dstack_home, FAKE_GPUS=A100S_AND_T4)

    res = cli("run", "three", cwd=repo, env=env)

    assert res.code == 1
    lines = res.err.splitlines()
    assert lines[0].startswith("error: step 'three' asks for 3 GPUs named A100; this machine has ")
    assert lines[0].endswith(
        ", NVIDIA A100-SXM4-80GB 81920 MiB, NVIDIA A100-SXM4-80GB 81920 MiB, Tesla T4 15360 MiB"
    )
    assert lines[1] == (
        "hint: lower the step's resources (or --cpu, --memory, --gpu, --gpu-name, --gpu-memory), "
        "or run it on a machine that has them: steps run on the machine that runs `dstack run`"
    )
    assert "three ran" not in res.out and "Traceback" not in res.text


@pytest.mark.parametrize(
    ("fake", "why"),
    [
        (
            {"FAKE_NVIDIA_SMI_EXIT": "9", "FAKE_NVIDIA_SMI_OUTPUT": f"Failed to initialize NVML: {MISMATCH}"},
            f"no GPU (nvidia-smi failed, exit code 9: Failed to initialize NVML: {MISMATCH})",
        ),
        (
            {"FAKE_NVIDIA_SMI_OUTPUT": "garbage, not csv"},
            "no GPU (nvidia-smi listed no GPU: garbage, not csv)",
        ),
    ],
    ids=["driver-mismatch", "garbage"],
)
def test_a_broken_nvidia_smi_is_named_where_a_gpu_step_is_refused(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path, fake: dict[str, str], why: str
) -> None:
    """An nvidia-smi that fails or prints no GPU list counts as no GPU, and the refusal says what
    nvidia-smi said (a driver to fix, not a missing card); a CPU step still runs."""
    repo = make_repo({".dstack/workflows.yaml": GPU_FLOW + PICKS_FLOW.removeprefix("\nworkflows:\n")})
    env = env_with_fake_gpus(prefect_server, dstack_home, **fake)

    refused = cli("run", "left", cwd=repo, env=env)
    ran = cli("run", "cpu", cwd=repo, env=env)

    assert refused.code == 1
    assert refused.err.splitlines()[0].endswith(why)
    assert "Traceback" not in refused.text
    assert ran.code == 0, ran.text
    assert "cpu ran" in ran.out


def test_interruptible_says_it_is_ignored_on_this_machine(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """interruptible (spot capacity) has no meaning for a step run here: a warning, and it runs."""
    repo = make_repo({".dstack/workflows.yaml": PICKS_FLOW})

    res = cli("run", "cpu", cwd=repo)

    assert res.code == 0, res.text
    assert (
        "warning: cpu: interruptible (spot capacity) does not apply to steps run on this machine; ignored"
        in res.err
    )
    assert "cpu ran" in res.out


def three_gpus_in_a_container(make_repo: Any, docker_engine: Any, tiny_image: str) -> Path:
    """A repo whose step `three` asks for 3 GPUs in a container, on an engine that hands out GPUs
    (the fake NVIDIA hook; skipped where the engine is on another machine)."""
    if docker_engine.info().get("Name") != os.uname().nodename:
        pytest.skip("the Docker engine is on another machine: a hook here says nothing about it")
    flow = f"""
workflows:
  - name: three
    provider: docker
    image: {tiny_image}
    resources: {{gpu: 3}}
    commands: [echo three ran]
"""
    repo: Path = make_repo({".dstack/workflows.yaml": flow})
    return repo


def test_a_container_step_asking_more_gpus_than_nvidia_smi_lists_is_refused(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path, docker_engine: Any, tiny_image: str
) -> None:
    """GPUs go to container steps from nvidia-smi's list too: on an engine that hands out GPUs (the
    fake NVIDIA hook), gpu: 3 on two T4s is refused before running (it waited forever, Running)."""
    repo = three_gpus_in_a_container(make_repo, docker_engine, tiny_image)

    res = cli("run", "three", cwd=repo, env=env_with_fake_gpus(prefect_server, dstack_home), timeout=60)

    assert res.code == 1, res.text
    first = res.err.splitlines()[0]
    assert first.startswith("error: step 'three' asks for 3 GPUs; this machine has ")
    assert first.endswith(", Tesla T4 15360 MiB, Tesla T4 15360 MiB")
    assert "three ran" not in res.out


def test_a_run_started_through_the_api_refuses_more_gpus_than_nvidia_smi_lists(
    make_repo: Any,
    prefect_server: Server,
    dstack_home: Path,
    docker_engine: Any,
    tiny_image: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Started as a worker would (no `dstack run` checks first), the same step ends the run failed
    with the refusal before any task run, instead of leaving it Running for ever."""
    repo = three_gpus_in_a_container(make_repo, docker_engine, tiny_image)
    monkeypatch.setenv("PATH", f"{FAKES}:{os.environ['PATH']}")

    with PrefectAPI(prefect_server.url) as api:
        fr = run_through_the_api(api, prefect_server, dstack_home, repo, "three", name="three-gpus-1")
        run = api.flow_run(fr["id"]) or {}

        assert run_row(run).status == "failed"
        said = str((run.get("state") or {}).get("message"))
        assert "step 'three' asks for 3 GPUs; this machine has " in said
        assert api.task_runs(fr["id"]) == []
