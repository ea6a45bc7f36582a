"""`dstack ps` and `dstack logs` as a user reads them: a run name not quite right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI

pytestmark = pytest.mark.service("prefect")

WORKFLOWS = """
workflows:
  - name: hello
    provider: bash
    commands:
      - echo hi
  - name: boom
    provider: bash
    commands:
      - echo about to fail
      - exit 3
"""


@pytest.fixture
def repo(make_repo: Any) -> Path:
    return Path(make_repo({".dstack/workflows.yaml": WORKFLOWS}))


class TestUnknownRun:
    """A run name that names no run is answered with the names it may have meant."""

    def test_the_start_of_a_name(self, cli: CLI, repo: Path) -> None:
        """`dstack logs tidy-heron` (the name without its number) names the run it starts."""
        assert 0 == cli("run", "hello", "--name", "tidy-heron-1", cwd=repo).code

        res = cli("logs", "tidy-heron", cwd=repo)

        assert 1 == res.code
        assert (
            "error: there is no run named 'tidy-heron'\n"
            "hint: did you mean 'tidy-heron-1'? `dstack ps -a` lists runs\n"
        ) == res.err

    def test_a_typo(self, cli: CLI, repo: Path) -> None:
        """A misspelt name gets the closest run name."""
        assert 0 == cli("run", "hello", "--name", "lanky-walrus-1", cwd=repo).code

        res = cli("ps", "lanky-walros-1", cwd=repo)

        assert 1 == res.code
        assert "hint: did you mean 'lanky-walrus-1'? `dstack ps -a` lists runs\n" in res.err
