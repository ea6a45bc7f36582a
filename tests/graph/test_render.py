"""`dstack plan`'s text: every override a user can give shows in the step it changes."""

from __future__ import annotations

from dstack_prefect.cli._spec import render_plan
from dstack_prefect.graph import build_plan
from dstack_prefect.spec import load_text

TEXT = """\
workflows:
  - name: train
    provider: bash
    python: "3.10"
    commands: [python train.py]
    env: ["TOKEN=${{ secrets.HF }}"]
    cache: [~/.cache/pip]
"""


def test_overrides_show_in_the_step() -> None:
    """-w, -e, -a and -p are visible in the text plan, not only in --json."""
    plan = build_plan(
        load_text(TEXT), "train", ["-w", "src", "-e", "LR=0.1", "-a", "out", "-p", "8000:3000", "-p", "7000"]
    )

    lines = render_plan(plan).plain.splitlines()

    assert lines[2:] == [
        "     $ python train.py",
        "     working_dir: src   python: 3.10",
        "     env: TOKEN=${{ secrets.HF }}, LR=0.1",
        "     artifacts: out   cache: ~/.cache/pip",
        "     ports: 8000:3000, 7000",
        "     resources: -   deps: -",
    ]


def test_a_plain_step_adds_no_lines() -> None:
    """A step with none of them set shows only its commands, resources and deps."""
    plan = build_plan(load_text("workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n"), "a", [])

    assert render_plan(plan).plain.splitlines() == [
        "Plan for 'a'",
        "1. a  bash",
        "     $ x",
        "     resources: -   deps: -",
    ]
