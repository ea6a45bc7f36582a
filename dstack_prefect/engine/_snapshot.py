"""The code snapshot: the repo's files as a step sees them.

Tracked, modified and untracked-but-not-ignored files of a git repo (git's own rules:
.gitignore, .git/info/exclude, the global excludes), minus what .dstackignore names. A folder
that is not a git repo works too: every file, minus .gitignore and .dstackignore patterns.
The snapshot is taken once per run, so edits made while a run goes on do not leak into it;
each step gets its own copy (a step may edit its files), so a large one is warned about, and
the run's copy is removed when the run ends.
Only regular files and symlinks are taken (no sockets, fifos, devices), and never the dstack
home when it lies inside the folder (`dstack run bash -c ...` from $HOME).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rich.filesize import decimal

from dstack_prefect.errors import ExecutionError
from dstack_prefect.settings import Settings

IGNORE_FILE = ".dstackignore"

LARGE_SNAPSHOT = 100 * 1000**2
"""Bytes past which a run warns that its code snapshot is large: each step gets its own copy."""


@dataclass(frozen=True)
class Snapshot:
    root: Path
    files: tuple[str, ...]
    """Paths relative to root, posix style, sorted."""


def _patterns(path: Path) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    """A small .gitignore subset: globs, a leading / anchors, a trailing / means a folder."""
    parts = rel.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pat = raw[1:] if negate else raw
        pat = pat.rstrip("/")
        if not pat:
            continue
        if pat.startswith("/") or "/" in pat:
            pat = pat.lstrip("/")
            hit = fnmatch.fnmatch(rel, pat) or any(
                fnmatch.fnmatch("/".join(parts[:i]), pat) for i in range(1, len(parts))
            )
        else:
            hit = any(fnmatch.fnmatch(p, pat) for p in parts)
        if hit:
            return not negate
    return False


def _git_files(root: Path) -> list[str] | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [p for p in out.decode().split("\0") if p]


def _is_git_root(root: Path) -> bool:
    return (root / ".git").exists()


def _walk_files(root: Path, patterns: list[str]) -> list[str]:
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        dirnames[:] = [
            d for d in dirnames if d != ".git" and not _ignored(f"{rel_dir}/{d}".lstrip("/"), patterns)
        ]
        for name in filenames:
            rel = f"{rel_dir}/{name}".lstrip("/")
            if not _ignored(rel, patterns):
                files.append(rel)
    return files


def _plain(path: Path) -> bool:
    """A regular file or a symlink: what a snapshot can copy (not a socket, fifo or device)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def _inside(root: Path, folder: Path) -> str | None:
    """``folder`` relative to ``root`` (posix) when it lies strictly inside, else None."""
    try:
        rel = folder.resolve().relative_to(root)
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def take_snapshot(root: Path) -> Snapshot:
    """List the files of ``root`` that make up the code a step sees."""
    root = root.resolve()
    dstack_patterns = _patterns(root / IGNORE_FILE)
    listed = _git_files(root) if _is_git_root(root) else None
    home = _inside(root, Settings.from_env().home)
    if home is not None:
        dstack_patterns = [*dstack_patterns, f"/{home}/"]
    if listed is None:
        files = _walk_files(root, _patterns(root / ".gitignore") + dstack_patterns)
    else:
        files = [f for f in listed if not _ignored(f, dstack_patterns)]
    return Snapshot(root=root, files=tuple(sorted(f for f in set(files) if _plain(root / f))))


def copy_snapshot(snapshot: Snapshot, target: Path) -> None:
    """Copy the snapshot's files into ``target`` (created, also for no files), keeping modes."""
    target.mkdir(parents=True, exist_ok=True)
    made: set[Path] = {target}
    for rel in snapshot.files:
        dst = target / rel
        parent = dst.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        src = snapshot.root / rel
        try:
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)
        except OSError as exc:
            msg = f"could not copy {rel} into the run's code snapshot: {exc.strerror or exc}"
            hint = f"name it in {snapshot.root / IGNORE_FILE} if steps do not need it"
            raise ExecutionError(msg, hint=hint) from exc


def large_snapshot_note(snapshot: Snapshot, limit: int = LARGE_SNAPSHOT) -> str | None:
    """A warning naming the biggest files when the snapshot holds more than ``limit`` bytes (a
    data set left untracked-but-not-ignored is copied into every step), else None."""
    sizes: list[tuple[int, str]] = []
    for rel in snapshot.files:
        with contextlib.suppress(OSError):
            sizes.append((os.lstat(snapshot.root / rel).st_size, rel))
    total = sum(size for size, _ in sizes)
    if total <= limit:
        return None
    biggest = ", ".join(f"{rel} {decimal(size)}" for size, rel in sorted(sizes, reverse=True)[:3])
    return (
        f"the code snapshot is {decimal(total)} in {len(sizes)} files (largest: {biggest}) and every"
        f" step gets its own copy; name large data in {IGNORE_FILE} and bring it in as an artifact"
        ' (dstack tags add data -a PATH, then deps: [":data"])'
    )


def hash_files(root: Path, files: tuple[str, ...] | list[str]) -> dict[str, str]:
    """sha256 of each file, by relative path."""
    out: dict[str, str] = {}
    for rel in files:
        h = hashlib.sha256()
        try:
            with open(root / rel, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            continue
        out[rel] = h.hexdigest()
    return out
