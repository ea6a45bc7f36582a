"""The local side: walk artifact folders, hash files in a thread pool, place files safely."""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from dstack_prefect.errors import StorageError, UnsafePathError

from ._model import normalize_artifact_path
from ._progress import NullProgress, Progress

CHUNK = 1 << 20
WORKERS = min(32, (os.cpu_count() or 2) * 4)


@dataclass(frozen=True)
class LocalFile:
    """A file found under an artifact: its store path, where it is on disk, its size and mode,
    and its mtime and inode (a sync hashes again only the files whose stamp changed)."""

    path: str
    local: Path
    size: int
    mode: int
    mtime_ns: int = 0
    ino: int = 0

    @property
    def stamp(self) -> tuple[int, int, int]:
        """(size, mtime_ns, inode): what changes when the file is written or replaced."""
        return self.size, self.mtime_ns, self.ino


def _local_file(path: str, local: Path, st: os.stat_result) -> LocalFile:
    return LocalFile(path, local, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_ino)


def walk_artifacts(
    workdir: Path, artifact_paths: Sequence[str], absolute_root: Path | None = None
) -> tuple[list[str], list[LocalFile], list[dict[str, str]]]:
    """Normalised artifact paths, the files under them, and what was skipped (with the reason).

    A relative artifact path is taken under ``workdir``; an absolute one as it is, or under
    ``absolute_root`` when one is given (``/opt/x`` is read from ``absolute_root/opt/x``). A missing path
    is an empty artifact. Symlinks to files are stored as the files they point to; symlinks to
    folders, dangling symlinks and special files are skipped and recorded, and so is a folder
    this user cannot read (reason ``UNREADABLE_FOLDER``: an upload refuses it, see
    :func:`unreadable_folder_error`).
    """
    artifacts: list[str] = []
    files: dict[str, LocalFile] = {}
    skipped: list[dict[str, str]] = []
    for declared in artifact_paths:
        art = normalize_artifact_path(declared)
        if art not in artifacts:
            artifacts.append(art)
        if not art.startswith("/"):
            top = workdir / art
        else:
            top = absolute_root / art.lstrip("/") if absolute_root is not None else Path(art)
        if top.is_file():
            files[art] = _local_file(art, top, top.stat())
            continue
        if not top.is_dir():
            continue

        def unreadable(exc: OSError, top: Path = top, art: str = art) -> None:
            rel = os.path.relpath(exc.filename, top) if exc.filename else "."
            path = art if rel == "." else posixpath.join(art, Path(rel).as_posix())
            try:
                mode = f" (mode {stat.S_IMODE(os.stat(exc.filename).st_mode):03o})"
            except (OSError, TypeError):
                mode = ""
            skipped.append({"path": path, "reason": f"{UNREADABLE_FOLDER}{mode}"})

        for dirpath, dirnames, filenames in os.walk(top, onerror=unreadable):
            rel_dir = os.path.relpath(dirpath, top)
            base = art if rel_dir == "." else posixpath.join(art, Path(rel_dir).as_posix())
            for name in dirnames:
                full = os.path.join(dirpath, name)
                if os.path.islink(full):
                    skipped.append({"path": posixpath.join(base, name), "reason": "symlink to a folder"})
            for name in filenames:
                full = os.path.join(dirpath, name)
                store_path = posixpath.join(base, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    skipped.append({"path": store_path, "reason": "dangling symlink"})
                    continue
                if not stat.S_ISREG(st.st_mode):
                    skipped.append({"path": store_path, "reason": "not a regular file"})
                    continue
                files[store_path] = _local_file(store_path, Path(full), st)
    return artifacts, sorted(files.values(), key=lambda f: f.path), skipped


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """The hex sha256 and size of ``path``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return h.hexdigest(), size


def copy_hashed(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` and return the sha256 and size of what was written: read once, so
    the digest names the copy even when ``src`` is being written meanwhile."""
    h = hashlib.sha256()
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def hash_many(
    paths: Sequence[Path], progress: Progress | None = None, phase: str = "hash"
) -> list[tuple[str, int]]:
    """sha256 and size of each path, in order, hashed by a thread pool."""
    prog = progress or NullProgress()
    sizes = 0
    for p in paths:
        with contextlib.suppress(OSError):
            sizes += p.stat().st_size
    prog.begin(phase, len(paths), sizes)

    def one(p: Path) -> tuple[str, int]:
        result = sha256_file(p)
        prog.advance(1, result[1])
        return result

    if len(paths) < 4:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, paths))


UNREADABLE_FOLDER = "folder not readable by this user"


