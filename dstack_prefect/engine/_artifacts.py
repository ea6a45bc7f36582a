"""A step's artifacts and cache folders, between its working folder and the store.

Before a step: its deps' manifests (steps of this run, reused runs, tags) are placed at their
paths in the working directory, each blob checked against its sha256 first; `cache` folders
are restored. While it runs: its `mount: true` artifacts are synced to the store every
``Settings.mount_sync_interval`` seconds (:class:`MountSync`). After it (also after a graceful
stop, never after an abort): its artifact paths are uploaded (only blobs the store lacks) and its
manifest is committed last; cache folders are saved. Paths are relative to the step's
working_dir, as in old dstack.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from dstack_prefect.errors import ArtifactNotFoundError, StorageError
from dstack_prefect.graph import Step
from dstack_prefect.storage import ArtifactStore, Manifest, StepSync, normalize_artifact_path

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


def place_deps(store: ArtifactStore, step: Step, workdir: Path, manifests: list[Manifest]) -> list[str]:
    """Put the deps' files at their paths; an error names the step's YAML location.

    The message carries the hint too (a run's failure shows only the message): a dep's file
    missing from the store, or damaged there (and removed), says which rerun stores it again.
    Returns a note per dep file that replaced a file of the repo's code in the step's folder
    (as old dstack's deps did), naming both, so the step's log says which copy it reads.
    """
    if not manifests:
        return []
    target = step_dir(workdir, step)
    replaced = []
    for m in manifests:
        paths = [f.path for f in m.files if not f.path.startswith("/") and (target / f.path).is_file()]
        if len(paths) == 1:
            replaced.append(
                f"the artifact {paths[0]} of {m.shown} replaces the repo's file of that name in this "
                "step's folder"
            )
        elif paths:
            some = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
            replaced.append(
                f"{len(paths)} artifact files of {m.shown} replace the repo's files of those names in this "
                f"step's folder: {some}"
            )
    try:
        store.materialize(manifests, target, absolute_root=absolute_root(workdir, step))
    except StorageError as exc:
        where = f"{step.source}: " if step.source else ""
        msg = f"{where}step '{step.name}': {exc.message}" + (f"; {exc.hint}" if exc.hint else "")
        raise type(exc)(msg, hint=exc.hint) from exc
    return replaced


def tag_manifests(store: ArtifactStore, step: Step) -> list[Manifest]:
    """The manifests of the step's tag deps, each marked with its tag (``Manifest.through_tag``:
    messages and `dep changed` name it ``:TAG``, not the run it names).

    Raises:
        ArtifactNotFoundError: a tag dep is not in the store: located at the workflow, with the
            ways to make the tag.
    """
    found: list[Manifest] = []
    for dep in step.deps:
        if dep.kind != "tag":
            continue
        try:
            manifests = store.get_tag(dep.name).manifests
        except ArtifactNotFoundError:
            where = dep.option or step.source
            where = f"{where}: " if where else ""
            msg = f"{where}workflow '{step.name}' depends on the tag '{dep.name}', not in {store.url}"
            hint = (
                f"make it from a done run (dstack tags add {dep.name} RUN) or from folders (dstack tags add"
                f" {dep.name} -a PATH), or get it from the remote store (dstack pull :{dep.name});"
                " dstack tags lists the tags"
            )
            raise ArtifactNotFoundError(msg, hint=hint) from None
        found += [m.through_tag(dep.name) for m in manifests]
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


def absolute_root(workdir: Path, step: Step) -> Path:
    """Where the step's deps' absolute artifacts are placed, and from where a containerised
    step's absolute paths are mounted (``/opt/x`` is ``absolute_root/opt/x``)."""
    return step_dir(workdir, step) / ABSOLUTE_ROOT


def collected_paths(step: Step, *, container: bool, mount_only: bool = False) -> tuple[list[str], list[str]]:
    """The step's artifact paths as they are read after it, and those that cannot be.

    `~` is the home of whoever ran the step: for a local step this machine's (as for `cache`).
    A containerised step's absolute paths are host folders mounted at them
    (:func:`container_artifact_mounts`), read back from there; its `~` paths are the
    container's own home, gone when it is removed: left out, and said so, rather than read
    from the host's folders of the same name.
    """
    paths: list[str] = []
    lost: list[str] = []
    for art in step.artifacts:
        if mount_only and not art.mount:
            continue
        path = art.path.strip()
        home = path == "~" or path.startswith("~/")
        if container and home:
            lost.append(path)
            continue
        paths.append(os.path.expanduser(path) if home else path)
    return paths, lost


def absolute_dep_paths(deps: list[Manifest]) -> list[str]:
    """The absolute artifact paths of the deps' manifests, in order, once each."""
    return list(dict.fromkeys(a for m in deps for a in m.artifacts if a.startswith("/")))


def container_artifact_mounts(step: Step, workdir: Path, deps: list[Manifest]) -> dict[str, Path]:
    """Host folders to mount at a containerised step's absolute artifact paths and its deps',
    as old dstack's runner bind-mounted every artifact at its path: what the step writes there
    reaches the host to be saved, and what a dep left there (placed under
    :func:`absolute_root`) is where the step looks for it, e.g. a conda env in
    /opt/conda/envs/myenv. A path inside another one rides on the outer mount."""
    root = absolute_root(workdir, step)
    own = [art.path.strip() for art in step.artifacts if art.path.strip().startswith("/")]
    wanted = sorted({normalize_artifact_path(p) for p in own} | set(absolute_dep_paths(deps)))
    mounts: dict[str, Path] = {}
    for path in wanted:  # a folder sorts before what is inside it
        if any(path.startswith(outer + "/") for outer in mounts):
            continue
        host = root / path.lstrip("/")
        if not host.exists():
            host.mkdir(parents=True)
        mounts[path] = host
    return mounts


def save(
    store: ArtifactStore,
    run: str,
    step: Step,
    workdir: Path,
    paths: list[str],
    extra: dict[str, Any],
    *,
    container: bool,
) -> Manifest:
    """Store the step's artifact ``paths`` (``collected_paths``) and commit its manifest; a
    containerised step's absolute ones are read from the host folders mounted at them."""
    root = absolute_root(workdir, step) if container else None
    return store.put_step(
        run, step.name, step.name, step_dir(workdir, step), paths, extra, absolute_root=root
    )


class MountSync:
    """Syncs a running step's `mount: true` artifacts to the store: every ``interval`` seconds
    in a thread while the ``with`` block runs, and once more on :meth:`final` (the step ended
    without storing its artifacts: aborted or failed).

    Old dstack mounted these folders from the bucket, so what a step wrote there outlived an
    abort or a crash. The synced manifest (``storage/_sync.py``) is what ``ls`` and ``cp`` show
    of them until the step's own manifest is stored; :meth:`drop` then removes it. A sync that
    fails (the store down, a full disk) never fails the step: the first failure is noted on the
    step's log and later syncs try again. A step without mount artifacts costs nothing.
    """

    def __init__(
        self,
        store: ArtifactStore,
        run: str,
        step: Step,
        workdir: Path,
        *,
        container: bool,
        notes: Any,
        interval: float,
    ) -> None:
        paths, _lost = collected_paths(step, container=container, mount_only=True)
        self.store, self.run, self.step, self.notes = store, run, step, notes
        self.interval = interval
        self._sync = (
            StepSync(
                store,
                run,
                step.name,
                step.name,
                step_dir(workdir, step),
                paths,
                absolute_root=absolute_root(workdir, step) if container else None,
                staging=workdir.parent / f".sync-{step.name}",  # a non-local store's copies
            )
            if paths
            else None
        )
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed = False

    def __enter__(self) -> MountSync:
        if self._sync is not None:
            self._thread = threading.Thread(
                target=self._loop, name=f"dstack-sync-{self.step.name}", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._halt.wait(self.interval):
            self._once(final=False)

    def _once(self, *, final: bool) -> None:
        if self._sync is None:
            return
        with self._lock:
            try:
                self._sync.sync(final=final)
            except Exception as exc:  # noqa: BLE001 - a sync must never fail the step
                self._failed_once(exc)

    def _failed_once(self, exc: Exception) -> None:
        if self._failed:
            return
        self._failed = True
        said = exc.message if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
        self.notes.warning(
            f"syncing the mount artifacts of {self.step.name} to {self.store.url} failed: {said}; "
            "the step goes on, and later syncs try again (said once)"
        )

    @property
    def kept(self) -> str:
        """What an abort's message adds: the mount artifacts kept as synced ("" without any)."""
        return "" if self._sync is None else " (mount: true ones: as last synced)"

    def final(self) -> None:
        """One more sync, after the step ended without storing its artifacts (aborted, failed):
        its mount artifacts stay readable as they were when it ended."""
        self._once(final=True)

    def drop(self) -> None:
        """Remove the synced manifest: the step's own manifest is stored, and is the truth now."""
        if self._sync is None:
            return
        try:
            self.store.drop_synced(self.run, self.step.name)
        except StorageError as exc:  # harmless: readers prefer the step's manifest; rm removes it
            self._failed_once(exc)


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


def tag_done_run(store: ArtifactStore, tag: str, run: str, workflow: str) -> str | None:
    """Tag the done ``run`` as its `-t TAG` asked; the warning to log instead when someone made
    the tag while it ran (`tags add`, another run's `-t`): the run checked at its start that the
    tag was new, and never moves one made since silently."""
    try:
        other = store.get_tag(tag).run
    except ArtifactNotFoundError:
        other = None
    if other is not None and other != run:
        return (
            f"the run is not tagged {tag}: the tag was made while it ran, naming run {other}; "
            f"move it with `dstack tags add {tag} {run} -y`"
        )
    store.add_tag(tag, run, workflow, overwrite=True)
    return None
