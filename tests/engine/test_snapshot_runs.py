"""The code snapshot as `dstack run` and `dstack plan` see it (end to end, real server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CLI, write_tree

pytestmark = pytest.mark.service("prefect")

WORKFLOW = """
workflows:
  - name: show
    provider: bash
    commands:
      - cat data/rows.csv
      - readlink dangling
"""


def test_links_reach_what_they_reach_in_the_repo_and_plan_agrees_with_the_run(
    cli: CLI, make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """A relative link out of the repo (`data -> ../data`) reads the same files in the step,
    and after a run `plan` predicts reuse (it said "code changed (data)": the run hashed the
    step's copy, where that link led nowhere)."""
    write_tree(tmp_path / "data", {"rows.csv": "1,2,3\n"})
    repo = make_repo({".dstack/workflows.yaml": WORKFLOW})
    (repo / "data").symlink_to("../data")
    (repo / "dangling").symlink_to("nowhere")

    ran = cli("run", "show", cwd=repo)
    planned = cli("plan", "show", "--json", cwd=repo)

    assert ran.code == 0, ran.text
    assert "1,2,3\nnowhere\n" in ran.out
    assert planned.code == 0, planned.text
    assert "reuse" == planned.json()["decisions"]["show"]["action"]
