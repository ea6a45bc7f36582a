"""The CLI reference and the README stay true to the commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from dstack_prefect.cli._reference import command_paths, help_text, reference

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_generated_from_the_commands() -> None:
    """docs/cli.md equals what `python -m dstack_prefect.cli._reference` prints now."""
    expected = reference()

    actual = (ROOT / "docs" / "cli.md").read_text()

    assert actual == expected, "regenerate: python -m dstack_prefect.cli._reference > docs/cli.md"


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    """Each command explains itself and ends its help with an Example line."""
    text = help_text(path)

    assert "Example: dstack" in text


def test_readme_names_every_top_level_command() -> None:
    """The README's CLI table mentions each top-level command."""
    readme = (ROOT / "README.md").read_text()

    missing = sorted(name for name in {p[0] for p in command_paths()} if f"dstack {name}" not in readme)

    assert missing == []
