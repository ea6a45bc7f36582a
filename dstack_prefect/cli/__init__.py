"""The `dstack` command line: a thin typer layer over the library."""

from __future__ import annotations

import contextlib
import os
import sys

from typer.models import CommandInfo

from dstack_prefect.cli import _artifacts, _docker, _runs, _secrets, _server, _spec  # noqa: F401 - registers the commands
from dstack_prefect.cli._app import app, reflow_help

#: The order `dstack -h` lists the commands in: a first session's, then the artifacts'.
HELP_ORDER = ("init", "run", "ps", "logs", "stop", "rm", "plan", "validate", "schema")


def _help_rank(info: CommandInfo) -> int:
    name = info.name or (info.callback.__name__ if info.callback else "")
    return HELP_ORDER.index(name) if name in HELP_ORDER else len(HELP_ORDER)


app.registered_commands.sort(key=_help_rank)
reflow_help(app)


def main() -> None:
    """Run the command, then leave at once: the interpreter's teardown of the modules a command
    imported (~0.08 s) is skipped, as nothing the CLI holds needs it (files are closed by then,
    no prefect, no atexit work); stdout and stderr are flushed first."""
    try:
        app()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(code)


__all__ = ["app", "main"]
