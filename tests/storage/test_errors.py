"""Library errors become StorageError subclasses at one seam, and every botocore error is covered."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from dstack_prefect.errors import ArtifactNotFoundError, StorageError
from dstack_prefect.storage import ArtifactStore, translate_errors
from dstack_prefect.storage._errors import error_class_for

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
