"""docs/cli.md is generated from the commands' own --help (tests/cli/test_cli_docs.py checks it).

python -m dstack_prefect.cli._reference > docs/cli.md
"""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from dstack_prefect.cli import app

HEADER = """# CLI reference

Generated from `dstack COMMAND --help` by `python -m dstack_prefect.cli._reference > docs/cli.md`;
a test fails when this file and the commands disagree.

Errors go to stderr as `error: WHAT` and `hint: NEXT STEP`, one line each, never a traceback.
Exit codes: 0 done; 1 a failed command, bad input or a run that did not end done; 2 a usage
mistake (an unknown option, a missing value, a word too many); 130 Ctrl-C.
"""


def command_paths(group: typer.Typer | None = None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command as its argv path, e.g. ("server", "start")."""
    group = group or app
    paths: list[tuple[str, ...]] = []
    for cmd in group.registered_commands:
        name = cmd.name or (cmd.callback.__name__.replace("_", "-") if cmd.callback else "")
        paths.append((*prefix, name))
    for sub in group.registered_groups:
        assert sub.typer_instance is not None and sub.name is not None
        paths.extend(command_paths(sub.typer_instance, (*prefix, sub.name)))
    return sorted(paths)


def help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(
        app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip()


def reference() -> str:
    parts = [HEADER]
    for path in command_paths():
        parts.append(f"## dstack {' '.join(path)}\n\n```\n{help_text(path)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
