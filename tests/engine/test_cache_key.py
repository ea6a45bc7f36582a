"""The cache key's code part: which snapshot files `inputs` selects (pure, no services)."""

from __future__ import annotations

import pytest

from dstack_prefect.engine._cache import code_files, fingerprint
from dstack_prefect.graph import Step

CODE = {"train.py": "a", "src/model.py": "b", "src/util.py": "c", "src/data/x.csv": "d", "README.md": "e"}


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (None, sorted(CODE)),
        (["train.py"], ["train.py"]),
        (["src"], ["src/data/x.csv", "src/model.py", "src/util.py"]),
        (["./src/"], ["src/data/x.csv", "src/model.py", "src/util.py"]),
        (["src/*.py"], ["src/model.py", "src/util.py"]),
        (["*.md", "train.py"], ["README.md", "train.py"]),
        (["."], sorted(CODE)),
    ],
    ids=["unset-all", "file", "folder", "dot-slash-folder", "glob", "glob-and-file", "dot"],
)
def test_inputs_select_the_files_that_make_up_a_step(inputs: list[str] | None, expected: list[str]) -> None:
    """`inputs` takes files, folders and globs; unset means every file of the snapshot."""
    step = Step(name="train", commands=["python train.py"], inputs=inputs)

    assert sorted(code_files(step, CODE)) == expected


def test_a_file_outside_inputs_does_not_change_the_key() -> None:
    """Editing README.md leaves a step with inputs [train.py] the same key; editing train.py changes it."""
    step = Step(name="train", commands=["python train.py"], inputs=["train.py"])
    before = fingerprint(step, CODE, []).key

    readme = fingerprint(step, {**CODE, "README.md": "edited"}, []).key
    script = fingerprint(step, {**CODE, "train.py": "edited"}, []).key

    assert readme == before
    assert script != before


def test_the_command_is_part_of_the_key() -> None:
    """Two steps differing only in a command have different keys."""
    a = Step(name="train", commands=["python train.py"])
    b = Step(name="train", commands=["python train.py --lr 0.1"])

    assert fingerprint(a, CODE, []).key != fingerprint(b, CODE, []).key


def test_the_workflow_files_are_not_code() -> None:
    """Without `inputs`, editing a workflow file changes no key by itself: the resolved spec
    already holds what the file says about each step."""
    step = Step(name="prep", commands=["python prep.py"])
    code = {**CODE, ".dstack/workflows.yaml": "v1", ".dstack/workflows/more.yml": "v1"}
    edited = {**code, ".dstack/workflows.yaml": "v2", ".dstack/workflows/more.yml": "v2"}

    assert sorted(CODE) == sorted(code_files(step, code))
    assert fingerprint(step, code, []).key == fingerprint(step, edited, []).key


def test_where_the_step_runs_is_part_of_the_key() -> None:
    """A step run on the host is not reused for a run in containers (`--docker`), nor back."""
    step = Step(name="train", commands=["python train.py"])

    assert fingerprint(step, CODE, [], "local").key != fingerprint(step, CODE, [], "docker").key
