"""Reading files out of the store: materialize, copy_out, ls, and transfer between stores.

Every blob is downloaded into a staging folder inside the target, its sha256 checked, and only
then moved into place; nothing is written outside the target folder. A blob whose content does
not match its sha256 is garbage (its name is its content's hash), so a read that finds one
removes it from the store: the next upload of that content (a rerun of the step that made it)
sees the blob missing and stores it again.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dstack_prefect.errors import ArtifactNotFoundError, IntegrityError, StorageError, UnsafePathError

from ._backend import Backend
from ._files import destination, hash_many, make_folder, place, sha256_file
from ._model import FileEntry, LsRow, Manifest
from ._progress import Progress

# one planned file: where it lands, what it is, whose it is
Planned = tuple[Path, FileEntry, Manifest]


def _check_conflicts(plan: Sequence[Planned]) -> None:
    """Refuse two different contents for one path, and a path that is a file in one manifest and a folder in another."""  # noqa: E501
    seen: dict[Path, tuple[FileEntry, Manifest]] = {}
    for dest, entry, m in plan:
        prev = seen.get(dest)
        if prev is not None and prev[0].sha256 != entry.sha256:
            msg = (
                f"{entry.path!r} is in both {prev[1].shown} and {m.shown} with different content; "
                "one would overwrite the other"
            )
            raise StorageError(msg, hint="depend on only one of them, or give the artifacts different paths")
        seen.setdefault(dest, (entry, m))
    for dest, (entry, m) in seen.items():
        for parent in dest.parents:
            other = seen.get(parent)
            if other is not None:
                msg = (
                    f"{other[0].path!r} is a file in {other[1].shown} but a folder in {m.shown} "
                    f"(which has {entry.path!r})"
                )
                raise StorageError(
                    msg, hint="depend on only one of them, or give the artifacts different paths"
                )


def _check_targets(plan: Sequence[Planned], root: Path) -> None:
    """Refuse a plan that needs a folder where ``root`` holds a file, or a file where it holds a
    folder: named here, before anything moves, rather than as an OS errno halfway through."""
    hint = "a file and a folder cannot share a path: copy to another path, or rename one of them"
    if root.exists() and not root.is_dir():
        msg = f"{str(root)!r} is a file, not a folder: artifact files cannot be written into it"
        raise StorageError(msg, hint=hint)
    folders: set[Path] = set()
    for dest, entry, m in plan:
        if dest.is_dir():
            msg = (
                f"{dest.relative_to(root).as_posix()!r} is a folder in {str(root)!r}, "
                f"but {m.shown} has a file {entry.path!r} there"
            )
            raise StorageError(msg, hint=hint)
        for parent in dest.parents:
            if parent == root or parent in folders or root not in parent.parents:
                break
            if parent.exists() and not parent.is_dir():
                msg = (
                    f"{parent.relative_to(root).as_posix()!r} is a file in {str(root)!r}, "
                    f"but {m.shown} has {entry.path!r} under it"
                )
                raise StorageError(msg, hint=hint)
            folders.add(parent)


def redo_hint(m: Manifest, ref: str | None = None) -> str:
    """How to store ``m``'s files again: rerun the workflow that made them (the manifest names
    it), or copy them from the remote store with `dstack pull REF --force` (``ref`` as the user
    named them, by default :attr:`Manifest.ref`: a tag of `-a` folders as ``:TAG``)."""
    if m.run.startswith("cache:"):
        return f"run {m.workflow or 'the workflow'} again: it saves a fresh cache"
    copy = f"`dstack pull {ref or m.ref} --force`"
    if m.extra.get("synthetic"):
        tag = m.ref.removeprefix(":") if m.ref.startswith(":") else "TAG"
        return f"upload the folder again with `dstack tags add {tag} -a FOLDER -y`, or copy it with {copy}"
    if m.workflow:
        w = m.workflow
        return f"store it again with `dstack run {w} --rerun {w}`, or copy it with {copy}"
    return f"run the step that made it again, or copy it with {copy}"


def _more(n: int, what: str) -> str:
    return f" (and {n} more {what})" if n else ""


def _whose(m: Manifest) -> str:
    """``m`` in an error about one of its files: the run and step, or the tag of `-a` folders."""
    if m.extra.get("synthetic") and m.ref.startswith(":"):
        return f"tag {m.ref!r}"
    tag = f" of tag {m.ref!r}" if m.ref.startswith(":") else ""
    return f"run {m.run!r} (step {m.step!r}){tag}"


def missing_error(
    b: Backend,
    missing: set[str],
    owners: dict[str, tuple[FileEntry, Manifest]],
    *,
    ref: str | None = None,
    hint: str | None = None,
) -> ArtifactNotFoundError:
    """The error for blobs the store lacks: the first file by name, its run and step, and how to
    fix it (``hint``, by default :func:`redo_hint` with ``ref``)."""
    entry, m = min((owners[d] for d in missing), key=lambda o: (o[1].label, o[0].path))
    msg = (
        f"artifact file {entry.path!r} of {_whose(m)} is missing from the store "
        f"{b.url} (sha256 {entry.sha256[:12]}...){_more(len(missing) - 1, 'missing file(s)')}"
    )
    return ArtifactNotFoundError(msg, hint=hint or redo_hint(m, ref))


def _remove_damaged(b: Backend, digests: Sequence[str]) -> str:
    """Delete blobs whose content does not match their name; returns what to tell the user."""
    try:
        b.rm([b.blob_key(d) for d in digests])
    except FileNotFoundError:  # another reader removed it first
        pass
    except (OSError, ValueError) as exc:  # a read-only store: say so, the error stays an IntegrityError
        return f"; removing the damaged copy failed ({exc}), remove {b.blob_key(digests[0])} by hand"
    copies = "copy was" if len(digests) == 1 else "copies were"
    return f"; the damaged {copies} removed from the store"


def damaged_error(
    b: Backend,
    bad: dict[str, str],
    owners: dict[str, tuple[FileEntry, Manifest]],
    *,
    ref: str | None = None,
    hint: str | None = None,
) -> IntegrityError:
    """Remove the blobs of ``bad`` (expected digest -> actual) and return the error naming the
    first (``hint`` as for :func:`missing_error`)."""
    removed = _remove_damaged(b, sorted(bad))
    d = min(bad, key=lambda x: (owners[x][1].label, owners[x][0].path))
    entry, m = owners[d]
    msg = (
        f"artifact file {entry.path!r} of {_whose(m)} is corrupt in {b.url}: "
        f"sha256 {bad[d][:12]}... instead of {d[:12]}...{_more(len(bad) - 1, 'corrupt file(s)')}{removed}"
    )
    return IntegrityError(msg, hint=hint or redo_hint(m, ref))


def _fetch_verified(
    b: Backend, plan: Sequence[Planned], root: Path, progress: Progress | None, ref: str | None = None
) -> list[Path]:
    """Download each distinct blob once into a staging folder under ``root``, verify, then place.

    A blob that fails its check is removed from the store (IntegrityError); nothing is placed.
    ``ref`` names the manifests as the user did, for the hints.
    """
    by_digest: dict[str, list[Planned]] = defaultdict(list)
    for item in plan:
        by_digest[item[1].sha256].append(item)
    owners = {d: (items[0][1], items[0][2]) for d, items in by_digest.items()}
    missing = set(by_digest) - b.existing_blobs(set(by_digest))
    if missing:
        raise missing_error(b, missing, owners, ref=ref)
    made = next((p for p in [*reversed(root.parents), root] if not p.exists()), None)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".dstack-staging-{uuid.uuid4().hex[:12]}"
    try:
        staged = {d: staging / d for d in by_digest}
        b.download_blobs(list(staged.items()), progress, sum(owners[d][0].size for d in staged))
        digests = list(staged)
        hashed = hash_many([staged[d] for d in digests], progress, "verify")
        bad = {d: actual for d, (actual, _) in zip(digests, hashed, strict=True) if actual != d}
        if bad:
            raise damaged_error(b, bad, owners, ref=ref)
        written: list[Path] = []
        for d, items in by_digest.items():
            for dest, entry, _m in items[1:]:
                copy = staging / f"{d}-{uuid.uuid4().hex[:8]}"
                shutil.copyfile(staged[d], copy)
                place(copy, dest, root, entry.mode)
                written.append(dest)
            dest, entry, _m = items[0]
            place(staged[d], dest, root, entry.mode)
            written.append(dest)
        return sorted(written)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made is not None and not any(files for _, _, files in os.walk(made)):
            shutil.rmtree(made, ignore_errors=True)  # a failed copy leaves no folder it made
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def materialize(
    b: Backend,
    manifests: Sequence[Manifest],
    target_dir: Path,
    absolute_root: Path | str | None,
    progress: Progress | None,
) -> list[Path]:
    root = Path(os.path.abspath(target_dir))
    abs_root = None
    if absolute_root is not None:
        abs_root = Path(os.path.abspath(root / absolute_root))
        if abs_root != root and root not in abs_root.parents:
            msg = f"absolute_root {str(absolute_root)!r} is outside the target {str(root)!r}"
            raise UnsafePathError(msg, hint="pass a folder inside the target, e.g. absolute_root='_root'")
    plan = [(destination(root, e.path, abs_root, label=m.shown), e, m) for m in manifests for e in m.files]
    _check_conflicts(plan)
    _check_targets(plan, root)
    for m in manifests:  # declared folders exist even when the step left them empty
        for art in m.artifacts:
            if not any(m.artifact_of(e.path) == art for e in m.files) and (
                abs_root or not art.startswith("/")
            ):
                make_folder(destination(root, art, abs_root, label=m.shown), root)
    return _fetch_verified(b, plan, root, progress)


def copy_out(
    b: Backend,
    manifests: Sequence[Manifest],
    source: str,
    target: Path | str,
    overwrite: bool,
    progress: Progress | None,
    name: str | None = None,
) -> list[Path]:
    ls = f"dstack ls {name or 'RUN'}"
    src = posixpath.normpath(source.strip()) if source.strip() else ""
    if src in {"", ".", "/"}:
        msg = f"name the artifact file or folder to copy, not {source!r}"
        raise StorageError(msg, hint=f"see the paths with `{ls}`")
    matches = [(e, m) for m in manifests for e in m.files if e.path == src or e.path.startswith(src + "/")]
    if not matches:
        arts = sorted({a for m in manifests for a in m.artifacts})
        msg = f"no artifact file or folder {source!r} in {', '.join(m.shown for m in manifests) or 'the run'}"
        raise ArtifactNotFoundError(msg, hint=f"artifacts: {', '.join(arts) or 'none'}; see `{ls} -r`")
    slash = str(target).endswith(("/", os.sep))  # Path() would drop it: a folder, made if need be
    target = Path(os.path.abspath(target))
    if all(e.path == src for e, _ in matches):  # one file
        to_dir = target.is_dir() or slash
        root, name = (target, posixpath.basename(src)) if to_dir else (target.parent, target.name)
        plan = [(destination(root, name, None, label=m.shown), e, m) for e, m in matches]
    else:
        root = target
        plan = [
            (destination(root, e.path[len(src) + 1 :], None, label=m.shown), e, m)
            for e, m in matches
            if e.path != src
        ]
    _check_conflicts(plan)
    _check_targets(plan, root)
    if not overwrite:
        clash = [d for d, e, _ in plan if d.exists() and (not d.is_file() or sha256_file(d)[0] != e.sha256)]
        if clash:
            shown = ", ".join(str(c) for c in clash[:3]) + (" ..." if len(clash) > 3 else "")
            msg = f"{len(clash)} file(s) already exist in {str(root)!r} with other content: {shown}"
            raise StorageError(msg, hint="pass --force to overwrite them, or copy to another folder")
        plan = [p for p in plan if not p[0].exists()]
    return _fetch_verified(b, plan, root, progress, name)


def ls_rows(
    manifests: Sequence[Manifest], prefix: str | None, recursive: bool, name: str | None
) -> list[LsRow]:
    pre = posixpath.normpath(prefix) if prefix else ""
    folder = bool(prefix) and str(prefix).endswith("/")  # `ls RUN out/` names the folder out

    def under(path: str) -> bool:
        return path.startswith(pre) if not folder else path == pre or path.startswith(pre.rstrip("/") + "/")

    sums: dict[tuple[str, str], int] = defaultdict(int)
    single: set[str] = set()  # artifacts that are one file
    synced: set[str] = set()  # artifacts of synced manifests
    for m in manifests:
        if m.synced:
            synced.update(m.artifacts)
        filled: set[str] = set()
        for e in m.files:
            art = m.artifact_of(e.path)
            filled.add(art)
            rel = posixpath.basename(e.path) if e.path == art else e.path[len(art) + 1 :]
            if e.path == art:
                single.add(art)
            if pre and not under(e.path):
                continue
            shown = rel if recursive or "/" not in rel else rel.split("/", 1)[0] + "/"
            sums[(art, shown)] += e.size
        for art in m.artifacts:  # declared, and left empty by the step: a row says so
            inside = art.rstrip("/") + "/"  # its files may be listed under a nested artifact
            has_files = art in filled or any(f.startswith(inside) for f in filled)
            if (not pre or under(art)) and not has_files:
                sums[(art, "")] += 0
    if pre and not sums:
        where = name or ", ".join(sorted({m.run for m in manifests})) or "the run"
        msg = f"no artifact file under {prefix!r} in {where}"
        raise ArtifactNotFoundError(msg, hint=f"see the paths there are with `dstack ls {where}`")
    return [
        LsRow(artifact=a, file=f, size=s, folder=a not in single, synced=a in synced)
        for (a, f), s in sorted(sums.items())
    ]


@dataclass(frozen=True)
class TransferResult:
    """What a push or pull did: manifests written, blobs copied and their bytes, blobs found
    already there (``skipped``), and blobs not looked for (``unchecked``): those of manifests
    the destination holds unchanged, which a plain push or pull takes as complete there (a
    forced one checks them)."""

    manifests: int
    blobs: int
    nbytes: int
    skipped: int
    unchecked: int = 0


def copy_blobs(
    src: Backend,
    dst: Backend,
    wanted: dict[str, tuple[FileEntry, Manifest]],
    progress: Progress | None,
    *,
    ref: str | None = None,
    hint: str | None = None,
) -> tuple[int, int, int]:
    """Copy the blobs of ``wanted`` (digest -> a file and manifest naming it) that ``dst`` lacks.

    Each is verified on the way; a corrupt one is removed from ``src`` and nothing is sent.
    A blob ``src`` lacks or holds damaged is an error with ``hint`` (see :func:`missing_error`).
    """
    missing = sorted(set(wanted) - dst.existing_blobs(set(wanted)))
    if not missing:
        return 0, 0, len(wanted)
    absent = set(missing) - src.existing_blobs(set(missing))
    if absent:
        raise missing_error(src, absent, wanted, ref=ref, hint=hint)
    nbytes = sum(wanted[d][0].size for d in missing)
    with contextlib.ExitStack() as stack:
        into_place = dst.is_local and not src.is_local  # downloaded next to where each lands
        if src.is_local:
            staged = {d: Path(src.blob_key(d)) for d in missing}
        else:
            if into_place:
                staged = dst.staging_paths(missing)
                stack.callback(_unlink_all, staged.values())  # what is left after a failure
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dstack-transfer-"))
                staged = {d: Path(tmp) / d for d in missing}
            src.download_blobs(list(staged.items()), progress, nbytes)
        hashed = hash_many([staged[d] for d in missing], progress, "verify")
        bad = {d: actual for d, (actual, _) in zip(missing, hashed, strict=True) if actual != d}
        if bad:
            error = damaged_error(src, bad, wanted, ref=ref, hint=hint)
            msg = f"{error.message}; nothing was sent"
            raise IntegrityError(msg, hint=error.hint)
        if into_place:
            dst.adopt(staged)
        else:
            dst.upload_blobs([(staged[d], d) for d in missing], progress)
    return len(missing), nbytes, len(wanted) - len(missing)


def _unlink_all(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
