"""`python:` on the local executor: the step's `python` and `pip` are the version it asks for.

No machine has Python 3.97: tests/fakes/python3.97 stands in for it (it answers dstack's
version probe and says what it was asked to run). The lookup, the PATH and the run are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLI, Server

pytestmark = pytest.mark.service("prefect")

FAKES = Path(__file__).resolve().parents[1] / "fakes"

FLOW = """
workflows:
  - name: old-python
    provider: bash
    python: "3.97"
    commands:
      - python train.py
      - pip install -r requirements.txt
  - name: no-such-python
    provider: bash
    python: "3.98"
    commands:
      - echo "ran anyway"
"""


def test_python_and_pip_are_the_version_the_step_asks_for(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path
) -> None:
    """Old dstack ran the step in a Python 3.97 container; locally `python` and `pip` run the
    python3.97 found on the PATH, and nothing is said."""
    repo = make_repo({".dstack/workflows.yaml": FLOW, "train.py": "print(1)\n", "requirements.txt": ""})
    env = prefect_server.env(dstack_home)
    env["PATH"] = f"{FAKES}:{env['PATH']}"

    res = cli("run", "old-python", cwd=repo, env=env)

    assert res.code == 0, res.text
    ran = [line for line in res.out.splitlines() if line.startswith("python3.97 ran:")]
    assert ran == ["python3.97 ran: train.py", "python3.97 ran: -m pip install -r requirements.txt"], res.out
    assert "asks for Python" not in res.err


def test_a_python_the_machine_lacks_is_said_and_the_step_runs(cli: CLI, make_repo: Any) -> None:
    """No python3.98 anywhere: the run warns, naming what runs instead and how to get 3.98."""
    repo = make_repo({".dstack/workflows.yaml": FLOW})

    res = cli("run", "no-such-python", cwd=repo)

    assert res.code == 0, res.text
    assert "ran anyway" in res.out
    assert "step 'no-such-python' asks for Python 3.98 and no python3.98 was found" in res.err, res.err
    assert "pyenv install 3.98" in res.err
