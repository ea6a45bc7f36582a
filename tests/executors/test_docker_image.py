"""Runtime images: their tags, and builds that fail with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from dstack_prefect import __version__
from dstack_prefect.errors import ExecutionError
from dstack_prefect.executors._docker_image import build_runtime_image, runtime_tag


@pytest.mark.parametrize(
    ("kw", "suffix"),
    [({}, "py3.11"), ({"python": "3.12", "cuda": True}, "py3.12-cuda"), ({"slim": True}, "py3.11-slim")],
    ids=["default", "cuda", "slim"],
)
def test_runtime_tag(kw: dict[str, Any], suffix: str) -> None:
    """Tags are dstack-prefect/runtime:<version>-py<python>[-cuda][-slim]."""
    assert f"dstack-prefect/runtime:{__version__}-{suffix}" == runtime_tag(**kw)


@pytest.mark.service("docker")
def test_python_mismatch_with_the_base_fails_with_the_fix(base_image: str) -> None:
    """Asking for a Python the base image lacks stops the build and names both versions."""
    lines: list[str] = []

    with pytest.raises(
        ExecutionError, match=r"base image dstack-prefect/base:bookworm has Python 3\.11\.2, not 3\.12"
    ):
        build_runtime_image(python="3.12", slim=True, base=base_image, on_line=lines.append)


@pytest.mark.service("docker")
def test_slim_image_runs_python(runtime_image: str, docker_engine: Any) -> None:
    """The slim runtime image has bash and the /opt/dstack venv first on PATH."""
    out = docker_engine.containers.run(
        runtime_image, ["bash", "-c", "command -v python"], remove=True, network_mode="host"
    )

    assert b"/opt/dstack/bin/python\n" == out
