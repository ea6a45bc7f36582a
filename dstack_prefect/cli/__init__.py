"""The `dstack` command line: a thin typer layer over the library."""

from __future__ import annotations

from dstack_prefect.cli import _artifacts, _docker, _runs, _secrets, _spec  # noqa: F401 - registers commands in help order
from dstack_prefect.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
