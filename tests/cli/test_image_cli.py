"""`dstack image build` through the real typer app: mistakes fail at once, in one line and a hint."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dstack_prefect.cli import app


def build(*args: str) -> tuple[int, list[str]]:
    """Exit code and the non-empty output lines of `dstack image build ARGS`."""
    res = CliRunner().invoke(app, ["image", "build", *args])
    return res.exit_code, [line for line in res.output.splitlines() if line.strip()]


@pytest.mark.parametrize("python", ["3", "abc", "3.11.2"])
def test_a_python_that_is_not_major_minor_is_refused(python: str) -> None:
    """--python takes a major.minor such as 3.11; anything else is one error line and a hint."""
    code, lines = build("--python", python, "--slim")

    assert 1 == code
    assert [f"error: --python must be a Python major.minor such as 3.11, not '{python}'"] == lines[:1]
    assert lines[1].startswith("hint: ")
    assert 2 == len(lines)


def test_a_full_image_for_a_python_older_than_dstack_prefects_points_at_slim() -> None:
    """dstack-prefect (and prefect) need Python 3.11+: a full 3.10 image is refused before any
    pip run, and the hint is the --slim build that `dstack run --docker` can use."""
    code, lines = build("--python", "3.10")

    assert 1 == code
    assert lines[0].startswith("error: a full runtime image needs Python 3.11 or later"), lines
    assert "dstack image build --python 3.10 --slim" in lines[1]
    assert 2 == len(lines)


@pytest.mark.service("docker")
def test_a_base_image_neither_here_nor_pullable_fails_before_the_build(docker_engine: object) -> None:
    """A --base the engine lacks and cannot pull stops the build before it starts: after the
    pull it tried, one error line and a hint naming --base."""
    code, lines = build("--base", "127.0.0.1:9/nowhere/base:1", "--slim")

    assert 1 == code
    assert ["pulling the base image 127.0.0.1:9/nowhere/base:1"] == lines[:1]
    assert lines[1].startswith(
        "error: the base image 127.0.0.1:9/nowhere/base:1 is not on this Docker engine and pulling it failed"
    ), lines
    assert lines[2].startswith("hint: ") and "--base" in lines[2]
    assert 3 == len(lines)


@pytest.mark.service("docker")
def test_a_cuda_build_also_needs_the_official_python_image_and_says_so(base_image: str) -> None:
    """--cuda copies Python from python:<python>-slim-bookworm: when the engine has no such image
    and cannot pull it, the build stops before it starts, naming that image and how to load it."""
    code, lines = build("--cuda", "--python", "3.99", "--base", base_image)

    assert 1 == code
    assert lines[-2].startswith(
        "error: the base image python:3.99-slim-bookworm is not on this Docker engine and pulling it failed"
    ), lines
    assert lines[-1].startswith("hint: `docker load -i FILE.tar` it")
