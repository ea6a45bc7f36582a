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
import hashlib
import os
import re
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
    return [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith("#")]


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    folders_only: bool
    anchored: bool


def _translate(glob: str) -> str:
    """A gitignore glob as a regex: ``*`` and ``?`` stay within a name, ``**/`` is any number
    of folders (none too), a trailing ``/**`` everything below, ``[...]`` a class."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        if glob.startswith("**/", i) and (i == 0 or glob[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i) and i + 2 == n and (i == 0 or glob[i - 1] == "/"):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (close := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : close]
            negated = body[0] in "!^"
            out.append("[" + ("^" if negated else "") + body[negated:].replace("\\", "\\\\") + "]")
            i = close + 1
        elif glob[i] == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _rules(patterns: list[str]) -> list[_Rule]:
    """.gitignore lines as rules (a leading ``\\`` escapes ``#`` or ``!``)."""
    rules: list[_Rule] = []
    for raw in patterns:
        negate = raw.startswith("!")
        pat = raw[1:] if negate else raw.removeprefix("\\")
        folders_only = pat.endswith("/")
        pat = pat.rstrip("/")
        if not pat:
            continue
        anchored = "/" in pat
        pat = pat.lstrip("/")
        rules.append(_Rule(re.compile(_translate(pat) + r"\Z", re.S), negate, folders_only, anchored))
    return rules


def _matches(rel: str, is_folder: bool, rules: list[_Rule]) -> bool:
    """Whether ``rel`` itself is ignored: the last rule that matches decides."""
    ignored = False
    name = rel.rsplit("/", 1)[-1]
    for rule in rules:
        if rule.folders_only and not is_folder:
            continue
        if rule.regex.match(rel if rule.anchored else name):
            ignored = not rule.negate
    return ignored


def _ignored(rel: str, rules: list[_Rule], folders: dict[str, bool] | None = None) -> bool:
    """Whether the file ``rel`` is ignored: itself, or a folder above it (git's rule: a file
    in an ignored folder cannot be taken back by a ``!`` line). ``folders`` memoizes."""
    if not rules:
        return False
    memo = {} if folders is None else folders
    parts = rel.split("/")
    for i in range(1, len(parts)):
        folder = "/".join(parts[:i])
        if folder not in memo:
            memo[folder] = _matches(folder, True, rules)
        if memo[folder]:
            return True
    return _matches(rel, False, rules)


def _git_files(root: Path) -> list[str] | None:
    """Tracked, modified and untracked-not-ignored files of the git work tree at or around
    ``root`` (relative to ``root``), by git's rules; None outside a work tree, without git, or
    where the enclosing repo ignores ``root`` itself. A submodule or a nested repo is listed by
    its own rules (an uninitialised submodule is an empty folder: nothing)."""
    git = ["git", "-c", "core.quotePath=false", "-C", str(root)]
    try:
        out = subprocess.run(
            [*git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout
        if not _is_git_root(root) and not out:
            ignored = subprocess.run([*git, "check-ignore", "-q", "."], capture_output=True, check=False)
            if ignored.returncode == 0:
                return None
    except (OSError, subprocess.CalledProcessError):
        return None
    files: list[str] = []
    for entry in {os.fsdecode(p).rstrip("/") for p in out.split(b"\0") if p}:
        if _is_git_root(root / entry) and (root / entry).is_dir() and not (root / entry).is_symlink():
            files += [f"{entry}/{f}" for f in _git_files(root / entry) or []]
        else:
            files.append(entry)
    return files


def _is_git_root(root: Path) -> bool:
    return (root / ".git").exists()


def _walk_files(root: Path, patterns: list[str]) -> list[str]:
    """Every file and link under ``root`` but what ``patterns`` ignore; a git repo inside is
    listed by git's rules."""
    rules = _rules(patterns)
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep: list[str] = []
        for d in dirnames:
            rel = prefix + d
            if d == ".git":
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                filenames.append(d)  # a link to a folder is a link, not a folder to enter
            elif _matches(rel, True, rules):
                continue
            elif (nested := _git_files(Path(dirpath, d)) if _is_git_root(Path(dirpath, d)) else None) is None:
                keep.append(d)
            else:
                files += [f for f in (rel + "/" + n for n in nested) if not _ignored(f, rules)]
        dirnames[:] = keep
        for name in filenames:
            rel = prefix + name
            if not _matches(rel, False, rules):
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
    listed = _git_files(root)
    home = _inside(root, Settings.from_env().home)
    if home is not None:
        dstack_patterns = [*dstack_patterns, f"/{home}/"]
    if listed is None:
        files = _walk_files(root, _patterns(root / ".gitignore") + dstack_patterns)
    else:
        rules, folders = _rules(dstack_patterns), dict[str, bool]()
        files = [f for f in listed if not _ignored(f, rules, folders)]
    return Snapshot(root=root, files=tuple(sorted(f for f in set(files) if _plain(root / f))))


def link_target(root: Path, rel: str) -> str:
    """Where the link ``rel`` points, as a step must see it: its target as written, but one
    that leaves ``root`` by a relative path (``data -> ../data``) made absolute, so that it
    reaches the same place from the step's folder."""
    target = os.readlink(root / rel)
    if os.path.isabs(target):
        return target
    joined = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if joined == ".." or joined.startswith("../"):
        return os.path.normpath(os.path.join(root, os.path.dirname(rel), target))
    return target


def _copy_file(src: str, dst: str) -> None:
    """Copy a regular file, keeping its mode bits and times (``copy_file_range``: in-kernel,
    and a reflink where the filesystem has them)."""
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd_in)
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _copy_data(fd_in, fd_out, st.st_size)
            os.fchmod(fd_out, stat.S_IMODE(st.st_mode))
            os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_data(fd_in: int, fd_out: int, size: int) -> None:
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None and size:
        try:
            while copy_range(fd_in, fd_out, 1 << 30):
                pass
        except OSError:  # not across filesystems on older kernels, or not on this one
            os.lseek(fd_in, 0, os.SEEK_SET)
            os.lseek(fd_out, 0, os.SEEK_SET)
            os.ftruncate(fd_out, 0)
        else:
            return
    with open(fd_in, "rb", closefd=False) as fin, open(fd_out, "wb", closefd=False) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def copy_snapshot(snapshot: Snapshot, target: Path) -> None:
    """Copy the snapshot's files into ``target`` (created, also for no files), keeping modes
    and times; links stay links (see `link_target`), what is behind them is not copied."""
    target.mkdir(parents=True, exist_ok=True)
    made = {""}
    for rel in snapshot.files:
        folder = os.path.dirname(rel)
        if folder not in made:
            os.makedirs(os.path.join(target, folder), exist_ok=True)
            made.add(folder)
        src, dst = os.path.join(snapshot.root, rel), os.path.join(target, rel)
        try:
            if os.path.islink(src):
                os.symlink(link_target(snapshot.root, rel), dst)
            else:
                _copy_file(src, dst)
        except OSError as exc:
            msg = f"could not copy {rel} into the run's code snapshot: {exc.strerror or exc}"
            hint = f"name it in {snapshot.root / IGNORE_FILE} if steps do not need it"
            raise ExecutionError(msg, hint=hint) from exc


def copy_tree(source: Path, target: Path) -> None:
    """Copy the run's code snapshot folder into a step's folder (which may exist): files with
    their modes and times, links as links. About three times faster than ``shutil.copytree``
    on many small files (no extended attributes, no per-file ``stat`` calls from Python)."""
    target.mkdir(parents=True, exist_ok=True)
    src_root, dst_root = str(source), str(target)
    for dirpath, dirnames, filenames in os.walk(src_root):
        rel = os.path.relpath(dirpath, src_root)
        dst_dir = dst_root if rel == "." else os.path.join(dst_root, rel)
        for name in dirnames + filenames:
            src, dst = os.path.join(dirpath, name), os.path.join(dst_dir, name)
            if name in dirnames and not os.path.islink(src):
                os.makedirs(dst, exist_ok=True)
                continue
            try:
                _copy_entry(src, dst)
            except FileExistsError:  # a step folder used before (a retried step): replaced
                os.unlink(dst)
                _copy_entry(src, dst)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def _copy_entry(src: str, dst: str) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        _copy_file(src, dst)


def step_files(folder: Path) -> list[str]:
    """The files and links under ``folder`` (a copy of a snapshot), relative, posix style."""
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        files += [prefix + d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        files += [prefix + name for name in filenames]
    return files


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
    """sha256 of each file, by relative path; of a link, of where it points (`link_target`),
    as git hashes one: the file behind it is never read."""
    out: dict[str, str] = {}
    for rel in files:
        h = hashlib.sha256()
        try:
            if os.path.islink(root / rel):
                h.update(b"link\0" + os.fsencode(link_target(root, rel)))
            else:
                with open(os.open(root / rel, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
        except OSError:
            continue
        out[rel] = h.hexdigest()
    return out
