"""Commands: prune artifacts, prune cache: free space in the artifact store.

The ``prune`` group itself is registered in ``_artifacts`` (its place in `dstack -h`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.filesize import decimal

from dstack_prefect.cli._app import confirm, console, err_console, handles_errors
from dstack_prefect.cli._artifacts import Yes, _local_store, _remote_store, prune_app
from dstack_prefect.errors import DstackError
from dstack_prefect.settings import get_settings


@prune_app.command("artifacts")
@handles_errors
def prune_artifacts(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed")] = False,
    remote: Annotated[
        bool, typer.Option("--remote", help="Prune the remote store (push/pull) instead of the local one")
    ] = False,
    yes: Yes = False,
) -> None:
    """Remove stored files that no run, tag or cache folder refers to any more.

    --dry-run counts them, leaving out files younger than 10 minutes (an upload may still be
    writing its manifest) and saying how many those are. Confirming (or -y) removes them all,
    the young ones too, and says how many of them were young; with --remote the young ones
    always stay (another machine may be pushing). What killed uploads left goes too: temporary
    files, and incomplete S3 multipart uploads not written to for 10 minutes (any age with -y,
    without --remote).

    Example: dstack prune artifacts -y
    """
    settings = get_settings()
    store = _remote_store(settings) if remote else _local_store(settings)
    partial = "partial upload(s) that killed uploads left (temporary files, incomplete S3 multipart uploads)"
    if dry_run or remote:
        if not dry_run and not yes:
            question = f"Remove every unreferenced file older than 10 minutes from {store.url}?"
            confirm(question, with_yes="dstack prune artifacts --remote -y")
        r = store.prune(dry_run=dry_run)
        verb, also = ("Would remove", "Would also remove") if dry_run else ("Removed", "Also removed")
        why = "an upload may still be writing them" + ("; -y removes them too" if not remote else "")
        console.print(
            f"{verb} {r.blobs} unreferenced file(s), {decimal(r.nbytes)} from {store.url}; "
            f"kept {r.young} unreferenced file(s), {decimal(r.young_nbytes)}, younger than "
            f"{r.grace_s / 60:g} minutes ({why})"
        )
        if r.partial:
            console.print(f"{also} {r.partial} {partial}")
        return
    if not yes:
        question = "Remove every unreferenced file? A run uploading right now may lose files"
        confirm(question, with_yes="dstack prune artifacts -y")

    def waiting() -> None:  # a local store: this machine's uploads under way finish first
        err_console.print(f"Waiting for the uploads to {store.url} under way to finish", highlight=False)

    r = store.prune(keep_young=False, on_wait=waiting)
    console.print(
        f"Removed {r.blobs} unreferenced file(s), {decimal(r.nbytes)} from {store.url}; {r.young} of "
        f"them younger than {r.grace_s / 60:g} minutes (--dry-run keeps those)"
    )
    if r.partial:
        console.print(f"Also removed {r.partial} {partial}")


@prune_app.command("cache")
@handles_errors
def prune_cache(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW", help="The workflow whose cache folders go")],
) -> None:
    """Forget a workflow's cache folders in the current repo; `prune artifacts` frees the space.

    Example: dstack prune cache train
    """
    import shutil  # noqa: PLC0415

    from dstack_prefect.engine._artifacts import cache_mount_root, repo_identity  # noqa: PLC0415
    from dstack_prefect.spec import find_repo_root  # noqa: PLC0415
    from dstack_prefect.spec._fields import did_you_mean  # noqa: PLC0415

    root = find_repo_root(Path.cwd())
    repo_id = repo_identity(root)
    count = _local_store().prune_cache(repo_id, workflow)
    mounted = cache_mount_root(get_settings().home, repo_id, workflow)
    if mounted.is_dir():  # the `~`/absolute cache folders of containerised runs
        count += sum(1 for _ in mounted.iterdir())
        shutil.rmtree(mounted)
    if count:
        console.print(f"Removed {count} cache folder(s) of {workflow}")
        return
    names = _workflow_names(root)
    if names is not None and workflow not in names:
        msg = f"no workflow '{workflow}' in this repo, and nothing cached for it"
        close = did_you_mean(workflow, names).removeprefix("; ")
        raise DstackError(msg, hint=close or f"workflows: {', '.join(names) or 'none'}")
    console.print(f"Nothing cached for {workflow}")


def _workflow_names(root: Path) -> list[str] | None:
    """The repo's workflow names, or None when its files do not load (`dstack validate` says why)."""
    from dstack_prefect.spec import load_workflows  # noqa: PLC0415

    try:
        return sorted(load_workflows(root).by_name)
    except DstackError:
        return None
