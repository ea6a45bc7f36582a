"""Library errors become StorageError subclasses at one seam, and every botocore error is covered."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from dstack_prefect.errors import ArtifactNotFoundError, StorageError
from dstack_prefect.storage import ArtifactStore, translate_errors
from dstack_prefect.storage._errors import error_class_for
from tests.conftest import as_a_user

BOTOCORE_ERRORS = sorted(
    (
        cls
        for _, cls in inspect.getmembers(botocore.exceptions, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == "botocore.exceptions"
    ),
    key=lambda cls: cls.__name__,
)


@pytest.mark.parametrize("exc_type", BOTOCORE_ERRORS, ids=lambda cls: cls.__name__)
def test_every_botocore_exception_is_mapped(exc_type: type[Exception]) -> None:
    """Each class in botocore.exceptions translates to a StorageError subclass."""
    assert error_class_for(exc_type) is not None


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (FileNotFoundError("gone"), ArtifactNotFoundError),
        (PermissionError("denied"), StorageError),
        (TimeoutError("slow"), StorageError),
        (OSError("disk"), StorageError),
        (botocore.exceptions.NoCredentialsError(), StorageError),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StorageError),
    ],
    ids=["not-found", "permission", "timeout", "oserror", "no-credentials", "endpoint"],
)
def test_translated_with_cause(exc: Exception, expected: type[StorageError]) -> None:
    """A library error raised inside the seam comes out as ours, chained to the original."""
    with pytest.raises(expected) as info, translate_errors("testing"):
        raise exc

    assert info.value.__cause__ is exc
    assert "testing failed" in info.value.message


def test_programmer_errors_pass_through() -> None:
    """ValueError is a programmer mistake, not a store failure, and is not translated."""
    with pytest.raises(ValueError, match="bad"), translate_errors("testing"):
        raise ValueError("bad")


def test_unreachable_endpoint_is_a_storage_error() -> None:
    """A store whose S3 endpoint does not answer fails with a StorageError and an endpoint hint."""
    store = ArtifactStore(
        "s3://nobucket/x",
        {
            "key": "k",
            "secret": "s",
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        },
    )

    with pytest.raises(StorageError) as info:
        store.list_runs()
    assert info.value.__cause__ is not None


@pytest.mark.service("moto")
def test_a_missing_bucket_says_so_reading_and_writing(moto_server: dict[str, Any], tmp_path: Path) -> None:
    """A store URL naming a bucket that does not exist fails with a hint to create it or fix the
    URL, when writing and when reading (reading said 'run has no stored artifacts' before)."""
    store = ArtifactStore("s3://no-such-bucket-here/prefix", moto_server)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_text("x")

    with pytest.raises(StorageError) as wrote:
        store.put_step("run-1", "s", "s", tmp_path, ["out"])
    with pytest.raises(StorageError) as read:
        store.resolve("run-1")

    for info in (wrote, read):
        assert not isinstance(info.value, ArtifactNotFoundError)
        assert "no-such-bucket-here" in info.value.message
        assert "create the bucket" in (info.value.hint or "")


@pytest.mark.service("moto")
def test_a_missing_bucket_says_so_reading_one_tag_or_manifest(moto_server: dict[str, Any]) -> None:
    """Reading one tag (`ls :T`, `pull :T`) or one step's manifest from a bucket that does not
    exist says the bucket is missing, not 'cannot find the tag' (which sent users to push it)."""
    store = ArtifactStore("s3://no-such-bucket-here/prefix", moto_server)

    with pytest.raises(StorageError) as tag:
        store.resolve(":best")
    with pytest.raises(StorageError) as manifest:
        store.get_manifest("run-1", "train")

    for info in (tag, manifest):
        assert not isinstance(info.value, ArtifactNotFoundError)
        assert "the bucket 'no-such-bucket-here' does not exist" in info.value.message
        assert "create the bucket" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://x", "store URL 'foo://x' cannot be opened: Protocol not known: foo"),
        ("s3://", "store URL 's3://' names no bucket"),
        ("s3:///prefix", "store URL 's3:///prefix' names no bucket"),
    ],
    ids=["unknown-protocol", "s3-without-bucket", "s3-empty-bucket"],
)
def test_a_store_url_that_cannot_name_a_store_is_refused(url: str, expected: str) -> None:
    """A URL with an unknown protocol or an s3:// URL without a bucket is refused when the store
    is opened, with the forms that work, instead of a ValueError or 'the bucket 'blobs' does
    not exist'."""
    with pytest.raises(StorageError) as info:
        ArtifactStore(url)

    assert expected in info.value.message
    assert "s3://bucket/prefix" in (info.value.hint or "")


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_a_store_folder_that_is_a_file_is_refused(tmp_path: Path, form: str) -> None:
    """A store path naming a file is refused when opened: `tags` listed nothing and `ls :T`
    said 'cannot find the tag', as if the store were empty."""
    (tmp_path / "afile").write_text("x")
    url = str(tmp_path / "afile") if form == "path" else f"file://{tmp_path}/afile"

    with pytest.raises(StorageError) as info:
        ArtifactStore(url)

    assert f"the store folder {str(tmp_path / 'afile')!r} is a file" in info.value.message
    assert "dstack config --store" in (info.value.hint or "")


