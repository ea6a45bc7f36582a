"""Commands: ls, cp, push, pull, config; the tags and prune groups (their commands: _tags, _prune).

Artifacts live in the local store (``dstack config --store``, default ``<home>/store``);
``push`` and ``pull`` copy runs and tags to and from the remote store (``--remote-store``).
A run is named as ``RUN`` or, for a tag, ``:TAG``, as in old dstack.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
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

from dstack_prefect.cli._app import app, console, err_console, handles_errors
from dstack_prefect.errors import (
    ArtifactNotFoundError,
    DstackError,
    RunNotFoundError,
    RunStateError,
    StorageError,
)
from dstack_prefect.settings import CONFIG_KEYS, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dstack_prefect.engine._runs import RunRow
    from dstack_prefect.storage import ArtifactStore, Manifest

# the groups' commands are in _tags and _prune; registered here, so `dstack -h` lists them first
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
    from dstack_prefect.spec import PROVIDERS  # noqa: PLC0415

    when = "a step stores its artifacts when it is done or gracefully stopped"
    if not is_finished(row.status):
        msg = f"run {row.name!r} is {row.status} and has stored no artifacts yet in {store.url}"
        return RunStateError(msg, hint=f"{when}: try again then (`dstack logs {row.name} -a` follows it)")
    # a provider run (`dstack run bash -c ...`): its command line is not known here
    again = f"`dstack run {row.workflow}`" if row.workflow and row.workflow not in PROVIDERS else "it"
    if row.status == "done":
        msg = f"run {row.name!r} is done but stored no artifacts in {store.url}"
        hint = "its steps declare none, or it ran with another store (`dstack config` shows this one)"
        return ArtifactNotFoundError(msg, hint=hint)
    verb = {"aborted": "was aborted", "stopped": "was stopped", "failed": "failed"}[row.status]
    msg = f"run {row.name!r} {verb} before any step stored its artifacts in {store.url}"
    why = "none of its steps got that far" if row.status == "stopped" else "not when it fails or is aborted"
    return ArtifactNotFoundError(msg, hint=f"{when}, {why}: run {again} again")


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
    now is saved with a warning. The table's FROM column (--json: "from") says where each value
    comes from: its DSTACK_* variable, config.json or the default.

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
    sources = {key: _source(key, saved) for key in effective}
    if as_json:  # where each value comes from, as the table's FROM column says
        print(json.dumps({**effective, "from": sources}, indent=2))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("SETTING", "VALUE", "FROM"):
        table.add_column(col, no_wrap=True)
    for key, value in effective.items():
        table.add_row(key.replace("_", "-"), value or "", sources[key])
    console.print(table)


def _source(key: str, saved: dict[str, Any]) -> str:
    """Where setting ``key`` comes from: its DSTACK_* variable (set, not empty), config.json, or
    the default."""
    env = f"DSTACK_{key.upper()}"
    return env if os.environ.get(env) else "config.json" if key in saved else "default"


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
