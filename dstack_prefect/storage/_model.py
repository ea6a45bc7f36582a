"""What the store keeps: step manifests, tags and listing rows, plus the name and path rules."""

from __future__ import annotations

import posixpath
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dstack_prefect._words import word_problem
from dstack_prefect.errors import StorageError, UnsafePathError

VIA_TAG = "via_tag"
"""``extra`` key of :meth:`Manifest.through_tag` copies: the tag a step's dep reads them through."""

SYNCED = "synced"
"""``extra.status`` of a synced manifest (``_sync``); a step's own manifest says done or stopped."""


class FileEntry(BaseModel):
    """One stored file: where it lands, how big it is, its content address and permission bits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="posix path as it lands: relative to the workdir, or absolute")
    size: int = Field(ge=0, description="bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex digest; the blob key")
    mode: int = Field(default=0o644, ge=0, le=0o7777, description="permission bits (st_mode & 0o7777)")


class Manifest(BaseModel):
    """One step's artifacts: the commit record of an upload, written after every blob it names."""

    model_config = ConfigDict(extra="forbid")

    run: str
    step: str
    workflow: str | None = None
    created_at: str = Field(default_factory=lambda: utc_now())
    artifacts: list[str] = Field(default_factory=list, description="artifact paths as declared (normalised)")
    files: list[FileEntry] = Field(default_factory=list)
    skipped: list[dict[str, str]] = Field(
        default_factory=list, description="entries not stored, each {path, reason} (directory symlinks...)"
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="engine metadata: cache_key, status...")

    @property
    def label(self) -> str:
        """``run/step``, the name used in messages."""
        return f"{self.run}/{self.step}"

    @property
    def ref(self) -> str:
        """How a user names the run: ``:TAG`` for a tag dep's manifest (``extra[VIA_TAG]``, set
        on the copies a step reads) and for the folders of `dstack tags add TAG -a` (stored under
        an internal run ``tag-TAG-<time>`` that no listing shows), else the run name."""
        tag = self.extra.get(VIA_TAG) or (synthetic_tag(self.run) if self.extra.get("synthetic") else None)
        return f":{tag}" if tag else self.run

    def through_tag(self, tag: str) -> Manifest:
        """A copy marked as read through tag ``tag`` (a step's tag dep): :attr:`ref` is then
        ``:TAG``. Never stored."""
        return self.model_copy(update={"extra": {**self.extra, VIA_TAG: tag}})

    @property
    def shown(self) -> str:
        """The manifest as messages name it: ``run/step``; ``:TAG`` for `-a` folders; ``:TAG
        (run/step)`` for a tag dep of a run."""
        if not self.ref.startswith(":"):
            return self.label
        return self.ref if self.extra.get("synthetic") else f"{self.ref} ({self.label})"

    @property
    def size(self) -> int:
        """Total bytes of the step's files."""
        return sum(f.size for f in self.files)

    @property
    def synced(self) -> bool:
        """A synced manifest (a running step's `mount: true` folders, ``_sync``), not the step's own."""
        return self.extra.get("status") == SYNCED

    def artifact_of(self, path: str) -> str:
        """The declared artifact ``path`` belongs to (the longest matching one)."""
        best = ""
        for art in self.artifacts:
            if (path == art or path.startswith(art.rstrip("/") + "/")) and len(art) > len(best):
                best = art
        return best


class Tag(BaseModel):
    """A named, durable reference to a run's manifests (copies, so they outlive the run)."""

    model_config = ConfigDict(extra="forbid")

    tag: str
    run: str
    workflow: str | None = None
    created_at: str = Field(default_factory=lambda: utc_now())
    manifests: list[Manifest] = Field(default_factory=list)


class LsRow(BaseModel):
    """One row of ``dstack ls``: artifact, file (or ``sub/`` folder; ``""`` for an artifact the
    step left empty) and size in bytes; ``folder`` is False for an artifact that is one file;
    ``synced`` is True for one read from a synced manifest (a step that stored no manifest)."""

    model_config = ConfigDict(frozen=True)

    artifact: str
    file: str
    size: int
    folder: bool = True
    synced: bool = False


_SYNTHETIC = re.compile(r"tag-(?P<tag>.+)-\d{8}T\d{6}")


def synthetic_run(tag: str, now: str) -> str:
    """The internal run that `dstack tags add TAG -a` stores folders under: ``tag-TAG-<time>``
    (``now`` as :func:`utc_now` gives it)."""
    stamp = now.replace(":", "").replace("-", "").replace("+0000", "")[:15]
    return f"tag-{tag}-{stamp}"


def synthetic_tag(run: str) -> str | None:
    """The tag whose folders the internal run ``run`` holds (see :func:`synthetic_run`), or None."""
    found = _SYNTHETIC.fullmatch(run)
    return found["tag"] if found else None


def utc_now() -> str:
    """Now, as an ISO 8601 UTC string with microseconds (sorts by time as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is safe as one key segment (a run, step, tag...), else raise UnsafePathError."""
    bad = (
        not name
        or name in {".", ".."}
        or name.startswith(".")
        or any(c in name for c in "/\\\0")
        or len(name) > 200
    )
    if bad:
        msg = f"{kind} name {name!r} cannot be used as a store key"
        raise UnsafePathError(msg, hint="use letters, digits, '-', '_' or '.', not starting with '.'")
    return name


def check_tag_name(name: str) -> str:
    """Return ``name`` if it is valid for a new tag (the rule in ``dstack_prefect._words``: it is
    written ``:TAG``), else raise StorageError with the rule. Reading a tag made before the rule
    still works; only new names are checked."""
    problem = word_problem("tag", name)
    if problem is None:
        return name
    msg, fixed = problem
    hint = "a tag is written :TAG on the command line and in deps" + (f"; e.g. {fixed!r}" if fixed else "")
    raise StorageError(msg, hint=hint)


def normalize_artifact_path(path: str) -> str:
    """Normalise a declared artifact path: strip ``./`` and trailing ``/``; refuse ``/``, ``..`` and empty."""
    raw = path.strip()
    is_abs = raw.startswith("/")
    norm = posixpath.normpath(raw) if raw else ""
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if not raw or norm in {".", "/"}:
        msg = f"artifact path {path!r} names the whole working directory or filesystem root"
        raise UnsafePathError(msg, hint="declare a sub-folder, e.g. `artifacts: [{path: output}]`")
    if not is_abs and (norm == ".." or norm.startswith("../")):
        msg = f"artifact path {path!r} points outside the working directory"
        raise UnsafePathError(msg, hint="declare a path inside the working directory, or an absolute one")
    return norm
