"""The cache key's code part: which snapshot files `inputs` selects, and what a decision says
changed (pure: the memory:// store the library ships, no services)."""

from __future__ import annotations

import hashlib

import pytest

from dstack_prefect.engine._cache import code_files, decide, fingerprint
from dstack_prefect.graph import Step
from dstack_prefect.storage import ArtifactStore, FileEntry, Manifest

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
        (["**/*.py"], ["src/model.py", "src/util.py", "train.py"]),
        (["src/**/*.py"], ["src/model.py", "src/util.py"]),
        (["**/data"], ["src/data/x.csv"]),
    ],
    ids=[
        "unset-all",
        "file",
        "folder",
        "dot-slash-folder",
        "glob",
        "glob-and-file",
        "dot",
        "any-depth-glob-takes-the-top-too",
        "any-depth-glob-under-a-folder",
        "any-depth-folder",
    ],
)
def test_inputs_select_the_files_that_make_up_a_step(inputs: list[str] | None, expected: list[str]) -> None:
    """`inputs` takes files, folders and globs; unset means every file of the snapshot. `**/`
    is any number of folders, none too (`**/*.py` takes train.py at the top)."""
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


def _decision_after(
    before: Step,
    after: Step,
    executor: str = "local",
    *,
    parts: bool = True,
    deps_before: list[Manifest] | None = None,
    deps_after: list[Manifest] | None = None,
) -> str:
    """The reason the run gives for ``after`` when the last done run was of ``before``."""
    old = fingerprint(before, CODE, deps_before or []).extra()
    if not parts:  # a manifest written before per-part digests
        del old["spec_parts"], old["deps_parts"]
    last = Manifest(run="calm-cat-1", step="train", workflow="train", extra={"status": "done", **old})
    store = ArtifactStore("memory://cache-key-decisions")
    fp = fingerprint(after, CODE, deps_after or [], executor)
    return decide(store, after, fp, repo_id="r", candidates=[last]).describe()


def _dep(workflow: str, content: str) -> Manifest:
    digest = hashlib.sha256(content.encode()).hexdigest()
    return Manifest(
        run="x", step=workflow, workflow=workflow, files=[FileEntry(path="d", size=1, sha256=digest)]
    )


@pytest.mark.parametrize(
    ("change", "executor", "reason"),
    [
        ({"commands": ["python train.py --lr 0.1"]}, "local", "run (spec changed (commands))"),
        ({"env": {"EPOCHS": "3"}}, "local", "run (spec changed (env))"),
        ({"env": {"EPOCHS": "3"}, "image": "pytorch:2"}, "local", "run (spec changed (env, image))"),
        ({}, "docker", "run (spec changed (where it runs))"),
        ({}, "local", "reuse calm-cat-1 (same inputs)"),
    ],
    ids=["commands", "env", "env-and-image", "executor", "unchanged"],
)
def test_a_spec_change_names_the_fields_that_changed(
    change: dict[str, object], executor: str, reason: str
) -> None:
    """Like DVC's "changed command": the plan says which part of the spec moved, not just that it did."""
    before = Step(name="train", commands=["python train.py"], env={"EPOCHS": "2"})

    assert _decision_after(before, before.model_copy(update=change), executor) == reason


def test_a_manifest_from_before_per_field_digests_still_says_spec_changed() -> None:
    """Runs recorded by an earlier version have no per-field digests: the reason stays bare."""
    before = Step(name="train", commands=["python train.py"])
    after = Step(name="train", commands=["python train.py --lr 0.1"])

    assert _decision_after(before, after, parts=False) == "run (spec changed)"


def test_a_dep_change_names_the_dep() -> None:
    """A dep that ran again and made different files: the run's note names that dep."""
    step = Step(name="train", commands=["python train.py"])
    before = [_dep("prep", "v1"), _dep("tokenize", "v1")]
    after = [_dep("prep", "v2"), _dep("tokenize", "v1")]

    assert _decision_after(step, step, deps_before=before, deps_after=after) == "run (dep changed (prep))"
    assert (
        _decision_after(step, step, deps_before=before, deps_after=after, parts=False) == "run (dep changed)"
    )


def test_a_tag_dep_change_names_the_tag() -> None:
    """A tag dep moved to other files: the decision names it `:TAG`, not the workflow of the run it
    names (`dep changed (train)` read as the train step) nor the internal run of `-a` folders."""
    from dstack_prefect.engine._artifacts import tag_manifests
    from dstack_prefect.graph._plan import StepDep

    store = ArtifactStore("memory://cache-key-tag-deps")
    step = Step(name="usetag", commands=["cat d"], deps=[StepDep(kind="tag", name="mytag")])
    for run, content in (("calm-cat-1", "v1"), ("calm-cat-2", "v2")):
        store._write_manifest(_dep("train", content).model_copy(update={"run": run}))
    store.add_tag("mytag", "calm-cat-1")
    before = tag_manifests(store, step)
    store.add_tag("mytag", "calm-cat-2", overwrite=True)

    assert "run (dep changed (:mytag))" == _decision_after(
        step, step, deps_before=before, deps_after=tag_manifests(store, step)
    )


def test_no_done_run_says_done() -> None:
    """With no done run of the workflow (none at all, or only stopped, failed or aborted ones,
    which the store keeps no done manifest of) the decision says "no earlier done run"."""
    step = Step(name="train", commands=["python train.py"])
    store = ArtifactStore("memory://cache-key-no-done-run")

    assert (
        "run (no earlier done run)"
        == decide(store, step, fingerprint(step, CODE, []), repo_id="r").describe()
    )
    assert "run (no earlier done run)" == decide(store, step, None, repo_id="r").describe()
