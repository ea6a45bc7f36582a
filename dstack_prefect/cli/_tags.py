"""Commands: tags (list), tags add, tags delete.

A tag is a named, durable reference to a run's artifacts (or to local folders uploaded through a
synthetic run); deps name it as ``{tag: NAME}``, ls, cp, push and pull as ``:NAME``. The
``tags`` group itself is registered in ``_artifacts`` (its place in `dstack -h`).
"""

from __future__ import annotations

import contextlib
import json
import shlex
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from dstack_prefect.cli._app import confirm, console, err_console, handles_errors
from dstack_prefect.cli._artifacts import AsJson, Yes, _api, _local_store, tags_app
from dstack_prefect.errors import DstackError, IntegrityError, RunNotFoundError, RunStateError

if TYPE_CHECKING:
    from dstack_prefect.engine._runs import RunRow
    from dstack_prefect.storage import Tag


def _created(tag: Tag) -> str:
    from dstack_prefect.engine import humanize  # noqa: PLC0415

    return humanize(datetime.fromisoformat(tag.created_at))


@tags_app.callback(invoke_without_command=True)
@handles_errors
def tags(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List tags (no sub-command), or add and delete them: named, durable references to artifacts.

    Example: dstack tags --json
    """
    if ctx.invoked_subcommand is not None:
        return
    found = _local_store().list_tags()
    if as_json:
        rows = [
            {"tag": t.tag, "created_at": t.created_at, "run": t.run, "workflow": t.workflow} for t in found
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("TAG", "CREATED", "RUN", "WORKFLOW"):
        table.add_column(col, no_wrap=True)
    for t in found:
        table.add_row(t.tag, _created(t), t.run, t.workflow or "")
    console.print(table)


@tags_app.command("add")
@handles_errors
def tags_add(
    tag: Annotated[str, typer.Argument(metavar="TAG", help="The tag name")],
    run_name: Annotated[str | None, typer.Argument(metavar="RUN", help="The run to tag")] = None,
    paths: Annotated[
        list[Path] | None, typer.Option("-a", "--artifact", metavar="PATH", help="Upload this local folder")
    ] = None,
    yes: Yes = False,
) -> None:
    """Tag a run, or upload local folders (-a PATH, repeatable) as a tag; a run carries one tag.

    Deps name a tag as `deps: [{tag: NAME}]`; ls, cp, push and pull as :NAME. A name is letters,
    digits, '.', '_' and '-', starting with a letter or digit. A run still going is refused
    (the tag would keep only the steps stored so far). Moving an existing tag asks first; -y
    moves it without asking (needed without a terminal).

    Example: dstack tags add txt-file clever-panda-1
    """
    from dstack_prefect.engine._runs import set_run_tag  # noqa: PLC0415
    from dstack_prefect.storage import check_tag_name, rich_progress  # noqa: PLC0415

    check_tag_name(tag)
    if bool(run_name) == bool(paths):
        msg = "name a run or pass -a PATH, not both" if run_name else "name the run to tag, or pass -a PATH"
        raise DstackError(msg, hint="dstack tags add TAG RUN, or dstack tags add TAG -a FOLDER")
    store = _local_store()
    existing = {t.tag: t for t in store.list_tags()}
    row = None
    if run_name:
        other = next((t.tag for t in existing.values() if t.run == run_name and t.tag != tag), None)
        if other:
            msg = f"the run {run_name!r} refers to another tag: {other!r}"
            raise DstackError(msg, hint=f"delete that tag first: dstack tags delete {other}")
        row = _finished_row(run_name)
    same_run = run_name is not None and tag in existing and existing[tag].run == run_name
    if tag in existing and not yes and not same_run:  # the same run again: nothing moves
        what = [run_name] if run_name else [a for p in paths or [] for a in ("-a", str(p))]
        again = shlex.join(["dstack", "tags", "add", tag, *what, "-y"])
        confirm(f"The tag '{tag}' already exists (run {existing[tag].run}). Move it?", with_yes=again)
    if paths:
        with rich_progress(err_console) as progress:
            t = store.add_tag_from_dirs(tag, paths, overwrite=True, progress=progress)
        for entry in t.manifests[0].skipped:  # as a run's log says them
            err_console.print(
                f"warning: {entry['path']} is not saved: {entry['reason']}", highlight=False, markup=False
            )
        console.print(f"Tag [bold]{tag}[/] added: {', '.join(m for m in t.manifests[0].artifacts)}")
        return
    assert run_name is not None
    with _api() as api:
        t = store.add_tag(tag, run_name, (row.workflow or None) if row else None, overwrite=True)
        with contextlib.suppress(RunNotFoundError):
            set_run_tag(api, run_name, tag)
    console.print(f"Tag [bold]{tag}[/] added to the run {run_name}")
    if row is not None and row.status != "done":  # old dstack tagged any run; say what it holds
        stored = ", ".join(sorted({m.step for m in t.manifests})) or "none"
        note = (
            f"warning: the run {run_name} ended {row.status}, not done: the tag holds the artifacts "
            f"of the steps that stored them ({stored}), and a `tag: {tag}` dep gets only those"
        )
        err_console.print(note, style="yellow", highlight=False, markup=False, soft_wrap=True)


def _finished_row(run_name: str) -> RunRow | None:
    """The run's row; None for a removed run (its artifacts can still be tagged). RunStateError
    for a run still going: the tag would keep only the steps stored so far, for good."""
    from dstack_prefect.engine._runs import run_row  # noqa: PLC0415
    from dstack_prefect.engine._status import is_finished  # noqa: PLC0415

    with _api() as api:
        try:
            row: RunRow = run_row(api.flow_run_by_name(run_name))
        except RunNotFoundError:
            return None
    if not is_finished(row.status):
        msg = (
            f"the run {run_name!r} is {row.status}, not finished: a tag keeps the artifacts its steps "
            "have stored so far, and would miss the rest"
        )
        hint = f"tag it when it is done (`dstack logs {run_name} -a` follows it), or start runs with -t TAG"
        raise RunStateError(msg, hint=hint)
    return row


@tags_app.command("delete")
@handles_errors
def tags_delete(
    tag: Annotated[str, typer.Argument(metavar="TAG", help="The tag name")], yes: Yes = False
) -> None:
    """Delete a tag; the run and its artifacts stay. Folders uploaded with -a go with their tag
    (`prune artifacts` then frees them), as they do when the tag is moved.

    Example: dstack tags delete txt-file -y
    """
    from dstack_prefect.engine._runs import set_run_tag  # noqa: PLC0415

    store = _local_store()
    try:
        found: Tag | None = store.get_tag(tag)
    except IntegrityError:  # a tag file that no longer parses can still be deleted
        found = None
    if not yes:
        confirm(f"Delete the tag '{tag}'?", with_yes=f"dstack tags delete {tag} -y")
    store.delete_tag(tag)
    if found is not None and not any(m.extra.get("synthetic") for m in found.manifests):
        with _api() as api, contextlib.suppress(RunNotFoundError):  # a removed run has no TAG column
            if f"tag:{tag}" in (api.flow_run_by_name(found.run).get("tags") or []):
                set_run_tag(api, found.run, None)
    console.print(f"Tag [bold]{tag}[/] deleted")
