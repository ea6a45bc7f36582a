"""Secrets at step start: `${{ secrets.X }}` gets its value, `$${{ secrets.X }}` stays text.

The plan travels as the flow run's parameters (JSON) between `dstack run` and the step, so each
test sends it through JSON before the step-start code reads it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine._secrets import resolve_step_secrets
from dstack_prefect.errors import DstackError
from dstack_prefect.executors.local import bash_script
from dstack_prefect.graph import Plan, Step, build_plan, secret_refs
from dstack_prefect.spec import load_text
from tests.conftest import CLI

ESCAPED = """\
workflows:
  - name: docs
    provider: bash
    env:
      - EXAMPLE=$${{ secrets.HF_TOKEN }}
    commands:
      - echo 'In YAML write $${{ secrets.HF_TOKEN }} to use a secret'
      - echo "example=$EXAMPLE"
"""


def step_at_start(yaml: str, target: str, argv: list[str] | None = None) -> Step:
    """The target's step as the step-start code receives it: built, then sent through JSON."""
    plan = build_plan(load_text(yaml), target, argv or [])
    return Plan.model_validate_json(plan.model_dump_json()).step(target)


def no_secrets(name: str) -> str | None:
    """A lookup where no secret is set."""
    return None


def run_bash(step: Step) -> str:
    """The step's commands run by bash with the step's env, as the local executor does."""
    proc = subprocess.run(
        ["bash", "-c", bash_script(step)],
        env={"PATH": "/usr/bin:/bin", **step.env},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class TestEscaped:
    """`$${{ secrets.X }}` is the text `${{ secrets.X }}`: no secret is needed or read."""

    def test_the_plan_shows_it_as_written(self) -> None:
        """`dstack plan` can tell the escaped text from a reference: it keeps the `$$`."""

        step = step_at_start(ESCAPED, "docs")

        assert step.env == {"EXAMPLE": "$${{ secrets.HF_TOKEN }}"}
        assert step.commands[0] == "echo 'In YAML write $${{ secrets.HF_TOKEN }} to use a secret'"
        assert secret_refs(step) == set()

    def test_the_step_sees_the_text(self) -> None:
        """With no secret set, the step starts, and its env and commands hold the literal text."""
        step, values = resolve_step_secrets(step_at_start(ESCAPED, "docs"), no_secrets)

        out = run_bash(step)

        assert values == []
        assert step.env == {"EXAMPLE": "${{ secrets.HF_TOKEN }}"}
        assert out == (
            "In YAML write ${{ secrets.HF_TOKEN }} to use a secret\nexample=${{ secrets.HF_TOKEN }}\n"
        )

    @pytest.mark.parametrize(
        ("written", "seen"),
        [
            ("$$${{ secrets.HF_TOKEN }}", "$s3cr3t"),
            ("$$$${{ secrets.HF_TOKEN }}", "$${{ secrets.HF_TOKEN }}"),
            ("$${{ secrets.HF_TOKEN }}=${{ secrets.HF_TOKEN }}", "${{ secrets.HF_TOKEN }}=s3cr3t"),
            ("$$$$ and $$", "$$ and $"),
            ("${HOME}{{x}}", "${HOME}{{x}}"),
            ("$${{ run.args }}", "${{ run.args }}"),
        ],
        ids=["dollar-secret", "dollars-text", "text-and-secret", "plain-dollars", "shell", "run-args"],
    )
    def test_beside_real_references(self, written: str, seen: str) -> None:
        """Each `$$` is one `$`, also right before a real reference."""
        yaml = f"workflows:\n  - name: a\n    provider: bash\n    commands: [env]\n    env: ['V={written}']\n"

        step, _ = resolve_step_secrets(step_at_start(yaml, "a"), {"HF_TOKEN": "s3cr3t"}.get)

        assert step.env["V"] == seen

    def test_run_args_are_text(self) -> None:
        """A run arg that looks like a reference is text: run args never read a secret."""
        yaml = "workflows:\n  - name: a\n    provider: bash\n    commands: ['echo ${{ run.args }}']\n"

        step, values = resolve_step_secrets(step_at_start(yaml, "a", ["${{ secrets.HF_TOKEN }}"]), no_secrets)

        assert values == []
        assert step.commands == ['echo "${{ secrets.HF_TOKEN }}"']


def test_a_real_reference_still_needs_its_secret() -> None:
    """`${{ secrets.X }}` with X unset fails the step before it starts, naming X."""
    yaml = "workflows:\n  - name: a\n    provider: bash\n    commands: [env]\n    env: ['V=${{ secrets.X }}']"

    with pytest.raises(DstackError) as info:
        resolve_step_secrets(step_at_start(yaml, "a"), no_secrets)

    assert info.value.message == "step 'a': secret 'X' is not set"


@pytest.mark.service("prefect")
def test_dstack_run_prints_the_escaped_text(cli: CLI, make_repo: Any, tmp_path: Path) -> None:
    """`dstack run docs` with no secret HF_TOKEN anywhere runs, and echoes the text."""
    repo = make_repo({".dstack/workflows.yaml": ESCAPED})

    res = cli("run", "docs", cwd=repo)

    assert res.code == 0, res.text
    assert "In YAML write ${{ secrets.HF_TOKEN }} to use a secret" in res.out
    assert "example=${{ secrets.HF_TOKEN }}" in res.out
