"""Fixtures for executor tests: a real Docker engine and the images built without a registry.

    docker_engine    a docker-py client that answered ping; skipped locally with the daemon's own
                     error, a failure when $CI is set (CI must not skip Docker)
    runtime_image    dstack-prefect/runtime:<version>-py3.11-slim, built by docker/build.sh
                     from dstack-prefect/base:bookworm when missing
    tiny_image       a small docker-provider image built here (CMD echoes "from-cmd")
    nonroot_image    the same with ``USER app`` (uid 1234, home /home/app), as many published images

Make the base image once with .ci/docker-setup.sh (root; debootstrap, about a minute).
"""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.errors import ExecutorUnavailableError
from dstack_prefect.executors._docker_image import BASE_IMAGE, runtime_tag
from dstack_prefect.executors.docker import docker_client

REPO = Path(__file__).resolve().parents[2]
TINY_IMAGE = "dstack-prefect/test-tiny:1"
TINY_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN echo tiny > /etc/tiny-marker
CMD ["echo", "from-cmd"]
"""
NONROOT_IMAGE = "dstack-prefect/test-nonroot:1"
NONROOT_DOCKERFILE = f"""\
FROM {BASE_IMAGE}
RUN useradd --create-home --uid 1234 app
USER app
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the Docker tests: call .ci/docker-setup.sh first)")
    pytest.skip(reason)


def _has_image(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A docker-py client to an engine that answers."""
    try:
        client = docker_client()
    except ExecutorUnavailableError as exc:
        _unavailable(f"no Docker engine: {exc.message}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_engine: Any) -> str:
    if not _has_image(docker_engine, BASE_IMAGE):
        _unavailable(f"base image {BASE_IMAGE} missing: run .ci/docker-setup.sh (root, debootstrap)")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def runtime_image(docker_engine: Any, base_image: str) -> str:
    """The slim runtime image, built through docker/build.sh when missing (a few seconds)."""
    tag = runtime_tag(slim=True)
    if not _has_image(docker_engine, tag):
        proc = subprocess.run(
            [str(REPO / "docker" / "build.sh"), "--slim", "--base", base_image, "--if-missing"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            _unavailable(f"docker/build.sh --slim failed:\n{proc.stderr[-2000:]}")
    return tag


def _built(client: Any, tag: str, dockerfile: str) -> str:
    if not _has_image(client, tag):
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, network_mode="host")
    return tag


@pytest.fixture(scope="session")
def tiny_image(docker_engine: Any, base_image: str) -> str:
    """A small image of our own for docker-provider steps."""
    return _built(docker_engine, TINY_IMAGE, TINY_DOCKERFILE)


@pytest.fixture(scope="session")
def nonroot_image(docker_engine: Any, base_image: str) -> str:
    """A docker-provider image whose USER is app (uid 1234), not root."""
    return _built(docker_engine, NONROOT_IMAGE, NONROOT_DOCKERFILE)


@pytest.fixture
def run_name() -> str:
    """A run name no other test uses, so label filters see only this test's containers."""
    return f"test-{uuid.uuid4().hex[:10]}"
