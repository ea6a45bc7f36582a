"""Finding the Python a local step asks for (no services).

tests/fakes/python3.97 stands in for an interpreter no machine has; the pyenv and uv layouts
are built in a temporary home with small fake interpreters written by the tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dstack_prefect.executors._python import find_python, missing_python_note, write_shims

FAKES = Path(__file__).resolve().parents[1] / "fakes"


def fake_python(path: Path, answers: str | None) -> Path:
    """An interpreter at ``path`` that answers the version probe with ``answers`` (fails on None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = f"echo {answers}; exit 0" if answers else "echo 'pyenv: not selected' >&2; exit 127"
    path.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then {probe}; fi\necho "{path.name} ran: $*"\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    return tmp_path / "home"


def test_the_path_comes_first(home: Path) -> None:
    """`python3.97` on the PATH is taken when it answers with 3.97."""
    assert find_python("3.97", str(FAKES), home) == str(FAKES / "python3.97")


def test_a_failing_shim_is_passed_over_for_pyenvs_newest_patch(home: Path, tmp_path: Path) -> None:
    """A pyenv shim of a version not selected fails: the versions folder has the real ones,
    and the newest patch (3.97.10 over 3.97.9) is taken."""
    shim = fake_python(tmp_path / "shims/python3.97", None)
    fake_python(home / ".pyenv/versions/3.97.9/bin/python3.97", "3.97")
    newest = fake_python(home / ".pyenv/versions/3.97.10/bin/python3.97", "3.97")

    assert find_python("3.97", str(shim.parent), home) == str(newest)


def test_uv_pythons_are_found_and_a_wrong_answer_is_not_taken(home: Path, tmp_path: Path) -> None:
    """An interpreter named python3.97 that answers 3.96 is not 3.97; uv's is."""
    liar = fake_python(tmp_path / "bin/python3.97", "3.96")
    uv = fake_python(home / ".local/share/uv/python/cpython-3.97.1-linux-x86_64-gnu/bin/python3.97", "3.97")

    assert find_python("3.97", str(liar.parent), home) == str(uv)
    assert find_python("3.98", str(liar.parent), home) is None


def test_the_shims_run_the_interpreter_and_pip_as_its_module(tmp_path: Path) -> None:
    """`python`, `python3`, `pip` and `pip3` in the shim folder run the Python found."""
    exe = fake_python(tmp_path / "with space/python3.97", "3.97")
    write_shims(str(exe), tmp_path / "shims")

    def run(name: str) -> str:
        return subprocess.run([tmp_path / "shims" / name, "x"], capture_output=True, text=True).stdout.strip()

    assert run("python") == run("python3") == "python3.97 ran: x"
    assert run("pip") == run("pip3") == "python3.97 ran: -m pip x"


def test_not_found_says_which_python_runs_instead_and_what_to_do(tmp_path: Path) -> None:
    """The note names the version asked for, the python3 that runs instead, and the ways out."""
    host = fake_python(tmp_path / "bin/python3", "3.42")

    note = missing_python_note("train", "3.98", str(host.parent))
    bare = missing_python_note("train", "3.98", str(tmp_path / "empty"))

    assert note.startswith("step 'train' asks for Python 3.98 and no python3.98 was found on this machine")
    assert "so python3 here is 3.42:" in note
    assert "so this machine has no python3:" in bare
    assert "pyenv install 3.98" in note and "uv python install 3.98" in note and "--docker" in note
