"""The store side: one fsspec filesystem, the key layout, and bulk blob and JSON operations.

Writes are never visible half-done: on object stores (s3, gcs, azure) one PUT is atomic; on
every other filesystem a file is written under a temporary name in the same folder and renamed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem

from dstack_prefect.errors import StorageError

from ._errors import MissingBucketError, missing_bucket, translate_errors
from ._files import run_parallel
from ._progress import NullProgress, Progress

OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"}
BLOB_DIR = "blobs/sha256"
LOCK_FILE = ".dstack-store.lock"
"""A local store's lock: writers share it while their blobs are unreferenced, prune takes it alone."""
_URL_HINT = "use a folder, file:///path, s3://bucket/prefix, or another fsspec URL whose package is installed"
_HEX = set("0123456789abcdef")


class _FilesCallback(Callback):  # type: ignore[misc]  # fsspec is untyped
    """fsspec callback for a bulk put/get: one file done per top-level update, bytes from children."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self._progress = progress

    def relative_update(self, inc: int = 1) -> None:
        self._progress.advance(inc, 0)

    def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Callback:
        return _BytesCallback(self._progress)


class _BytesCallback(Callback):  # type: ignore[misc]  # fsspec is untyped
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self._progress = progress

    def relative_update(self, inc: int = 1) -> None:
        self._progress.advance(0, inc)


class Backend:
    """A filesystem and a root inside it, with the few operations the store needs, in bulk."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        opts = dict(storage_options or {})
        self.protocol = fsspec.utils.get_protocol(str(url))
        self.batch_size = int(opts.pop("batch_size", 64))
        if self.protocol in OBJECT_STORES:
            # other processes write the same store: a cached listing would hide their blobs
            opts.setdefault("use_listings_cache", False)
        if self.protocol in {"s3", "s3a"}:
            # botocore pools 10 connections by default, which would cap batch_size concurrency
            config = dict(opts.get("config_kwargs") or {})
            config.setdefault("max_pool_connections", self.batch_size)
            opts["config_kwargs"] = config
        self._s3_options = opts if not opts.get("anon") else None
        self._s3_client: Any = None
        self.fs, root = fsspec.core.url_to_fs(str(url), **opts)
        self.root = root.rstrip("/") or ("/" if root.startswith("/") else "")
        self.url = str(url)
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.is_async = isinstance(self.fs, AsyncFileSystem)
        self.atomic_put = self.protocol in OBJECT_STORES

    # keys ---------------------------------------------------------------------------------
    def key(self, *parts: str) -> str:
        """The full key of ``parts`` under the root."""
        joined = "/".join(p.strip("/") for p in parts if p)
        return f"{self.root.rstrip('/')}/{joined}"

    def rel(self, key: str) -> str:
        """``key`` relative to the root."""
        prefix = self.key("")
        return key[len(prefix) :] if key.startswith(prefix) else key

    def blob_key(self, digest: str) -> str:
        return self.key(BLOB_DIR, digest[:2], digest[2:])

    # writers and prune ----------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held by a writer from its look at which blobs the store has until the manifest that
        names them is written (the window in which they are unreferenced, or a ``.tmp-`` file):
        a local store's prune waits for it. Writers share it. Other stores rely on prune's
        grace period for young blobs."""
        with self._locked(fcntl.LOCK_SH, None):
            yield

    @contextlib.contextmanager
    def pruning(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Held by prune: a local store's writers are between uploads while it runs.
        ``on_wait`` is called once when a writer holds the store, before waiting for it."""
        with self._locked(fcntl.LOCK_EX, on_wait):
            yield

    @contextlib.contextmanager
    def _locked(self, mode: int, on_wait: Callable[[], None] | None) -> Iterator[None]:
        if not self.is_local:
            yield
            return
        os.makedirs(self.root, exist_ok=True)
        fd = os.open(os.path.join(self.root, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # releases the lock

    # blobs --------------------------------------------------------------------------------
    def _list(self, prefix: str, detail: bool = False) -> Any:
        self.fs.invalidate_cache()
        try:
            return self.fs.find(prefix, detail=detail)
        except FileNotFoundError as exc:
            if missing_bucket(exc) is not None:  # a wrong store URL, not an empty folder
                raise
            return {} if detail else []

    @staticmethod
    def _digest_of(key: str) -> str | None:
        parts = key.rstrip("/").split("/")
        if len(parts) < 2:
            return None
        digest = parts[-2] + parts[-1]
        return digest if len(parts[-2]) == 2 and len(digest) == 64 and set(digest) <= _HEX else None

    def existing_blobs(self, wanted: set[str] | None = None) -> set[str]:
        """Digests present in the store (among ``wanted``, when given), found by listing, not per-blob HEADs."""  # noqa: E501
        if wanted is not None and not wanted:
            return set()
        shards = sorted({d[:2] for d in wanted}) if wanted is not None else []
        if wanted is None or len(shards) > 8:
            keys = self._list(self.key(BLOB_DIR))
        else:
            keys = [
                k
                for found in run_parallel(lambda s: self._list(self.key(BLOB_DIR, str(s))), shards)
                for k in found
            ]
        have = {d for k in keys if (d := self._digest_of(k))}
        return have if wanted is None else have & wanted

    def blob_details(self) -> dict[str, tuple[int, float]]:
        """Every blob with its size and modification time (epoch seconds)."""
        out: dict[str, tuple[int, float]] = {}
        for key, info in self._list(self.key(BLOB_DIR), detail=True).items():
            digest = self._digest_of(key)
            if digest:
                out[digest] = (int(info.get("size") or 0), _mtime(info))
        return out

    def upload_blobs(self, items: Sequence[tuple[Path, str]], progress: Progress | None = None) -> None:
        """Upload each local file to the blob of its digest, concurrently, each atomically."""
        prog = progress or NullProgress()
        prog.begin("upload", len(items), sum(p.stat().st_size for p, _ in items))
        if not items:
            return
        many = len(items) >= 64 or sum(p.stat().st_size for p, _ in items) >= 64 << 20
        if many and self.protocol in {"s3", "s3a"} and self._s3_options is not None:
            if self._s3_client is None:
                self._s3_client = _s3_client(self._s3_options, self.batch_size)
            if self._s3_client is not None:
                _upload_s3transfer(
                    self._s3_client, [(p, self.blob_key(d)) for p, d in items], self.batch_size, prog
                )
                return
        if self.is_async and self.atomic_put:
            self.fs.put(
                [str(p) for p, _ in items],
                [self.blob_key(d) for _, d in items],
                callback=_FilesCallback(prog),
                batch_size=self.batch_size,
            )
            return

        def one(item: tuple[Path, str]) -> None:
            path, digest = item
            self.put_file_atomic(path, self.blob_key(digest))
            prog.advance(1, path.stat().st_size)

        run_parallel(one, items)

    def put_file_atomic(self, local: Path, key: str) -> None:
        """Copy ``local`` to ``key`` so that ``key`` never holds part of the file."""
        if self.atomic_put:
            self.fs.put_file(str(local), key)
            return
        tmp = _tmp_sibling(key)
        with self._removed_on_error(tmp):
            if self.is_local:
                os.makedirs(os.path.dirname(key), exist_ok=True)
                shutil.copyfile(local, tmp)
                os.replace(tmp, key)
                return
            self.fs.makedirs(self.fs._parent(key), exist_ok=True)
            self.fs.put_file(str(local), tmp)
            self.fs.mv(tmp, key)

    @contextlib.contextmanager
    def _removed_on_error(self, tmp: str) -> Iterator[None]:
        """Remove the temporary file ``tmp`` when the body fails (a full disk, a read-only
        folder): what is written of it would keep taking the room until a prune."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(OSError):
                if self.is_local:
                    os.unlink(tmp)
                else:
                    self.fs.rm_file(tmp)
            raise

    def download_blobs(
        self, items: Sequence[tuple[str, Path]], progress: Progress | None = None, nbytes: int = 0
    ) -> None:
        """Download each digest's blob to a local path, concurrently (no verification here).

        ``nbytes``: their total size, as the manifests say, for the progress bar's total."""
        prog = progress or NullProgress()
        prog.begin("download", len(items), nbytes)
        if not items:
            return
        for _, path in items:
            path.parent.mkdir(parents=True, exist_ok=True)
        if self.is_async:
            self.fs.get(
                [self.blob_key(d) for d, _ in items],
                [str(p) for _, p in items],
                callback=_FilesCallback(prog),
                batch_size=self.batch_size,
            )
            return

        def one(item: tuple[str, Path]) -> None:
            digest, path = item
            if self.is_local:
                shutil.copyfile(self.blob_key(digest), path)
            else:
                self.fs.get_file(self.blob_key(digest), str(path))
            prog.advance(1, path.stat().st_size)

        run_parallel(one, items)

    def staging_paths(self, digests: Sequence[str]) -> dict[str, Path]:
        """For a local store: where each blob is taken in before it is verified, a ``.tmp-``
        sibling of where it lands (prune removes one a killed copy left); :meth:`adopt` then
        renames it into place, so a blob never takes room twice or in the system temp folder."""
        assert self.is_local, "only a local store stages blobs in its own folders"
        return {d: Path(_tmp_sibling(self.blob_key(d))) for d in digests}

    def adopt(self, staged: dict[str, Path]) -> None:
        """Move each verified staged file (from :meth:`staging_paths`, or any in the store's
        folder) to its blob, atomically."""
        for digest, path in staged.items():
            key = self.blob_key(digest)
            os.makedirs(os.path.dirname(key), exist_ok=True)
            os.replace(path, key)

    def local_blob_path(self, digest: str) -> Path | None:
        """The blob's path on disk when the store is a local folder, else None."""
        return Path(self.blob_key(digest)) if self.is_local else None

    # json documents -----------------------------------------------------------------------
    def write_atomic(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key``; readers see the old content or the new, never a part."""
        if self.atomic_put:
            self.fs.pipe_file(key, data)
            return
        tmp = _tmp_sibling(key)
        with self._removed_on_error(tmp):
            if self.is_local:
                os.makedirs(os.path.dirname(key), exist_ok=True)
                with open(tmp, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, key)
                return
            self.fs.makedirs(self.fs._parent(key), exist_ok=True)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, key)

    def read(self, key: str) -> bytes:
        """The content of ``key``; FileNotFoundError when there is none (MissingBucketError
        when the store's bucket is missing: a wrong URL, not a missing document)."""
        try:
            data: bytes = self.fs.cat_file(key)
        except FileNotFoundError as exc:
            if missing_bucket(exc) is not None:
                raise MissingBucketError(str(exc)) from exc
            raise
        return data

    def read_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The content of each key that exists (missing ones are left out), fetched concurrently."""
        if not keys:
            return {}
        found: dict[str, bytes] = self.fs.cat(list(keys), on_error="omit")
        return found

    def find_json(self, *parts: str) -> list[str]:
        """Keys of the ``.json`` documents under ``parts`` (temporary ``.``-files left out)."""
        return sorted(
            k
            for k in self._list(self.key(*parts))
            if k.endswith(".json") and not k.rsplit("/", 1)[-1].startswith(".")
        )

    def exists(self, key: str) -> bool:
        self.fs.invalidate_cache()
        return bool(self.fs.exists(key))

    def rm(self, keys: Sequence[str]) -> None:
        if keys:
            self.fs.rm(list(keys))

    def rm_tree(self, *parts: str) -> None:
        key = self.key(*parts)
        if self.exists(key):
            self.fs.rm(key, recursive=True)

    def stale_tmp_files(self, min_age_s: float) -> list[str]:
        """Temporary files left by killed uploads (``.tmp-`` names) older than ``min_age_s``."""
        now = time.time()
        return [
            k
            for k, info in self._list(self.key(BLOB_DIR), detail=True).items()
            if k.rsplit("/", 1)[-1].startswith(".tmp-") and now - _mtime(info) >= min_age_s
        ]

    def probe(self) -> None:
        """One cheap request to an S3 store (a listing of at most one key under the root); raises
        what the endpoint answers: a missing bucket, no credentials, no connection..."""
        bucket, _, prefix = self.key("").partition("/")
        self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)

    def stale_uploads(self, min_age_s: float) -> list[tuple[str, str]]:
        """Incomplete multipart uploads under the blobs (S3 only) that a killed upload left:
        ``(key, upload_id)`` of each whose last part (or its start, with no part yet) is older
        than ``min_age_s``. They are in no listing, yet S3 keeps their parts (and bills them)
        until they are aborted. A running upload sends a part every few seconds, so its last
        part stays young however long the whole file takes."""
        if self.protocol not in {"s3", "s3a"}:
            return []
        bucket, _, prefix = self.key(BLOB_DIR, "").partition("/")
        now = time.time()
        found: list[tuple[str, str]] = []
        markers: dict[str, str] = {}
        while True:
            page = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **markers)
            for upload in page.get("Uploads") or []:
                key, upload_id = f"{bucket}/{upload['Key']}", upload["UploadId"]
                if min_age_s <= 0 or (
                    now - _mtime({"created": upload.get("Initiated")}) >= min_age_s
                    and now - self._last_part(bucket, upload["Key"], upload_id) >= min_age_s
                ):
                    found.append((key, upload_id))
            if not page.get("IsTruncated"):
                return found
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    def _last_part(self, bucket: str, key: str, upload_id: str) -> float:
        """When the upload's newest part was stored (epoch seconds); 0 when it has none."""
        newest = 0.0
        marker: dict[str, int] = {}
        while True:
            page = self.fs.call_s3("list_parts", Bucket=bucket, Key=key, UploadId=upload_id, **marker)
            for part in page.get("Parts") or []:
                newest = max(newest, _mtime({"created": part.get("LastModified")}))
            if not page.get("IsTruncated"):
                return newest
            marker = {"PartNumberMarker": int(page["NextPartNumberMarker"])}

    def abort_uploads(self, uploads: Sequence[tuple[str, str]]) -> None:
        """Abort multipart uploads (``(key, upload_id)``); one already gone is no error."""

        def one(upload: tuple[str, str]) -> None:
            bucket, _, key = upload[0].partition("/")
            with contextlib.suppress(FileNotFoundError):  # completed or aborted since it was listed
                self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload[1])

        run_parallel(one, uploads)


def _tmp_sibling(key: str) -> str:
    head, _, name = key.rpartition("/")
    return f"{head}/.tmp-{uuid.uuid4().hex[:12]}-{name}"


def _mtime(info: dict[str, Any]) -> float:
    for field in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return 0.0


class _TransferSubscriber:
    """s3transfer subscriber that reports bytes as they go and a file when it is done."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def on_queued(self, **kwargs: Any) -> None:
        pass

    def on_progress(self, bytes_transferred: int = 0, **kwargs: Any) -> None:
        self._progress.advance(0, bytes_transferred)

    def on_done(self, **kwargs: Any) -> None:
        self._progress.advance(1, 0)


def _s3_client(options: dict[str, Any], concurrency: int) -> Any:
    """A boto3 S3 client built from s3fs storage options, or None without boto3."""
    try:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415
    except ImportError:  # pragma: no cover - boto3 comes with s3fs's aiobotocore stack in practice
        return None
    session = boto3.session.Session(
        aws_access_key_id=options.get("key"),
        aws_secret_access_key=options.get("secret"),
        aws_session_token=options.get("token"),
        profile_name=options.get("profile"),
    )
    client_kwargs = dict(options.get("client_kwargs") or {})
    if options.get("endpoint_url"):
        client_kwargs.setdefault("endpoint_url", options["endpoint_url"])
    config = Config(**{**(options.get("config_kwargs") or {}), "max_pool_connections": concurrency})
    return session.client("s3", config=config, **client_kwargs)


def _upload_s3transfer(
    client: Any, items: Sequence[tuple[Path, str]], concurrency: int, progress: Progress
) -> None:
    """Upload ``(local, "bucket/key")`` pairs with one s3transfer TransferManager.

    One manager for all files (what ``aws s3 sync`` does) measured faster than s3fs's bulk put
    on many small files (bench/artifacts.py); the client comes from the same storage options.
    """
    from s3transfer.manager import TransferConfig, TransferManager  # noqa: PLC0415

    tm_config = TransferConfig(max_request_concurrency=concurrency, multipart_chunksize=8 << 20)
    with TransferManager(client, tm_config) as tm:
        futures = []
        for local, key in items:
            bucket, _, name = key.partition("/")
            futures.append(tm.upload(str(local), bucket, name, subscribers=[_TransferSubscriber(progress)]))
        for future in futures:
            future.result()


def open_backend(url: str, storage_options: dict[str, Any]) -> Backend:
    """The backend of the store at ``url``; StorageError, with a hint, for a URL that names no
    bucket or cannot be opened, and for a store folder that is a file."""
    protocol = url.split("://", 1)[0] if "://" in url else ""
    if protocol in OBJECT_STORES and not urlsplit(url).netloc:
        msg = f"store URL {url!r} names no bucket"
        raise StorageError(msg, hint=_URL_HINT)
    with translate_errors(f"opening {url!r}"):
        try:
            b = Backend(url, storage_options)
        except (ValueError, ImportError) as exc:  # fsspec: unknown protocol, or its package missing
            msg = f"store URL {url!r} cannot be opened: {exc}"
            raise StorageError(msg, hint=_URL_HINT) from exc
    if b.is_local and os.path.isfile(b.root):  # else it reads as an empty store
        msg = f"the store folder {b.root!r} is a file"
        raise StorageError(msg, hint="point the store at a folder: `dstack config --store FOLDER`")
    return b


def check_bucket(b: Backend, storage_options: dict[str, Any], timeout_s: float) -> str | None:
    """``ArtifactStore.check``: ask the S3 endpoint of ``b`` about its bucket, in one short request."""
    if b.protocol not in {"s3", "s3a"}:
        return None
    config = {
        **storage_options.get("config_kwargs", {}),
        "connect_timeout": timeout_s,
        "read_timeout": timeout_s,
        "retries": {"max_attempts": 2},
    }
    try:
        with translate_errors(f"checking {b.url}"):
            Backend(b.url, {**storage_options, "config_kwargs": config}).probe()
    except StorageError as exc:
        bucket = missing_bucket(exc.__cause__) if exc.__cause__ is not None else None
        if bucket is not None:
            msg = f"the bucket {bucket!r} does not exist"
            raise StorageError(msg, hint="create the bucket, or name one that exists") from exc
        return exc.message.removeprefix(f"artifact store: checking {b.url} failed: ")
    return None
