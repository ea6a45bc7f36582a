"""find_repo_root: the nearest `.dstack/` above the current folder, never the dstack home's."""

from __future__ import annotations

from pathlib import Path

import pytest

from dstack_prefect.errors import NoWorkflowsError
from dstack_prefect.spec import find_repo_root


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's home whose `~/.dstack` is the default dstack home, holding runs but no workflows."""
    home = tmp_path.resolve()
    monkeypatch.setenv("HOME", str(home))
    (home / ".dstack" / "runs").mkdir(parents=True)
    (home / "projects" / "p").mkdir(parents=True)
    return home


def test_home_is_not_a_repo(home: Path) -> None:
    """From a folder under ~ with no .dstack/ of its own, ~/.dstack is not taken for a repo."""

    with pytest.raises(NoWorkflowsError) as info:
        find_repo_root(home / "projects" / "p")

    assert info.value.message == f"No .dstack/ folder in {home / 'projects' / 'p'} or any folder above it"


def test_dstack_home_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DSTACK_HOME names the home: a `.dstack` that is DSTACK_HOME is passed over too."""
    (tmp_path / "work" / ".dstack" / "store").mkdir(parents=True)
    (tmp_path / "work" / "p").mkdir()
    monkeypatch.setenv("DSTACK_HOME", str(tmp_path / "work" / ".dstack"))

    with pytest.raises(NoWorkflowsError):
        find_repo_root(tmp_path / "work" / "p")


def test_repo_under_home_is_found(home: Path) -> None:
    """A repo under ~ is found as usual."""
    (home / "projects" / "p" / ".dstack").mkdir()
    (home / "projects" / "p" / "src").mkdir()

    assert find_repo_root(home / "projects" / "p" / "src") == home / "projects" / "p"


def test_home_with_workflow_files_is_a_repo(home: Path) -> None:
    """A dstack home that does hold workflow files is still a repo: someone made ~ one on purpose."""
    (home / ".dstack" / "workflows.yaml").write_text("workflows: []\n")

    assert find_repo_root(home / "projects" / "p") == home
