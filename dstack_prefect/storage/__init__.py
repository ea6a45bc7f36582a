"""The artifact store: content-addressed blobs plus per-step manifests in any fsspec store.

A store is addressed by a URL: a local folder (``/path`` or ``file:///path``, the default),
``s3://bucket/prefix`` through s3fs (endpoint and keys from ``storage_options`` or the usual
``AWS_*`` variables, ``AWS_ENDPOINT_URL`` included), or any fsspec protocol; ``memory://name``
is the shipped in-memory store for tests. Layout under the URL::

    blobs/sha256/ab/cdef...                       file contents, named by sha256 (ab = first 2 hex)
    manifests/<run>/<step>.json                   one step's Manifest, written last: the commit point
    synced/<run>/<step>.json                      a running step's `mount: true` folders as last
                                                  synced (StepSync): never the step's Manifest
    tags/<tag>.json                               Tag: run, workflow, copies of the run's manifests
                                                  (tag names: letters, digits, . _ -; check_tag_name)
    cache/<repo_id>/<workflow>/<path-key>.json    Manifest of one cache folder (path-key: the path, %-quoted)
    index/<scope...>/<name>.json                  a pointer {run, step} to a manifest (reuse lookups)

Rules:

* Identical files are stored once, across runs; an upload sends only the blobs the store lacks,
  found by listing blob prefixes, never by one request per file.
* A manifest or tag appears only after every blob it names is stored, and each write is atomic
  (one PUT on object stores; a temporary ``.tmp-*`` name plus a rename elsewhere). A killed
  upload leaves only unreferenced blobs, which ``prune`` removes.
* Every blob is checked against its sha256 before it is placed in a target folder (or sent by a
  push or pull), and nothing is written outside that folder (``..`` is refused; absolute
  artifact paths, which old dstack allowed, land under ``absolute_root`` inside the target, or
  are refused).
* A blob whose content does not match its name is garbage: the read that finds one removes it
  (IntegrityError, with the rerun that stores it again), so a rerun of the step that made it
  uploads it again instead of skipping a blob that "exists".
* A push or pull never replaces a manifest or tag the destination holds with other content (run
  names are drawn per machine and can collide) unless asked to (``force``).
* Manifests keep each file's permission bits. Symlinks to files are stored as the file they point
  to; symlinks to folders, dangling links and special files are skipped and listed in
  ``Manifest.skipped``. Empty sub-folders are not kept (an empty declared artifact folder is).
* Tags hold copies of their manifests, so ``delete_run`` leaves tagged artifacts intact.
* A synced manifest (``_sync``) is read only where asked for (``resolve(ref, synced=True)``:
  ``ls``, ``cp``), for a step with no manifest; prune keeps what it names, ``delete_run``
  removes it. Reuse, tags, push and pull read ``manifests/`` only.
* ``prune`` deletes blobs no manifest, tag or cache manifest names, except ones younger than
  ``grace_s`` (10 minutes), which may belong to an upload still running; it counts those. It
  also removes what killed uploads left: ``.tmp-`` files and, on S3, incomplete multipart
  uploads under ``blobs/`` whose last part is older than ``grace_s`` (S3 bills their parts).
* On a local store, a writer (put_step, save_cache, a sync, a tag, a reused manifest's copy)
  holds a shared file lock (``.dstack-store.lock``) from its look at which blobs the store has
  until its manifest is written, and prune holds it alone: a prune waits for the uploads under
  way, so even one that removes young blobs never takes what an upload is about to commit.

Errors from fsspec, s3fs, botocore and the OS become StorageError subclasses at one seam
(``_errors.translate_errors``).
"""

from ._errors import translate_errors
from ._fetch import TransferResult
from ._model import FileEntry, LsRow, Manifest, Tag, check_tag_name, normalize_artifact_path
from ._progress import CountingProgress, NullProgress, Progress, rich_progress
from ._prune import PruneResult
from ._store import ArtifactStore
from ._sync import StepSync
from ._transfer import transfer

__all__ = [
    "ArtifactStore",
    "CountingProgress",
    "FileEntry",
    "LsRow",
    "Manifest",
    "NullProgress",
    "Progress",
    "PruneResult",
    "StepSync",
    "Tag",
    "TransferResult",
    "check_tag_name",
    "normalize_artifact_path",
    "rich_progress",
    "transfer",
    "translate_errors",
]
