"""GPUs on the local executor: detection with nvidia-smi, checks, CUDA_VISIBLE_DEVICES.

These machines have no GPU, so tests/fakes/nvidia-smi stands in for the driver's tool: it
reports two Tesla T4 cards. Everything after detection (checks, hand-out, env) is real.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, Server

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


def env_with_fake_gpus(server: Server, home: Path) -> dict[str, str]:
    env = server.env(home)
    env["PATH"] = f"{FAKES}:{env['PATH']}"
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
