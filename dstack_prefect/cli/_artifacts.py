"""Commands: ls, cp, tags, push, pull, config, prune.

Artifacts live in the local store (``dstack config --store``, default ``<home>/store``);
``push`` and ``pull`` copy runs and tags to and from the remote store (``--remote-store``).
A run is named as ``RUN`` or, for a tag, ``:TAG``, as in old dstack.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import shlex
import shutil
import sys
import tempfile
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.filesize import decimal
from rich.table import Table

from dstack_prefect.cli._app import app, confirm, console, err_console, handles_errors
from dstack_prefect.errors import (
    ArtifactNotFoundError,
    DstackError,
    IntegrityError,
    RunNotFoundError,
    RunStateError,
    StorageError,
)
from dstack_prefect.settings import CONFIG_KEYS, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dstack_prefect.engine._runs import RunRow
    from dstack_prefect.storage import ArtifactStore, Manifest, Tag

tags_app = typer.Typer()
app.add_typer(tags_app, name="tags")
prune_app = typer.Typer(help="Free space in the artifact store.", no_args_is_help=True)
app.add_typer(prune_app, name="prune")

Ref = Annotated[str, typer.Argument(metavar="RUN|:TAG", help="A run name, or :TAG for a tag")]
Yes = Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for machines")]


class Executor(StrEnum):
    local = "local"
    docker = "docker"


def _local_store(settings: Settings | None = None) -> ArtifactStore:
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    return ArtifactStore((settings or get_settings()).store_url)


def _remote_store(settings: Settings) -> ArtifactStore:
    """The push/pull store; s3fs takes the endpoint and keys from the AWS_* variables."""
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    if not settings.remote_store:
        msg = "no remote store is configured"
        raise DstackError(msg, hint="set one with `dstack config --remote-store s3://bucket/prefix`")
    return ArtifactStore(settings.remote_store)


def _api() -> Any:
    from dstack_prefect.cli._runs import _api as runs_api  # noqa: PLC0415

    return runs_api()


# ls, cp --------------------------------------------------------------------------------------
@app.command()
@handles_errors
def ls(
    ref: Ref,
    prefix: Annotated[
        str | None,
        typer.Argument(metavar="PREFIX", help="Only paths starting with it; out/ names the folder out"),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="List every file, not one level")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """List a run's (or a tag's) artifact files: one folder level, or every file with -r.

    A step still running (or aborted) shows its `mount: true` folders as last synced.

    Example: dstack ls :txt-file -r output
    """
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    store = _local_store()
    with _says_why_nothing_is_stored(store, ref):
        manifests = store.resolve(ref, synced=True)
    rows = ArtifactStore.ls(manifests, prefix, recursive, name=ref)
    if as_json:
        found = [
            {"artifact": r.artifact, "file": r.file, "size": r.size, "folder": r.folder, "synced": r.synced}
            for r in rows
        ]
        print(json.dumps(found, indent=2))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ARTIFACT", no_wrap=True)
    table.add_column("FILE", no_wrap=True)
    table.add_column("SIZE", justify="right", no_wrap=True)
    shown = None
    for r in rows:
        art = r.artifact + ("/" if r.folder else "")
        table.add_row(art if r.artifact != shown else "", r.file or "(empty)", decimal(r.size))
        shown = r.artifact
    console.print(table)
    _synced_notes(manifests)


def _synced_notes(manifests: list[Manifest]) -> None:
    """Say which steps' files are from a sync of their `mount: true` artifacts, not stored by
    the step (still running, or it ended without storing them), and when they were synced."""
    from dstack_prefect.engine import humanize  # noqa: PLC0415

    for m in manifests:
        if not m.synced:
            continue
        arts = ", ".join(a + "/" for a in m.artifacts)
        when = humanize(datetime.fromisoformat(m.created_at))
        state = (
            "ended without storing its artifacts (aborted or failed)"
            if m.extra.get("final")
            else "has not stored its artifacts (it is still running, or its run crashed)"
        )
        err_console.print(
            f"note: step '{m.step}' {state}: {arts} as last synced ({when}; mount: true)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command()
@handles_errors
def cp(
    ref: Ref,
    source: Annotated[
        str, typer.Argument(metavar="SOURCE", help="An artifact file or folder, e.g. output/model.pt")
    ],
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET", help="A local file or folder (a trailing / makes it a folder); - is stdout"
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files that exist with other content")
    ] = False,
) -> None:
    """Copy an artifact file or folder of a run (or tag) to a local path, each file sha256-verified.

    A step still running (or aborted) gives its `mount: true` folders as last synced. TARGET -
    writes one file to stdout (`dstack cp RUN out/metrics.json - | jq .`).

    Example: dstack cp :txt-file output/hello.txt ./hello.txt
    """
    from dstack_prefect.storage import rich_progress  # noqa: PLC0415

    store = _local_store()
    with _says_why_nothing_is_stored(store, ref):
        manifests = store.resolve(ref, synced=True)
    if target == "-":
        _cp_to_stdout(store, manifests, source, ref)
        return
    with rich_progress(err_console) as progress:  # a TARGET ending in / stays a folder: pass the text
        written = store.copy_out(manifests, source, target, overwrite=force, progress=progress, name=ref)
    console.print(f"Artifact files copied ({len(written)} written)")
    src = posixpath.normpath(source.strip())
    _synced_notes(
        [m for m in manifests if any(f.path == src or f.path.startswith(f"{src}/") for f in m.files)]
    )


def _cp_to_stdout(store: ArtifactStore, manifests: list[Any], source: str, ref: str) -> None:
    """`dstack cp RUN FILE -`: the file's bytes on stdout, verified as any copy (through a
    temporary folder); a folder is refused, as its files have no one place on a stream."""
    src = posixpath.normpath(source.strip())
    paths = {f.path for m in manifests for f in m.files}
    if src not in paths and any(p.startswith(f"{src}/") for p in paths):
        msg = f"'{source}' is a folder: - (stdout) takes one file"
        hint = f"dstack ls {ref} {src} -r lists its files; copy one, or the folder to a path"
        raise DstackError(msg, hint=hint)
    with tempfile.TemporaryDirectory(prefix="dstack-cp-") as tmp:
        (written,) = store.copy_out(manifests, source, Path(tmp) / "out", name=ref)
        with open(written, "rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.flush()
    _synced_notes([m for m in manifests if any(f.path == src for f in m.files)])


@contextlib.contextmanager
def _says_why_nothing_is_stored(store: ArtifactStore, ref: str) -> Iterator[None]:
    """Run the body; its ArtifactNotFoundError for a run that stored nothing in ``store`` becomes
    why, when the Prefect server knows the run: still going, or aborted / failed / stopped
    before any step stored its artifacts (not "check the run name")."""
    try:
        yield
    except ArtifactNotFoundError:
        if ref.startswith(":") or store.list_manifests(ref):
            raise
        row = _known_row(ref)
        if row is None:
            raise
        raise _nothing_stored(row, store) from None


def _known_row(run_name: str) -> RunRow | None:
    """The run's row when the Prefect server knows it, else None. The local server is asked only
    about a run started from this home (its runs folder): a mistyped name starts no server."""
    from dstack_prefect.engine._runs import run_row  # noqa: PLC0415
    from dstack_prefect.errors import ServerError  # noqa: PLC0415

    if not os.environ.get("PREFECT_API_URL") and not (get_settings().runs_dir / run_name).is_dir():
        return None
    try:
        with _api() as api:
            found: RunRow = run_row(api.flow_run_by_name(run_name))
            return found
    except (RunNotFoundError, ServerError):
        return None


def _nothing_stored(row: RunRow, store: ArtifactStore) -> DstackError:
    """The error for run ``row`` that has no stored artifacts in ``store``, by its status."""
    from dstack_prefect.engine._status import is_finished  # noqa: PLC0415

    when = "a step stores its artifacts when it is done or gracefully stopped"
    if not is_finished(row.status):
        msg = f"run {row.name!r} is {row.status} and has stored no artifacts yet in {store.url}"
        return RunStateError(msg, hint=f"{when}: try again then (`dstack logs {row.name} -a` follows it)")
    again = f"`dstack run {row.workflow}`" if row.workflow else "the workflow"
    if row.status == "done":
        msg = f"run {row.name!r} is done but stored no artifacts in {store.url}"
        hint = "its steps declare none, or it ran with another store (`dstack config` shows this one)"
        return ArtifactNotFoundError(msg, hint=hint)
    verb = {"aborted": "was aborted", "stopped": "was stopped", "failed": "failed"}[row.status]
    msg = f"run {row.name!r} {verb} before any step stored its artifacts in {store.url}"
    why = "none of its steps got that far" if row.status == "stopped" else "not when it fails or is aborted"
    return ArtifactNotFoundError(msg, hint=f"{when}, {why}: run {again} again")


# tags ----------------------------------------------------------------------------------------
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


# push, pull ----------------------------------------------------------------------------------
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace a run or tag of the same name that has other content there"),
]


def _transfer(ref: str, src: ArtifactStore, dst: ArtifactStore, verb: str, force: bool) -> None:
    from dstack_prefect.storage import rich_progress, transfer  # noqa: PLC0415

    runs, tag = ((), ref[1:]) if ref.startswith(":") else ((ref,), None)
    # a file the remote store lacks or holds damaged: only a push from a store that has it mends it
    repair = (
        f"put a good copy there with `dstack push {ref} --force` from a machine whose store has it"
        if verb == "Pulled"
        else None
    )
    with rich_progress(err_console) as progress:
        r = transfer(src, dst, runs=runs, tag=tag, progress=progress, force=force, repair_hint=repair)
    unchecked = (
        f"; {r.unchecked} blob(s) not checked (their manifests are there unchanged; --force checks them)"
        if r.unchecked
        else ""
    )
    console.print(
        f"{verb} {ref}: {r.manifests} manifest(s), {r.blobs} blob(s) ({decimal(r.nbytes)}), "
        f"{r.skipped} blob(s) already there{unchecked}"
    )


@app.command()
@handles_errors
def push(ref: Ref, force: Force = False) -> None:
    """Upload a run's (or tag's) artifacts from the local store to the remote store.

    A run or tag of the same name with other content there (run names can collide between
    machines) is refused unless --force. The files of a manifest already there unchanged are
    not looked for; --force checks them and sends any the remote store lost (a damaged one).

    Example: dstack push :txt-file
    """
    settings = get_settings()
    local = _local_store(settings)
    with _says_why_nothing_is_stored(local, ref):
        _transfer(ref, local, _remote_store(settings), "Pushed", force)


@app.command()
@handles_errors
def pull(ref: Ref, force: Force = False) -> None:
    """Download a run's (or tag's) artifacts from the remote store into the local store.

    Afterwards local runs can use it as a dep, and ls and cp can read it. A local run or tag of
    the same name with other content (run names can collide between machines) is refused
    unless --force, which also checks the files of manifests already here unchanged.

    Example: dstack pull :txt-file
    """
    from dstack_prefect.engine._cache import index_pulled  # noqa: PLC0415

    settings = get_settings()
    local, remote = _local_store(settings), _remote_store(settings)
    try:
        manifests = remote.resolve(ref)
    except ArtifactNotFoundError as exc:  # its hint names commands that read this machine
        hint = f"push it there first, from the machine that has it: dstack push {ref}"
        raise ArtifactNotFoundError(exc.message, hint=hint) from None
    _transfer(ref, remote, local, "Pulled", force)
    index_pulled(local, manifests)  # reuse finds the pulled steps, as it finds local ones


# config --------------------------------------------------------------------------------------
def _key(name: str) -> str:
    key = name.replace("-", "_")
    if key not in CONFIG_KEYS:
        msg = f"unknown setting {name!r}"
        raise DstackError(msg, hint=f"settings: {', '.join(k.replace('_', '-') for k in CONFIG_KEYS)}")
    return key


@app.command()
@handles_errors
def config(
    store: Annotated[
        str | None, typer.Option("--store", help="Local artifact store URL, or a folder (saved absolute)")
    ] = None,
    remote_store: Annotated[
        str | None, typer.Option("--remote-store", help="Remote store for push/pull: s3://bucket/prefix")
    ] = None,
    executor: Annotated[Executor | None, typer.Option("--executor", help="Default executor")] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", metavar="KEY", help="Remove a setting")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Set or show settings kept in <home>/config.json (DSTACK_* variables win over them).

    An empty value unsets a setting (--store ""), as an empty DSTACK_* variable does. An s3://
    store whose endpoint says the bucket does not exist is refused; one that cannot be reached
    now is saved with a warning.

    Example: dstack config --remote-store s3://my-bucket/dstack
    """
    from dstack_prefect.settings import read_config, write_config  # noqa: PLC0415
    from dstack_prefect.storage import ArtifactStore  # noqa: PLC0415

    updates: dict[str, str | None] = {_key(k): None for k in unset or []}
    store, remote_store = _absolute(store), _absolute(remote_store)
    for option, url in (("--store", store), ("--remote-store", remote_store)):
        if url:  # a URL no store can open, or a bucket the endpoint says is not there, is refused
            _check_store(option, ArtifactStore(url))
    given = {"store": store, "remote_store": remote_store, "executor": executor.value if executor else None}
    # an empty value unsets the setting, as an empty DSTACK_* variable counts as unset
    updates.update({k: v or None for k, v in given.items() if v is not None})
    if updates:
        write_config(updates)
    settings = get_settings()
    saved = read_config(settings.home)
    effective = {
        "home": str(settings.home),
        "store": settings.store_url,
        "remote_store": settings.remote_store,
        "executor": settings.executor,
    }
    if as_json:
        print(json.dumps(effective, indent=2))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("SETTING", "VALUE", "FROM"):
        table.add_column(col, no_wrap=True)
    for key, value in effective.items():
        env = f"DSTACK_{key.upper()}"
        source = env if env in os.environ else "config.json" if key in saved else "default"
        table.add_row(key.replace("_", "-"), value or "", source)
    console.print(table)


def _check_store(option: str, store: ArtifactStore) -> None:
    """Refuse an S3 store whose endpoint says its bucket does not exist (every run would compute,
    then fail at upload); warn, and go on, when it cannot be asked now (offline, no credentials
    yet: it may work later or from elsewhere)."""
    try:
        problem = store.check()
    except StorageError as exc:
        msg = f"{option} {store.url!r}: {exc.message}"
        raise StorageError(msg, hint=exc.hint) from None
    if problem:
        err_console.print(
            f"warning: {option} {store.url!r} could not be checked now ({problem}); saved anyway",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _absolute(url: str | None) -> str | None:
    """A store folder (no ``proto://``) as an absolute path, ``~`` expanded: saved as typed, each
    folder a command ran in would have had a store of its own."""
    if not url or "://" in url:
        return url
    return os.path.abspath(os.path.expanduser(url))


# prune ---------------------------------------------------------------------------------------
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
    r = store.prune(keep_young=False)
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
