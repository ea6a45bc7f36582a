"""The one seam where fsspec, s3fs, botocore and OS errors become StorageError subclasses.

Every public storage call runs inside :func:`translate_errors`. The mapping is a table of
``(library class, our class)`` pairs, most specific first; ``tests/storage/test_errors.py``
enumerates every class in ``botocore.exceptions`` and fails on one this table does not cover.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from dstack_prefect.errors import ArtifactNotFoundError, DstackError, StorageError

try:  # botocore comes with s3fs; a store on a local folder works without it
    import botocore.exceptions as _boto
except ImportError:  # pragma: no cover - s3fs is a hard dependency of the project
    _boto = None

_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or pass key/secret in storage_options"
)
_ENDPOINT_HINT = "check the store URL and the endpoint (AWS_ENDPOINT_URL or storage_options client_kwargs)"


def _table() -> list[tuple[type[BaseException], type[StorageError], str | None]]:
    rows: list[tuple[type[BaseException], type[StorageError], str | None]] = [
        (FileNotFoundError, ArtifactNotFoundError, None),
        (PermissionError, StorageError, "check the store's permissions or credentials"),
    ]
    if _boto is not None:
        rows += [
            (_boto.NoCredentialsError, StorageError, _CREDENTIALS_HINT),
            (_boto.PartialCredentialsError, StorageError, _CREDENTIALS_HINT),
            (_boto.CredentialRetrievalError, StorageError, _CREDENTIALS_HINT),
            (_boto.TokenRetrievalError, StorageError, _CREDENTIALS_HINT),
            (_boto.NoRegionError, StorageError, "set AWS_DEFAULT_REGION or client_kwargs region_name"),
            (_boto.EndpointConnectionError, StorageError, _ENDPOINT_HINT),
            (_boto.ConnectionError, StorageError, _ENDPOINT_HINT),
            (_boto.HTTPClientError, StorageError, _ENDPOINT_HINT),
            (_boto.ClientError, StorageError, None),
            (_boto.BotoCoreError, StorageError, None),
        ]
    rows += [
        (TimeoutError, StorageError, "the store did not answer in time; retry"),
        (OSError, StorageError, None),
    ]
    return rows


_TABLE = _table()


def missing_bucket(exc: BaseException) -> str | None:
    """The bucket's name (or ``"?"``) when ``exc`` (or an error it was raised from) says the
    store's bucket does not exist, else None. s3fs turns S3's NoSuchBucket into a
    FileNotFoundError, which alone reads as "no such file": a missing bucket is a wrong store
    URL, not a missing artifact."""
    err: BaseException | None = exc
    for _ in range(4):
        if err is None:
            break
        response = getattr(err, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") == "NoSuchBucket":
            return str(response["Error"].get("BucketName") or "?")
        err = err.__cause__
    return None


class MissingBucketError(LookupError):
    """Raised from s3fs's FileNotFoundError for a missing bucket, so that code catching
    FileNotFoundError ("no such tag") lets it through to :func:`translate_errors`."""


_BUCKET_HINT = (
    "create the bucket, or point the store at one that exists "
    "(`dstack config --remote-store s3://bucket/prefix`, or --store for the local one)"
)


def error_class_for(exc_type: type[BaseException]) -> type[StorageError] | None:
    """The StorageError subclass ``exc_type`` is translated to, or None if it passes through."""
    for lib_type, ours, _hint in _TABLE:
        if issubclass(exc_type, lib_type):
            return ours
    if _boto is not None and exc_type.__module__.startswith("botocore"):
        return StorageError
    return None


_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full: free space there (`dstack prune artifacts` removes stored files "
    "no run, tag or cache uses) and retry",
    errno.EDQUOT: "the disk quota is used up: free space there (`dstack prune artifacts` removes "
    "stored files no run, tag or cache uses) and retry",
    errno.EFBIG: "a file is larger than that filesystem or `ulimit -f` allows: raise the limit, or "
    "use another folder or store (`dstack config --store`)",
    errno.EROFS: "that filesystem is read-only: use a writable folder, or move the store "
    "(`dstack config --store`)",
    errno.ENOTDIR: "a file is where a folder should be: check the store URL (`dstack config`) and "
    "the target path",
}


def _hint_for(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and exc.errno in _ERRNO_HINTS:
        return _ERRNO_HINTS[exc.errno]
    for lib_type, _ours, hint in _TABLE:
        if isinstance(exc, lib_type):
            return hint
    return None


@contextmanager
def translate_errors(doing: str) -> Iterator[None]:
    """Run the body; re-raise a library error as the matching StorageError, chained with ``from``.

    ``doing`` names the operation for the message (``"reading manifest run-1/train"``).
    DstackError and programmer errors (ValueError, TypeError, ...) pass through unchanged.
    """
    try:
        yield
    except DstackError:
        raise
    except Exception as exc:
        bucket = missing_bucket(exc)
        if bucket is not None:
            msg = f"artifact store: {doing} failed: the bucket {bucket!r} does not exist"
            raise StorageError(msg, hint=_BUCKET_HINT) from exc
        ours = error_class_for(type(exc))
        if ours is None:
            raise
        detail = str(exc) or type(exc).__name__
        msg = f"artifact store: {doing} failed: {detail}"
        raise ours(msg, hint=_hint_for(exc)) from exc