def unreadable_folder_error(skipped: Sequence[dict[str, str]], label: str) -> StorageError | None:
    """The error for an artifact folder of ``label`` its user cannot list (its files would be
    missing from the artifact without a word), as :func:`unreadable_error` says it for a file."""
    entry = next((e for e in skipped if e["reason"].startswith(UNREADABLE_FOLDER)), None)
    if entry is None:
        return None
    why = entry["reason"].removeprefix("folder ")
    msg = f"cannot upload the artifacts of {label}: artifact folder {entry['path']!r} is {why}"
    hint = (
        f"make it readable in the step, e.g. end its commands with `chmod -R a+rX {entry['path']}` (a "
        "container running as root can leave folders only root reads)"
    )
    return StorageError(msg, hint=hint)


def unreadable_error(
    exc: PermissionError, files: Sequence[LocalFile], artifacts: Sequence[str], label: str
) -> StorageError | None:
    """The error for an artifact file of ``label`` (``run/step``) that its user cannot read (a
    container running as root leaves one): named as the step has it, with the chmod that
    fixes it; not a store permission problem. None when ``exc`` names none of ``files``."""
    f = next((f for f in files if str(f.local) == str(exc.filename)), None)
    if f is None:
        return None
    art = next((a for a in artifacts if f.path == a or f.path.startswith(a.rstrip("/") + "/")), f.path)
    msg = (
        f"cannot upload the artifacts of {label}: artifact file {f.path!r} is not readable by this "
        f"user (mode {f.mode:03o})"
    )
    hint = (
        f"make it readable in the step, e.g. end its commands with `chmod -R a+rX {art}` (a "
        "container running as root can leave files only root reads)"
    )
    return StorageError(msg, hint=hint)


T = TypeVar("T")
R = TypeVar("R")


def run_parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` over ``items`` in a thread pool, results in order; the first error propagates."""
    items = list(items)
    if len(items) < 2:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(fn, items))


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def destination(root: Path, path: str, absolute_root: Path | None, *, label: str) -> Path:
    """Where store ``path`` lands under ``root``; UnsafePathError if it would leave ``root``.

    Relative paths land under ``root``. Absolute ones land under ``absolute_root`` (itself inside
    ``root``) with the leading ``/`` dropped, and are refused when no ``absolute_root`` is given.
    """
    if path.startswith("/"):
        if absolute_root is None:
            msg = f"{label}: absolute artifact path {path!r} would be written outside {str(root)!r}"
            raise UnsafePathError(
                msg, hint="pass absolute_root= (a folder inside the target) to map absolute paths"
            )
        base, rel = absolute_root, path.lstrip("/")
    else:
        base, rel = root, path
    norm = posixpath.normpath(rel) if rel else "."
    if norm in {".", ""} or norm == ".." or norm.startswith("../") or "\\" in rel or "\0" in rel:
        msg = f"{label}: artifact path {path!r} would be written outside {str(root)!r}"
        raise UnsafePathError(msg, hint="the manifest is damaged or crafted; do not use this run")
    dest = Path(os.path.abspath(base / norm))
    if not _inside(str(dest), os.path.abspath(root)):
        msg = f"{label}: artifact path {path!r} would be written outside {str(root)!r}"
        raise UnsafePathError(msg, hint="absolute_root must be a folder inside the target")
    return dest


def make_folder(folder: Path, root: Path, shown: Path | None = None) -> None:
    """``folder`` and its missing parents, made only if the nearest existing one is really inside
    ``root``: a symlink in the target to a folder elsewhere must not get even an empty folder
    made through it. ``shown`` is the path the error names (``folder`` by default)."""
    existing = folder
    while not existing.exists() and existing != root and root in existing.parents:
        existing = existing.parent
    real = os.path.realpath(existing)
    if not _inside(real, os.path.realpath(root)):
        msg = (
            f"{str(shown or folder)!r} would be written through a symlink to {real!r}, outside {str(root)!r}"
        )
        raise UnsafePathError(msg, hint="remove the symlink from the target folder")
    folder.mkdir(parents=True, exist_ok=True)


def place(tmp: Path, dest: Path, root: Path, mode: int) -> None:
    """Move the verified file ``tmp`` to ``dest`` (atomically) with ``mode``; never outside ``root``."""
    make_folder(dest.parent, root, dest)
    real_parent = os.path.realpath(dest.parent)
    if not _inside(real_parent, os.path.realpath(root)):  # made through a link since: a race
        msg = f"{str(dest)!r} would be written through a symlink to {real_parent!r}, outside {str(root)!r}"
        raise UnsafePathError(msg, hint="remove the symlink from the target folder")
    os.chmod(tmp, mode & 0o7777)
    os.replace(tmp, dest)
