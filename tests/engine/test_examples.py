"""The repo's own example workflows (.dstack/workflows/examples.yaml), as the README's quick
start runs them: `dstack run evaluate` in a checkout of this repo."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI

pytestmark = pytest.mark.service("prefect")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkout(make_repo: Any) -> Path:
    """A git repo holding what a checkout of this repo holds for the examples."""
    files = {
        str(path.relative_to(ROOT)): path.read_text()
        for folder in (ROOT / ".dstack" / "workflows", ROOT / "examples")
        for path in sorted(folder.iterdir())
        if path.is_file()
    }
    files["README.md"] = (ROOT / "README.md").read_text()
    return make_repo(files)


def test_the_quick_start_chain_runs_then_is_reused(cli: CLI, checkout: Path) -> None:
    """prep -> train -> evaluate prints an accuracy and ends Done; run again, every step is
    reused; an edit of the README (outside every step's inputs) reruns nothing."""
    first = cli("run", "evaluate", cwd=checkout)
    second = cli("run", "evaluate", cwd=checkout)
    (checkout / "README.md").write_text("edited\n")
    plan = cli("plan", "evaluate", cwd=checkout)

    assert first.code == 0, first.text
    assert re.search(r"^evaluate \| accuracy: 0\.\d+ on 400 rows$", first.out, re.M), first.out
    assert first.out.rstrip().endswith("Done")
    assert second.code == 0, second.text
    assert "Done: every step reused, nothing ran" in second.out
    assert plan.code == 0, plan.text
    reused = re.findall(r"^\d\. (\S+)\s+bash\s+reuse \S+ \(same inputs\)$", plan.out, re.M)
    assert reused == ["prep", "train", "evaluate"], plan.out


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None, reason="this machine has a GPU: see examples/gpu_check.sh"
)
def test_the_gpu_example_is_refused_before_running_on_a_machine_without_one(cli: CLI, checkout: Path) -> None:
    """`dstack run gpu-check` on a machine with no GPU says what it asked and what is there."""
    res = cli("run", "gpu-check", cwd=checkout)

    assert res.code == 1
    assert "step 'gpu-check' asks for 1 GPU; this machine has" in res.err
    assert "no GPU" in res.err
