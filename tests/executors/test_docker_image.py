"""Runtime images: their tags, and builds that fail with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dstack_prefect import __version__
from dstack_prefect.errors import ExecutionError
from dstack_prefect.executors._docker_image import build_runtime_image, find_source_tree, runtime_tag


def _checkout(root: Path, name: str = "dstack-prefect") -> Path:
    (root / "docker").mkdir(parents=True)
    (root / "docker" / "Dockerfile").write_text("FROM scratch\n")
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    return root


def test_source_tree_found_from_inside_a_checkout_after_a_plain_install(tmp_path: Path) -> None:
    """After `pip install .` (the package lives in site-packages) the build uses the checkout the
    user stands in, from any folder of it."""
    checkout = _checkout(tmp_path / "dstack-prefect")
    inside = checkout / "examples" / "deep"
    inside.mkdir(parents=True)
    site_packages = tmp_path / "venv" / "lib"
    site_packages.mkdir(parents=True)

    assert checkout == find_source_tree(inside, package_root=site_packages)


def test_editable_checkout_wins_over_the_current_folder(tmp_path: Path) -> None:
    """With `pip install -e`, the package's own checkout is used wherever the user stands."""
    own = _checkout(tmp_path / "own")
    other = _checkout(tmp_path / "other")

    assert own == find_source_tree(other, package_root=own)


def test_no_source_tree_says_where_to_run_the_build(tmp_path: Path) -> None:
    """Outside any checkout (or in another project with a docker/ folder) the error says so."""
    project = _checkout(tmp_path / "someone-else", name="my-model")

    with pytest.raises(ExecutionError) as err:
        find_source_tree(project, package_root=tmp_path / "venv")

    assert (
        f"images are built from a source checkout of dstack-prefect (its docker/ folder), "
        f"and neither {project} nor a folder above it is one"
    ) == err.value.message
    assert "run `dstack image build` inside a clone of the dstack-prefect repository" == err.value.hint


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
