"""A step's artifacts and cache folders, between its working folder and the store.

Before a step: its deps' manifests (steps of this run, reused runs, tags) are placed at their
paths in the working directory, each blob checked against its sha256 first; `cache` folders
are restored. After it (also after a graceful stop, never after an abort): its artifact paths
are uploaded (only blobs the store lacks) and its manifest is committed last; cache folders are
saved. Paths are relative to the step's working_dir, as in old dstack.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dstack_prefect.errors import StorageError
from dstack_prefect.graph import Step
from dstack_prefect.storage import ArtifactStore, Manifest

ABSOLUTE_ROOT = ".dstack-absolute"
"""Absolute artifact paths (old dstack allowed /opt/conda/envs/x) land under this folder."""


def repo_identity(root: Path) -> str:
    """Scopes reuse and cache folders: the git remote URL, else the repo's absolute path."""
    try:
        url = subprocess.run(
            ["git", "-C", str(root), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        url = ""
    ident = url or str(root.resolve())
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def step_dir(workdir: Path, step: Step) -> Path:
    return (workdir / step.working_dir).resolve()


def place_deps(store: ArtifactStore, step: Step, workdir: Path, manifests: list[Manifest]) -> None:
    """Put the deps' files at their paths; an error names the step's YAML location.

    The message carries the hint too (a run's failure shows only the message): a dep's file
    missing from the store, or damaged there (and removed), says which rerun stores it again.
    """
    if not manifests:
        return
    try:
        store.materialize(
            manifests, step_dir(workdir, step), absolute_root=step_dir(workdir, step) / ABSOLUTE_ROOT
        )
    except StorageError as exc:
        where = f"{step.source}: " if step.source else ""
        msg = f"{where}step '{step.name}': {exc.message}" + (f"; {exc.hint}" if exc.hint else "")
        raise type(exc)(msg, hint=exc.hint) from exc


def tag_manifests(store: ArtifactStore, step: Step) -> list[Manifest]:
    found: list[Manifest] = []
    for dep in step.deps:
        if dep.kind == "tag":
            found.extend(store.get_tag(dep.name).manifests)
    return found


def make_artifact_folders(step: Step, workdir: Path) -> None:
    """Create each declared relative artifact folder, as old dstack's bind mounts did, so
    `echo hi > output/hello.txt` works. A path whose last part has a suffix (model.pt) is taken
    for a file and left alone."""
    base = step_dir(workdir, step)
    for art in step.artifacts:
        path = art.path.removeprefix("./")
        if path.startswith(("/", "~")) or "." in Path(path).name:
            continue
        target = (base / path).resolve()
        if target.is_relative_to(base) and not target.exists():
            target.mkdir(parents=True, exist_ok=True)


def collected_paths(step: Step, *, container: bool) -> tuple[list[str], list[str]]:
    """The step's artifact paths as they are read after it, and those that cannot be.

    `~` is the home of whoever ran the step: for a local step this machine's (as for `cache`).
    A containerised step's `~` and absolute paths are inside the container, gone when it is
    removed; only paths under its working directory (bind-mounted) reach the host. Those are
    left out, and said so, rather than read from the host's folders of the same name.
    """
    paths: list[str] = []
    lost: list[str] = []
    for art in step.artifacts:
        path = art.path.strip()
        home = path == "~" or path.startswith("~/")
        if container and (home or path.startswith("/")):
            lost.append(path)
            continue
        paths.append(os.path.expanduser(path) if home else path)
    return paths, lost


def save(
    store: ArtifactStore, run: str, step: Step, workdir: Path, paths: list[str], extra: dict[str, Any]
) -> Manifest:
    """Store the step's artifact ``paths`` (``collected_paths``) and commit its manifest."""
    return store.put_step(run, step.name, step.name, step_dir(workdir, step), paths, extra)


def _local_cache_path(path: str) -> bool:
    """Relative cache paths live in the fresh step folder and need restoring; `~`/absolute ones
    are the machine's own folders when the step runs locally, and persist by themselves (in a
    container they are host folders mounted there: `container_cache_mounts`)."""
    return not (path.startswith("~") or path.startswith("/"))


def keeps_caches(step: Step) -> bool:
    """Whether the step has cache folders that the store keeps (restored before, saved after)."""
    return any(_local_cache_path(path) for path in step.cache)


def restore_caches(store: ArtifactStore, repo_id: str, step: Step, workdir: Path) -> None:
    for path in step.cache:
        if _local_cache_path(path):
            store.restore_cache(repo_id, step.name, path, step_dir(workdir, step))


def cache_mount_root(home: Path, repo_id: str, workflow: str) -> Path:
    """Where a containerised workflow's `~`/absolute cache folders live on the host."""
    return home / "cache-mounts" / quote(repo_id, safe="") / quote(workflow, safe="")


def container_cache_mounts(home: Path, repo_id: str, step: Step) -> dict[str, Path]:
    """Host folders to mount at a containerised step's `~`/absolute cache paths (a container
    forgets its own home between runs; the host keeps these, per repo and workflow)."""
    mounts: dict[str, Path] = {}
    for path in step.cache:
        if not _local_cache_path(path):
            host = cache_mount_root(home, repo_id, step.name) / quote(path.rstrip("/"), safe="")
            host.mkdir(parents=True, exist_ok=True)
            mounts[path.rstrip("/") or path] = host
    return mounts


def save_caches(store: ArtifactStore, repo_id: str, step: Step, workdir: Path) -> None:
    for path in step.cache:
        if _local_cache_path(path) and (step_dir(workdir, step) / path).exists():
            store.save_cache(repo_id, step.name, path, step_dir(workdir, step))
