"""Workflow files written by old dstack's authors (dstackai/dstack-examples, 2023-05), run as
their users ran them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI

pytestmark = pytest.mark.service("prefect")

DEPS_YAML = """\
workflows:
  - name: cat-txt
    provider: bash
    deps:
      - tag: txt-file
    commands:
      - cat output/hello.txt
"""


@pytest.fixture
def deps_repo(make_repo: Any) -> Path:
    """A repo holding the example's deps.yaml (2023-05-12, blob 2f2d6c9), its first workflow."""
    return make_repo({".dstack/workflows/deps.yaml": DEPS_YAML})


def test_a_missing_tag_given_with_dep_names_the_option_not_the_file(cli: CLI, deps_repo: Path) -> None:
    """`--dep :nope` replaces the YAML's deps: plan and run blame the option, as they do for
    `--dep nope` (an unknown workflow), not the workflow's file:line, which names no such tag."""
    planned = cli("plan", "cat-txt", "--dep", ":nope", cwd=deps_repo)
    ran = cli("run", "cat-txt", "--dep", ":nope", cwd=deps_repo)

    for res in (planned, ran):
        assert res.code == 1
        assert "error: --dep: workflow 'cat-txt' depends on the tag 'nope', not in" in res.err, res.err
        assert "deps.yaml" not in res.err
        assert "dstack tags add nope RUN" in res.err
    assert "RUN" not in ran.out
