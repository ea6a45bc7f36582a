"""Fixtures for spec tests: real repos in tmp_path, built from a dict of files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

RepoFactory = Callable[[dict[str, str]], Path]


def shared_dir() -> Path:
    """The read-only shared folder, which sits beside the repo checkout (../shared)."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        candidate = folder / "shared"
        if (candidate / "compat").is_dir():
            return candidate
        sibling = folder.parent / "shared"
        if (sibling / "compat").is_dir():
            return sibling
    msg = f"no shared/compat folder beside any parent of {here}"
    raise FileNotFoundError(msg)


COMPAT_FILES = sorted((shared_dir() / "compat" / "dstack-examples").glob("*.yaml"))


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Write ``{relative path: text}`` under a fresh repo and return its root."""

    def make(files: dict[str, str]) -> Path:
        (tmp_path / ".dstack").mkdir(exist_ok=True)
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return tmp_path

    return make
