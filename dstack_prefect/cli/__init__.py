"""The `dstack` command line: a thin typer layer over the library."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import typer
from typer.models import CommandInfo

from dstack_prefect.cli import (  # noqa: F401 - registers the commands
    _artifacts,
    _docker,
    _prune,
    _runs,
    _secrets,
    _server,
    _spec,
    _tags,
)
from dstack_prefect.cli._app import app, err_console, reflow_help

#: The order `dstack -h` lists the commands in: a first session's, then the artifacts'.
HELP_ORDER = ("init", "run", "ps", "logs", "stop", "rm", "plan", "validate", "schema")


def _help_rank(info: CommandInfo) -> int:
    name = info.name or (info.callback.__name__ if info.callback else "")
    return HELP_ORDER.index(name) if name in HELP_ORDER else len(HELP_ORDER)


app.registered_commands.sort(key=_help_rank)
reflow_help(app)


def _command_path(argv: list[str]) -> str:
    """`dstack logs` for `dstack logs X -s` (a usage error click raises without its context)."""
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name or "" for g in app.registered_groups}
    return f"dstack {argv[0]}" if argv and argv[0] in names else "dstack"


def _context_path(ctx: Any) -> str:
    """`dstack tags add`, also when run as `python -m dstack_prefect`."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(["dstack", *reversed(names)])


def _run_app() -> int:
    """The command's exit code. A usage mistake (an unknown option, a missing value, one word
    too many) prints as every other error does, `error:` and a `hint:` on one line each, and
    exits 2 as click's do; typer would draw it in a box under the usage line."""
    try:  # typer 0.29 vendors click as typer._click; earlier ones use click itself
        from typer._click.exceptions import (  # noqa: PLC0415
            ClickException,
            NoArgsIsHelpError,
            UsageError,
        )
    except ImportError:  # pragma: no cover - another typer
        from click.exceptions import (  # type: ignore[assignment]  # noqa: PLC0415
            ClickException,
            NoArgsIsHelpError,
            UsageError,
        )

    try:
        rv = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `dstack image`: the group's help, as typer shows it
        from typer.rich_utils import rich_format_error  # noqa: PLC0415

        rich_format_error(exc)
        return exc.exit_code
    except UsageError as exc:
        command = _context_path(exc.ctx) if exc.ctx else _command_path(sys.argv[1:])
        err_console.print("[bold red]error:[/] ", end="", highlight=False)
        err_console.print(exc.format_message(), highlight=False, markup=False, soft_wrap=True)
        err_console.print(f"[dim]hint:[/] `{command} -h` shows its usage", highlight=False)
        return exc.exit_code
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:
        err_console.print("Aborted")
        return 1
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0  # typer.Exit(code)


def main() -> None:
    """Run the command, then leave at once: the interpreter's teardown of the modules a command
    imported (~0.08 s) is skipped, as nothing the CLI holds needs it (files are closed by then,
    no prefect, no atexit work); stdout and stderr are flushed first."""
    try:
        code = _run_app()
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
