"""Commands: secrets [list], secrets add|update|delete."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from dstack_prefect.cli._app import app, confirm, console, err_console, handles_errors
from dstack_prefect.cli._artifacts import AsJson, Yes, _api
from dstack_prefect.errors import DstackError

secrets_app = typer.Typer()
app.add_typer(secrets_app, name="secrets")

Name = Annotated[
    str, typer.Argument(metavar="NAME", help="The secret's name, as its environment variable (HF_TOKEN)")
]
Value = Annotated[
    str | None,
    typer.Argument(
        metavar="VALUE",
        help="The value; omitted: asked without echo (or read from a pipe)",
        show_default=False,
    ),
]


def _value(name: str, value: str | None) -> str:
    """The value from the argument, a hidden prompt, or stdin when it is not a terminal."""
    if value is not None:
        return value
    if sys.stdin.isatty():
        try:
            return getpass.getpass(f"Value of {name}: ", stream=sys.stderr)
        except EOFError:
            pass
    else:
        read = sys.stdin.read()
        if read:
            return read.removesuffix("\n")
    msg = f"no value for the secret '{name}'"
    raise DstackError(
        msg, hint=f"pass it, type it at the prompt, or pipe it: printf %s VALUE | dstack secrets add {name}"
    )


@secrets_app.callback(invoke_without_command=True)
@handles_errors
def secrets(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List secrets (no sub-command), or add, update and delete them.

    A step reads a secret through `${{ secrets.NAME }}` in its env or registry_auth; the value
    comes from DSTACK_SECRET_NAME in the environment that starts the run, else from here (a
    Prefect Secret block, `dstack-secret-name`, on the server). Values are never printed.

    Example: dstack secrets --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from dstack_prefect.engine import humanize  # noqa: PLC0415
    from dstack_prefect.engine._secrets import Secrets  # noqa: PLC0415

    with _api() as api:
        rows = Secrets(api).list()
    if as_json:
        print(json.dumps([r.as_json() for r in rows], indent=2))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("NAME", "UPDATED"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(r.name, humanize(r.updated))
    console.print(table)


@secrets_app.command("add")
@handles_errors
def secrets_add(name: Name, value: Value = None, yes: Yes = False) -> None:
    """Add a secret; replacing an existing one asks first (-y does not).

    Example: dstack secrets add HF_TOKEN
    """
    from dstack_prefect.engine._secrets import Secrets, block_name  # noqa: PLC0415

    block_name(name)  # a bad name fails before any prompt
    with _api() as api:
        store = Secrets(api)
        if store.exists(name) and not yes:
            confirm(f"The secret '{name}' exists. Replace it?", with_yes=f"dstack secrets add {name} -y")
        created = store.put(name, _value(name, value))
    console.print(f"Secret [bold]{name}[/] {'added' if created else 'replaced'}")


@secrets_app.command("update")
@handles_errors
def secrets_update(name: Name, value: Value = None) -> None:
    """Change an existing secret's value.

    Example: dstack secrets update HF_TOKEN
    """
    from dstack_prefect.engine._secrets import Secrets  # noqa: PLC0415

    with _api() as api:
        store = Secrets(api)
        if not store.exists(name):
            msg = f"there is no secret named '{name}'"
            raise DstackError(msg, hint=f"add it: dstack secrets add {name}")
        store.put(name, _value(name, value))
    console.print(f"Secret [bold]{name}[/] updated")


@secrets_app.command("delete")
@handles_errors
def secrets_delete(name: Name, yes: Yes = False) -> None:
    """Delete a secret.

    Example: dstack secrets delete HF_TOKEN -y
    """
    from dstack_prefect.engine._secrets import Secrets  # noqa: PLC0415

    with _api() as api:
        store = Secrets(api)
        if not store.exists(name):
            msg = f"there is no secret named '{name}'"
            raise DstackError(msg, hint="list them: dstack secrets")
        if not yes:
            confirm(f"Delete the secret '{name}'?", with_yes=f"dstack secrets delete {name} -y")
        store.delete(name)
    err_console.print(f"Secret [bold]{name}[/] deleted")
