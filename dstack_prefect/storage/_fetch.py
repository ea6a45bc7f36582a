"""Reading files out of the store: materialize, copy_out, ls, and transfer between stores.

Every blob is downloaded into a staging folder inside the target, its sha256 checked, and only
then moved into place; nothing is written outside the target folder.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dstack_prefect.errors import ArtifactNotFoundError, IntegrityError, StorageError, UnsafePathError

from ._backend import Backend
from ._files import destination, hash_many, place, sha256_file
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
                f"{entry.path!r} is in both {prev[1].label} and {m.label} with different content; "
                "one would overwrite the other"
            )
            raise StorageError(msg, hint="depend on only one of them, or give the artifacts different paths")
        seen.setdefault(dest, (entry, m))
    for dest, (entry, m) in seen.items():
        for parent in dest.parents:
            other = seen.get(parent)
            if other is not None:
                msg = (
                    f"{other[0].path!r} is a file in {other[1].label} but a folder in {m.label} "
                    f"(which has {entry.path!r})"
                )
                raise StorageError(
                    msg, hint="depend on only one of them, or give the artifacts different paths"
                )


def _fetch_verified(b: Backend, plan: Sequence[Planned], root: Path, progress: Progress | None) -> list[Path]:
    """Download each distinct blob once into a staging folder under ``root``, verify, then place."""
    by_digest: dict[str, list[Planned]] = defaultdict(list)
    for item in plan:
        by_digest[item[1].sha256].append(item)
    missing = set(by_digest) - b.existing_blobs(set(by_digest))
    if missing:
        _dest, entry, m = by_digest[sorted(missing)[0]][0]
        msg = (
            f"{len(missing)} blob(s) of {m.label} are missing from {b.url}, e.g. the one of {entry.path!r} "
            f"(sha256 {entry.sha256[:12]}...)"
        )
        raise ArtifactNotFoundError(
            msg, hint="the store was pruned or a push was interrupted; push or run again"
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".dstack-staging-{uuid.uuid4().hex[:12]}"
    try:
        staged = {d: staging / d for d in by_digest}
        b.download_blobs(list(staged.items()), progress)
        digests = list(staged)
        for d, (actual, _) in zip(
            digests, hash_many([staged[d] for d in digests], progress, "verify"), strict=True
        ):
            if actual != d:
                _dest, entry, m = by_digest[d][0]
                msg = (
                    f"artifact file {entry.path!r} of run {m.run!r} (step {m.step!r}) is corrupt in {b.url}: "
                    f"sha256 {actual[:12]}... instead of {d[:12]}..."
                )
                raise IntegrityError(
                    msg, hint=f"run {m.workflow or m.step!r} again, or push it again from a good copy"
                )
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
    plan = [(destination(root, e.path, abs_root, label=m.label), e, m) for m in manifests for e in m.files]
    _check_conflicts(plan)
    for m in manifests:  # declared folders exist even when the step left them empty
        for art in m.artifacts:
            if not any(m.artifact_of(e.path) == art for e in m.files) and (
                abs_root or not art.startswith("/")
            ):
                destination(root, art, abs_root, label=m.label).mkdir(parents=True, exist_ok=True)
    return _fetch_verified(b, plan, root, progress)


def copy_out(
    b: Backend,
    manifests: Sequence[Manifest],
    source: str,
    target: Path,
    overwrite: bool,
    progress: Progress | None,
) -> list[Path]:
    src = posixpath.normpath(source.strip()) if source.strip() else ""
    if src in {"", ".", "/"}:
        msg = f"name the artifact file or folder to copy, not {source!r}"
        raise StorageError(msg, hint="see the paths with `dstack ls RUN`")
    matches = [(e, m) for m in manifests for e in m.files if e.path == src or e.path.startswith(src + "/")]
    if not matches:
        arts = sorted({a for m in manifests for a in m.artifacts})
        msg = f"no artifact file or folder {source!r} in {', '.join(m.label for m in manifests) or 'the run'}"
        raise ArtifactNotFoundError(
            msg, hint=f"artifacts: {', '.join(arts) or 'none'}; see `dstack ls RUN -r`"
        )
    target = Path(os.path.abspath(target))
    if all(e.path == src for e, _ in matches):  # one file
        to_dir = target.is_dir() or str(target).endswith(os.sep)
        root, name = (target, posixpath.basename(src)) if to_dir else (target.parent, target.name)
        plan = [(destination(root, name, None, label=m.label), e, m) for e, m in matches]
    else:
        root = target
        plan = [
            (destination(root, e.path[len(src) + 1 :], None, label=m.label), e, m)
            for e, m in matches
            if e.path != src
        ]
    _check_conflicts(plan)
    if not overwrite:
        clash = [d for d, e, _ in plan if d.exists() and (not d.is_file() or sha256_file(d)[0] != e.sha256)]
        if clash:
            shown = ", ".join(str(c) for c in clash[:3]) + (" ..." if len(clash) > 3 else "")
            msg = f"{len(clash)} file(s) already exist in {str(root)!r} with other content: {shown}"
            raise StorageError(msg, hint="pass --force to overwrite them, or copy to another folder")
        plan = [p for p in plan if not p[0].exists()]
    return _fetch_verified(b, plan, root, progress)


def ls_rows(manifests: Sequence[Manifest], prefix: str | None, recursive: bool) -> list[LsRow]:
    pre = posixpath.normpath(prefix) if prefix else ""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for m in manifests:
        for e in m.files:
            art = m.artifact_of(e.path)
            rel = posixpath.basename(e.path) if e.path == art else e.path[len(art) + 1 :]
            if pre and not posixpath.join(art, rel).startswith(pre) and not art.startswith(pre):
                continue
            name = rel if recursive or "/" not in rel else rel.split("/", 1)[0] + "/"
            sums[(art, name)] += e.size
    return [LsRow(artifact=a, file=f, size=s) for (a, f), s in sorted(sums.items())]


@dataclass(frozen=True)
class TransferResult:
    """What a push or pull did: manifests written, blobs copied and their bytes, blobs already there."""

    manifests: int
    blobs: int
    nbytes: int
    skipped: int


def copy_blobs(
    src: Backend, dst: Backend, wanted: dict[str, int], progress: Progress | None
) -> tuple[int, int, int]:
    """Copy the blobs of ``wanted`` (digest -> size) that ``dst`` lacks, verifying each on the way."""
    missing = sorted(set(wanted) - dst.existing_blobs(set(wanted)))
    if not missing:
        return 0, 0, len(wanted)
    with tempfile.TemporaryDirectory(prefix="dstack-transfer-") as tmp:
        if src.is_local:
            staged = {d: Path(src.blob_key(d)) for d in missing}
        else:
            staged = {d: Path(tmp) / d for d in missing}
            src.download_blobs(list(staged.items()), progress)
        for d, (actual, _) in zip(
            missing, hash_many([staged[d] for d in missing], progress, "verify"), strict=True
        ):
            if actual != d:
                msg = f"blob {d[:12]}... in {src.url} is corrupt (sha256 {actual[:12]}...); nothing was sent"
                raise IntegrityError(msg, hint="delete the damaged run or tag in the source store")
        dst.upload_blobs([(staged[d], d) for d in missing], progress)
    return len(missing), sum(wanted[d] for d in missing), len(wanted) - len(missing)