def _upload_as_a_user(make: Callable[[Path], None]) -> tuple[str, str]:
    """``put_step`` of ``out`` from a folder ``make`` fills, run as a user permission bits bind
    (``as_a_user``); the StorageError's message and hint ("uploaded" when there was none)."""
    base = Path(tempfile.mkdtemp(prefix="dstack-unreadable-"))
    os.chmod(base, 0o777)
    said = base / "said.txt"
    store = ArtifactStore(base / "store")  # opened here: nobody cannot import from root's site-packages

    def upload() -> None:
        work = base / "work"
        make(work)
        try:
            store.put_step("calm-cat-1", "train", "train", work, ["out"])
            said.write_text("uploaded\n")
        except StorageError as exc:
            said.write_text(f"{exc.message}\n{exc.hint}")

    try:
        as_a_user(upload)
        message, hint = said.read_text().split("\n", 1)
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return message, hint


def test_an_unreadable_artifact_file_is_named_not_blamed_on_the_store() -> None:
    """A step's artifact file its user cannot read (a container running as root leaves a mode 000
    file) fails the upload naming the file as the step sees it and its mode, with the chmod to
    add, not "check the store's permissions or credentials". Permission bits do not bind root
    (CI): the upload then runs in a child that has dropped to ``nobody``."""

    def make(work: Path) -> None:
        (work / "out" / "sub").mkdir(parents=True)
        (work / "out" / "sub" / "f.txt").write_text("secret\n")
        (work / "out" / "sub" / "f.txt").chmod(0)

    message, hint = _upload_as_a_user(make)

    assert (
        "cannot upload the artifacts of calm-cat-1/train: artifact file 'out/sub/f.txt' is not "
        "readable by this user (mode 000)"
    ) == message
    assert "store's permissions" not in hint
    assert "make it readable in the step, e.g. end its commands with `chmod -R a+rX out`" in hint


def test_an_unreadable_artifact_folder_fails_the_upload_naming_it() -> None:
    """A folder inside an artifact its user cannot list (mode 000 from a container's root) is
    not left out in silence, its files missing from the artifact: the upload fails naming it,
    as for a file. Run as ``nobody`` where the tests run as root."""

    def make(work: Path) -> None:
        (work / "out" / "sub").mkdir(parents=True)
        (work / "out" / "kept.txt").write_text("kept\n")
        (work / "out" / "sub" / "f.txt").write_text("secret\n")
        (work / "out" / "sub").chmod(0)

    message, hint = _upload_as_a_user(make)

    assert (
        "cannot upload the artifacts of calm-cat-1/train: artifact folder 'out/sub' is not readable "
        "by this user (mode 000)"
    ) == message
    assert "`chmod -R a+rX out/sub`" in hint
