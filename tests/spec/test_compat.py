"""Every real workflow file from the dstack examples repo (2022-08 .. 2023-05) loads."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from dstack_prefect.spec import load_text, load_workflows
from tests.spec.conftest import COMPAT_FILES, RepoFactory


def test_there_are_62_compat_files() -> None:
    """The compat set is complete, so a missing shared folder cannot pass silently."""

    assert len(COMPAT_FILES) == 62


@pytest.mark.parametrize("source", COMPAT_FILES, ids=[p.stem for p in COMPAT_FILES])
def test_compat_file_loads(source: Path, make_repo: RepoFactory) -> None:
    """A real file copied to .dstack/workflows.yaml loads with every workflow and no errors."""
    root = make_repo({".dstack/workflows.yaml": source.read_text()})

    workflows = load_workflows(root)

    assert len(workflows) > 0
    assert all(
        w.provider in ("bash", "docker", "code", "lab", "notebook") for w in workflows.by_name.values()
    )


def _snapshots() -> dict[str, list[Path]]:
    by_date: dict[str, list[Path]] = defaultdict(list)
    for path in COMPAT_FILES:
        by_date[path.name[:10]].append(path)
    return {date: files for date, files in by_date.items() if len(files) > 1}


@pytest.mark.parametrize("date", sorted(_snapshots()))
def test_snapshot_loads_together(date: str, make_repo: RepoFactory) -> None:
    """All files of one snapshot date, as .dstack/workflows/*.yaml, load together when names do not clash."""
    files = _snapshots()[date]
    seen: set[str] = set()
    layout = {}
    for path in files:
        names = set(load_text(path.read_text(), path.name).by_name)
        if names & seen:
            continue
        seen |= names
        layout[f".dstack/workflows/{path.name}"] = path.read_text()
    root = make_repo(layout)

    workflows = load_workflows(root)

    assert len(workflows) == len(seen)
