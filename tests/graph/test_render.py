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


def test_docker_settings_show_in_the_step() -> None:
    """A docker step's entrypoint, home_dir, registry user, ssh and inputs are in the text plan
    (the password never is)."""
    text = """\
workflows:
  - name: serve
    provider: docker
    image: ghcr.io/me/app:1
    entrypoint: /bin/sh -c
    commands: ["python serve.py"]
    home_dir: /home/app
    registry_auth: {username: me, password: "${{ secrets.GHCR }}"}
    ssh: true
    inputs: [serve.py, app/]
"""

    lines = render_plan(build_plan(load_text(text), "serve", [])).plain.splitlines()

    assert lines[2:] == [
        "     image: ghcr.io/me/app:1",
        "     $ python serve.py",
        "     ssh: yes",
        "     entrypoint: /bin/sh -c   home_dir: /home/app   registry user: me",
        "     inputs: serve.py, app/",
        "     resources: -   deps: -",
    ]


def test_ide_version_shows() -> None:
    """An IDE step's `version` shows beside its python."""
    text = "workflows:\n  - name: ide\n    provider: code\n    version: 1.78.1\n    python: '3.11'\n"

    lines = render_plan(build_plan(load_text(text), "ide", [])).plain.splitlines()

    assert "     python: 3.11   version: 1.78.1" in lines
