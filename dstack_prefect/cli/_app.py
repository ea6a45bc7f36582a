"""The typer app every command module registers on, and the one place errors become exits.

Each command parses its options, makes one library call and renders the result. A DstackError
becomes `error: <message>` plus `hint: <next step>` on stderr and exit code 1; no traceback
reaches a user for a user mistake.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from dstack_prefect.errors import DstackError, SpecError, SpecErrors

app = typer.Typer(
    name="dstack",
    help="Run dstack YAML workflows as Prefect flows, locally or on cloud GPUs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# emoji=False: a step's line or a name holding ':fire:' prints as written, not as an emoji
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)
for _out in (console, err_console):
    if not _out.is_terminal and not os.environ.get("COLUMNS"):
        # A pipe or a file: one line per table row or message, whatever its length (a script
        # greps `ps -v`, a CI log keeps an error whole); rich would wrap at 80 columns.
        _out.width = 1 << 16


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        from dstack_prefect import __version__  # noqa: PLC0415

        try:
            prefect = version("prefect")
        except PackageNotFoundError:
            prefect = "not installed"
        console.print(f"dstack-prefect {__version__} (prefect {prefect})", highlight=False)
        raise typer.Exit


@app.callback()
def _global(
    show_version: bool = typer.Option(
        False, "--version", "-v", is_eager=True, callback=_print_version, help="Show the version and exit"
    ),
) -> None:
    """Run dstack YAML workflows as Prefect flows, locally or on cloud GPUs."""


F = TypeVar("F", bound=Callable[..., Any])


def confirm(question: str, *, with_yes: str) -> None:
    """Ask ``question`` on the terminal; "no" exits 1. Without a terminal to ask on, an error
    whose hint is ``with_yes``: the same command with -y."""
    from rich.prompt import Confirm  # noqa: PLC0415

    if not sys.stdin.isatty():
        msg = f"not confirmed, no terminal to ask on: {question}"
        raise DstackError(msg, hint=f"pass -y to confirm: {with_yes}")
    try:
        ok = Confirm.ask(question, console=err_console, default=False)
    except EOFError:
        ok = False
    if not ok:
        raise typer.Exit(1)


def fail(error: DstackError, *, as_json: bool = False) -> typer.Exit:
    """Print ``error`` for a person (or as JSON) and return the Exit to raise."""
    if as_json:
        payload: dict[str, Any] = {"error": error.message, "type": type(error).__name__}
        if error.hint:
            payload["hint"] = error.hint
        if isinstance(error, SpecErrors | SpecError):  # each located, as `validate --json` lists them
            payload["errors"] = [e.as_dict() for e in getattr(error, "errors", [error])]
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        err_console.print("[bold red]error:[/] ", end="", highlight=False)
        err_console.print(error.message, highlight=False, markup=False, soft_wrap=True)
        if error.hint:
            err_console.print("[dim]hint:[/] ", end="", highlight=False)
            err_console.print(error.hint, highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(1)


def handles_errors(func: F) -> F:
    """Turn DstackError (and Ctrl-C) into a clean exit for the wrapped command."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DstackError as exc:
            raise fail(exc, as_json=bool(kwargs.get("as_json"))) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def reflow_help(typer_app: typer.Typer) -> None:
    """Join the lines of each paragraph of every command's docstring: typer keeps the single
    line breaks after the first paragraph, and rich then wraps the long lines again in a narrow
    terminal, leaving stubs like "--cpu N," alone on a line. Paragraphs whose lines are indented
    or bulleted keep their breaks."""
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None:
            info.help = "\n\n".join(map(_joined, (inspect.getdoc(info.callback) or "").split("\n\n")))
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)


def _joined(paragraph: str) -> str:
    lines = paragraph.split("\n")
    if any(line.startswith((" ", "- ", "* ", "\b")) for line in lines):
        return paragraph
    return " ".join(lines)
