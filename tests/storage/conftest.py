"""Fixtures for the storage tests: a moto_server subprocess serving S3, and a tree builder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.server import free_port

BUCKET = "dstack-test"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[dict[str, Any]]:
    """A moto_server subprocess on a free port with bucket ``dstack-test``; yields s3fs storage_options."""
    exe = shutil.which("moto_server")
    if exe is None:
        reason = "moto_server is not installed (pip install 'moto[server]')"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must not skip the S3 tests")
        pytest.skip(reason)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except urllib.error.HTTPError:  # any HTTP answer means it is serving
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start on {endpoint} (exit code {proc.poll()})")
                time.sleep(0.1)
        options = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        boto_client(options).create_bucket(Bucket=BUCKET)
        yield options
    finally:
        proc.kill()
        proc.wait()


def boto_client(options: dict[str, Any]) -> Any:
    """A boto3 S3 client for the moto_server of ``options`` (for what s3fs does not do)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=options["client_kwargs"]["endpoint_url"],
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name=options["client_kwargs"]["region_name"],
    )


def s3_url(prefix: str = "") -> str:
    """A fresh prefix in the test bucket."""
    return f"s3://{BUCKET}/{prefix or uuid.uuid4().hex[:10]}"


def gen(root: Path, tree: dict[str, Any]) -> Path:
    """Create ``tree`` under ``root``: a str/bytes value is a file, a dict a folder; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in tree.items():
        path = root / name
        if isinstance(value, dict):
            gen(path, value)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(value.encode() if isinstance(value, str) else value)
    return root
