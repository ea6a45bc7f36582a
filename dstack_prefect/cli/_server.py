"""`dstack server start|stop|status`: the local Prefect server dstack starts on demand."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from dstack_prefect.cli._app import app, console, err_console, handles_errors
from dstack_prefect.settings import get_settings

server_app = typer.Typer(help="The local Prefect server dstack starts on demand.", no_args_is_help=True)
app.add_typer(server_app, name="server")


@server_app.command("start")
@handles_errors
def server_start() -> None:
    """Start the local Prefect server (other commands start it on demand); say so when it was
    running already, or when PREFECT_API_URL names the server in use (dstack starts none then).

    Example: dstack server start
    """
    from dstack_prefect.engine import PrefectAPI  # noqa: PLC0415
    from dstack_prefect.engine._launcher import start_launcher, wait_launcher  # noqa: PLC0415
    from dstack_prefect.engine._runs import cleanup_leftovers  # noqa: PLC0415
    from dstack_prefect.server import ensure_server, status  # noqa: PLC0415

    settings = get_settings()
    running = status(settings) is not None
    info = ensure_server(settings)
    with PrefectAPI(info.url) as api:
        cleanup_leftovers(api, settings)
    if info.managed:  # warm: the next `dstack run` skips `import prefect`
        start_launcher(settings, info.pid)
        wait_launcher(settings, timeout=30)
    if not info.managed:
        what = "Using the Prefect server at PREFECT_API_URL (dstack starts none)"
    else:
        what = (
            "The local Prefect server was running already" if running else "Started the local Prefect server"
        )
    console.print(f"{what}: {info.url}  UI: {info.ui_url}", highlight=False)


@server_app.command("stop")
@handles_errors
def server_stop() -> None:
    """Stop the local Prefect server dstack started. Unfinished runs go on and report to it
    again when it is back (`dstack server start`, or any command that needs it).

    Example: dstack server stop
    """
    from dstack_prefect.engine import PrefectAPI, is_finished, list_runs  # noqa: PLC0415
    from dstack_prefect.server import external_url, status  # noqa: PLC0415
    from dstack_prefect.server import stop as stop_server  # noqa: PLC0415

    settings = get_settings()
    info = status(settings)
    unfinished: list[str] = []
    if info is not None and info.managed:
        with PrefectAPI(info.url) as api:
            unfinished = [r.name for r in list_runs(api) if not is_finished(r.status)]
    stopped = stop_server(settings)
    external = external_url()
    if external:  # the server in use is not dstack's to stop: say which one this was
        what = "Stopped the local Prefect server" if stopped else "The local Prefect server was not running"
        console.print(f"{what}; PREFECT_API_URL={external}, the server in use, is not dstack's to stop")
    else:
        console.print("Stopped" if stopped else "The local server was not running")
    if unfinished:
        note = (
            f"warning: {len(unfinished)} unfinished run(s) go on without it: {', '.join(unfinished)};"
            " they report their states and logs again once it is back (`dstack server start`)"
        )
        err_console.print(note, style="yellow", highlight=False, markup=False)


@server_app.command("status")
@handles_errors
def server_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines")] = False,
) -> None:
    """Say which Prefect server dstack uses, whether it is up, and whether the warm launcher
    (which starts runs without paying `import prefect`) serves beside the local one.

    Example: dstack server status --json
    """
    from dstack_prefect.engine._launcher import launcher_pid  # noqa: PLC0415
    from dstack_prefect.server import external_url, status  # noqa: PLC0415

    settings = get_settings()
    info = status(settings)
    launcher = launcher_pid(settings)
    external = external_url()
    if as_json:
        print(
            json.dumps(
                {
                    "up": info is not None,
                    "url": info.url if info else external,
                    "managed": bool(info and info.managed),
                    "launcher": launcher is not None,
                }
            )
        )
        return
    if info is None and external:
        console.print(
            f"The Prefect server at PREFECT_API_URL={external} is not answering; commands fail until "
            "it does (unset PREFECT_API_URL to use the local one)",
            highlight=False,
        )
    elif info is None:
        console.print("No server is running; the next command starts one")
    else:
        console.print(
            f"{'Local' if info.managed else 'External'} Prefect server: {info.url}  UI: {info.ui_url}"
        )
        if launcher is not None:
            console.print(f"Warm launcher: pid {launcher}")
