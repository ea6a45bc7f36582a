"""Tags: adding one (a run's manifests, or local folders through a synthetic run) and deleting one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dstack_prefect.errors import ArtifactNotFoundError, StorageError

from ._errors import translate_errors
from ._model import Manifest, Tag, check_tag_name, synthetic_run, utc_now
from ._progress import Progress

if TYPE_CHECKING:
    from ._store import ArtifactStore


def add_tag(
    store: ArtifactStore,
    tag: str,
    run: str,
    workflow: str | None,
    manifests: Sequence[Manifest] | None,
    *,
    overwrite: bool,
) -> Tag:
    """``ArtifactStore.add_tag``: tag ``run`` of ``store`` with copies of its manifests."""
    key = store._tag_key(check_tag_name(tag))
    with translate_errors(f"adding tag {tag}"), store._b.writing():  # a prune waits for the tag
        chosen = list(manifests) if manifests is not None else store.list_manifests(run)
        if not chosen:
            msg = f"cannot tag run {run!r}: it has no stored artifacts in {store.url}"
            hint = (
                "check the name with `dstack ps -a`; a step stores its artifacts when it is done "
                "or stopped, not when it fails; or tag folders with -a PATH"
            )
            raise ArtifactNotFoundError(msg, hint=hint)
        if not overwrite and store._b.exists(key):
            msg = f"tag {tag!r} already exists"
            raise StorageError(
                msg, hint=f"delete it first (`dstack tags delete {tag}`) or pass -y to override"
            )
        last = max(chosen, key=lambda m: m.created_at)
        t = Tag(tag=tag, run=run, workflow=workflow or last.workflow, manifests=chosen)
        old = store._tag_or_none(key)
        store._b.write_atomic(key, t.model_dump_json().encode())
        store._drop_synthetic(old, keep=run)
        return t


def add_tag_from_dirs(
    store: ArtifactStore, tag: str, paths: Sequence[Path | str], *, overwrite: bool, progress: Progress | None
) -> Tag:
    """``ArtifactStore.add_tag_from_dirs``: upload local folders as tag ``tag`` of ``store``."""
    check_tag_name(tag)
    cwd = Path.cwd()
    arts: list[str] = []
    for p in paths:
        if not Path(p).is_dir():
            what = "is a file, not a folder" if Path(p).exists() else "does not exist"
            msg = f"{str(p)!r} {what}; only folders can be uploaded as a tag"
            raise StorageError(msg, hint="pass a folder with -a PATH (its parent, for one file)")
        resolved, here = Path(p).resolve(), cwd.resolve()
        if resolved == Path(resolved.anchor):
            msg = f"{str(p)!r} is the filesystem root; it cannot be uploaded as a tag"
            raise StorageError(msg, hint="pass the folders under it you need, each with -a PATH")
        # "." (or a path to it) is taken by its absolute path, as ".." is
        inside = not Path(p).is_absolute() and resolved != here and resolved.is_relative_to(here)
        arts.append(Path(p).as_posix() if inside else str(resolved))
    if not overwrite and store._b.exists(store._tag_key(tag)):
        msg = f"tag {tag!r} already exists"
        raise StorageError(msg, hint=f"delete it first (`dstack tags delete {tag}`) or pass -y to override")
    run = synthetic_run(tag, utc_now())
    m = store.put_step(run, "main", None, cwd, arts, {"status": "done", "synthetic": True}, progress)
    return store.add_tag(tag, run, None, [m], overwrite=True)


def delete_tag(store: ArtifactStore, tag: str) -> None:
    """``ArtifactStore.delete_tag``: delete tag ``tag`` of ``store``, and its synthetic run."""
    key = store._tag_key(tag)
    with translate_errors(f"deleting tag {tag}"):
        if not store._b.exists(key):
            store.get_tag(tag)  # the error that names it
        old = store._tag_or_none(key)
        store._b.rm([key])
        store._drop_synthetic(old)
