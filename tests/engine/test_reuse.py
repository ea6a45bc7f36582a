"""Artifacts between steps, reuse by content hash, and the faults around them (end to end)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from dstack_prefect.storage import ArtifactStore
from tests.conftest import CLI, Server, wait_until, write_tree
from tests.engine.test_local_runs import submitted_name, wait_finished

pytestmark = pytest.mark.service("prefect")

CHAIN = """
workflows:
  - name: prep
    provider: bash
    inputs: [prep.py]
    commands:
      - echo "prep ran"
      - python3 prep.py
    artifacts: [data]
  - name: train
    provider: bash
    deps: [prep]
    inputs: [train.py]
    commands:
      - echo "train ran"
      - python3 train.py
    artifacts: [model]
    cache: [scratch]
  - name: clash
    provider: bash
    deps: [prep, other]
    commands: [echo never]
  - name: other
    provider: bash
    commands: [mkdir -p data, echo different > data/rows.txt]
    artifacts: [data]
  - name: slow
    provider: bash
    commands:
      - mkdir -p out
      - echo partial > out/partial.txt
      - echo "slow started"
      - sleep 300
    artifacts: [out]
"""

FILES = {
    ".dstack/workflows.yaml": CHAIN,
    "prep.py": (
        "import os\nos.makedirs('data', exist_ok=True)\nopen('data/rows.txt', 'w').write('1\\n2\\n3\\n')\n"
    ),
    "train.py": (
        "import os\n"
        "rows = open('data/rows.txt').read().split()\n"
        "os.makedirs('model', exist_ok=True)\n"
        "os.makedirs('scratch', exist_ok=True)\n"
        "seen = os.path.exists('scratch/seen')\n"
        "print('cache restored' if seen else 'cache empty')\n"
        "open('scratch/seen', 'w').write('x')\n"
        "open('model/sum.txt', 'w').write(str(sum(map(int, rows))))\n"
    ),
    "README.md": "about\n",
}


@pytest.fixture
def repo(make_repo: Any) -> Path:
    return make_repo(FILES)


@pytest.fixture
def store(dstack_home: Path) -> ArtifactStore:
    return ArtifactStore(str(dstack_home / "store"))


def plan_decisions(cli: CLI, repo: Path, *args: str) -> dict[str, Any]:
    res = cli("plan", "train", *args, "--json", cwd=repo)
    assert res.code == 0, res.text
    return dict(res.json()["decisions"])


def test_second_run_reuses_both_steps_and_says_so(cli: CLI, repo: Path) -> None:
    """Unchanged inputs: `plan` predicts reuse of both steps and the run's log names the earlier run."""
    first = cli("run", "train", cwd=repo)
    assert first.code == 0, first.text
    first_name = re.search(r"^(\S+-\d+)\s+train", first.out, re.M).group(1)  # type: ignore[union-attr]

    planned = plan_decisions(cli, repo)
    second = cli("run", "train", cwd=repo)

    assert planned["prep"]["action"] == "reuse" and planned["prep"]["run"] == first_name
    assert planned["train"]["action"] == "reuse"
    assert second.code == 0, second.text
    assert "prep ran" not in second.out and "train ran" not in second.out
    assert f"reusing prep from run {first_name}" in second.err
    assert f"reusing train from run {first_name}" in second.err


def test_editing_a_command_reruns_only_that_step(cli: CLI, repo: Path) -> None:
    """A changed train command reruns train (spec changed) on prep's reused artifacts."""
    assert cli("run", "train", cwd=repo).code == 0
    text = (repo / ".dstack/workflows.yaml").read_text().replace('echo "train ran"', 'echo "train ran again"')
    (repo / ".dstack/workflows.yaml").write_text(text)

    planned = plan_decisions(cli, repo)
    second = cli("run", "train", cwd=repo)

    assert planned["prep"]["action"] == "reuse"
    assert planned["train"] == {"action": "run", "reason": "spec changed (commands)", "run": None}
    assert "prep ran" not in second.out
    assert "train ran again" in second.out


def test_without_inputs_editing_one_command_reruns_only_that_step(cli: CLI, make_repo: Any) -> None:
    """With no `inputs`, the workflow file is not code: editing train's command keeps prep reused."""
    repo = make_repo({**FILES, ".dstack/workflows.yaml": re.sub(r"    inputs: .*\n", "", CHAIN)})
    assert cli("run", "train", cwd=repo).code == 0
    text = (repo / ".dstack/workflows.yaml").read_text().replace('echo "train ran"', 'echo "train ran again"')
    (repo / ".dstack/workflows.yaml").write_text(text)

    planned = plan_decisions(cli, repo)

    assert planned["prep"]["action"] == "reuse"
    assert planned["train"] == {"action": "run", "reason": "spec changed (commands)", "run": None}


def test_reuse_takes_the_deps_latest_run_whatever_changed_and_runs_the_target(cli: CLI, repo: Path) -> None:
    """`--reuse` (old dstack's rule): prep's latest done run is reused though prep.py changed;
    train, the workflow asked for, is decided by its own key: its edited command runs."""
    assert cli("run", "train", cwd=repo).code == 0
    (repo / "prep.py").write_text(FILES["prep.py"] + "# edited\n")
    text = (repo / ".dstack/workflows.yaml").read_text().replace('echo "train ran"', 'echo "train ran again"')
    (repo / ".dstack/workflows.yaml").write_text(text)

    second = cli("run", "train", "--reuse", cwd=repo)

    assert second.code == 0, second.text
    assert "prep ran" not in second.out
    assert "train ran again" in second.out


def test_a_dep_file_over_a_repo_file_is_said_in_the_log(cli: CLI, make_repo: Any) -> None:
    """A dep's artifact at a path the repo also has (a data file committed by mistake) replaces
    the repo's copy in the step's folder, as old dstack's deps did; the log says which copy the
    step reads."""
    yaml = (
        "workflows:\n  - name: make\n    provider: bash\n"
        "    commands: [mkdir -p data, echo from-dep > data/rows.txt]\n    artifacts: [data]\n"
        "  - name: read\n    provider: bash\n    deps: [make]\n    commands: [cat data/rows.txt]\n"
    )
    repo = make_repo({".dstack/workflows.yaml": yaml, "data/rows.txt": "from-repo\n"})

    res = cli("run", "read", cwd=repo)

    assert res.code == 0, res.text
    assert "from-dep" in res.out
    said = " ".join(res.err.split())
    assert "the artifact data/rows.txt of " in said
    assert "/make replaces the repo's file of that name in this step's folder" in said


def test_reuse_without_an_earlier_dep_run_is_an_error(cli: CLI, repo: Path) -> None:
    """`--reuse` with no done run of a dep fails before anything runs, naming the dep."""
    res = cli("run", "train", "--reuse", cwd=repo)

    assert res.code == 1
    assert "error: --reuse: workflow 'prep' has no done run to reuse" in res.err
    assert "dstack run prep" in res.err


def test_a_near_miss_after_rerun_is_an_error_not_a_run_argument(cli: CLI, repo: Path) -> None:
    """`--rerun prpe` is a typo of prep: refused with "did you mean", nothing runs."""
    res = cli("run", "train", "--rerun", "prpe", cwd=repo)

    assert res.code == 1
    assert "error: --rerun: no workflow named 'prpe'; did you mean 'prep'?" in res.err


def test_rerun_of_a_workflow_outside_the_run_is_an_error(cli: CLI, repo: Path) -> None:
    """`dstack run train --rerun slow`: slow is a workflow but not a step of train's run, so
    nothing would rerun it; run and plan refuse it, naming the run's steps."""
    res = cli("run", "train", "--rerun", "slow", cwd=repo)
    planned = cli("plan", "train", "--rerun", "slow", cwd=repo)

    expected = "error: --rerun slow: 'slow' is not a step of this run (its steps: prep, train)"
    assert res.code == 1
    assert expected in res.err
    assert "dstack run slow --rerun" in res.err
    assert planned.code == 1
    assert expected in planned.err


def test_run_with_an_existing_tag_is_refused(cli: CLI, repo: Path) -> None:
    """`dstack run -t T` never moves tag T off another run silently."""
    assert cli("run", "prep", "-t", "data-v1", cwd=repo).code == 0

    again = cli("run", "prep", "-t", "data-v1", "--rerun", cwd=repo)

    assert again.code == 1
    assert "error: tag 'data-v1' already names run" in again.err
    assert "dstack tags delete data-v1" in again.err


def test_a_failed_run_is_not_tagged_and_says_so(cli: CLI, repo: Path) -> None:
    """`dstack run -t T` of a run that fails leaves T unmade, and the run's log says why."""
    res = cli("run", "clash", "-t", "never-made", cwd=repo)

    assert res.code == 1
    said = " ".join(res.err.split())
    assert "the run is not tagged never-made: only a run whose steps are all done is tagged" in said
    assert "never-made" not in cli("tags", cwd=repo).out


def test_a_file_outside_inputs_changes_nothing(cli: CLI, repo: Path) -> None:
    """Editing README.md (outside both steps' inputs) keeps both reused; editing train.py reruns train."""
    assert cli("run", "train", cwd=repo).code == 0
    (repo / "README.md").write_text("about, edited\n")

    unchanged = plan_decisions(cli, repo)
    (repo / "train.py").write_text(FILES["train.py"] + "# edited\n")
    edited = plan_decisions(cli, repo)

    assert {k: v["action"] for k, v in unchanged.items()} == {"prep": "reuse", "train": "reuse"}
    assert edited["train"] == {"action": "run", "reason": "code changed (train.py)", "run": None}


def test_rerun_forces_and_cache_folders_come_back(cli: CLI, repo: Path) -> None:
    """`--rerun train` runs train again, and its `cache: [scratch]` folder is restored from the last run."""
    first = cli("run", "train", cwd=repo)
    second = cli("run", "train", "--rerun", "train", cwd=repo)

    assert "cache empty" in first.out
    assert second.code == 0, second.text
    assert "train ran" in second.out and "prep ran" not in second.out
    assert "cache restored" in second.out


def test_a_corrupt_dep_blob_fails_the_consumer_before_it_runs(
    cli: CLI, repo: Path, store: ArtifactStore, dstack_home: Path
) -> None:
    """One flipped byte in prep's stored file: train fails before its commands, naming the file and run."""
    first = cli("run", "prep", cwd=repo)
    assert first.code == 0, first.text
    manifest = store.find_manifests("prep")[0]
    entry = next(f for f in manifest.files if f.path == "data/rows.txt")
    blob = dstack_home / "store" / "blobs" / "sha256" / entry.sha256[:2] / entry.sha256[2:]
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))

    res = cli("run", "train", "--rerun", "train", cwd=repo)

    assert res.code == 1
    assert "train ran" not in res.out
    assert "data/rows.txt" in res.out and manifest.run in res.out


def test_two_deps_writing_one_path_is_a_located_error(cli: CLI, repo: Path) -> None:
    """prep and other both produce data/rows.txt with different content: clash names the YAML line."""
    res = cli("run", "clash", cwd=repo)

    assert res.code == 1
    assert ".dstack/workflows.yaml:" in res.out and "data/rows.txt" in res.out
    assert "never" not in res.out.replace("step 'clash'", "")


@pytest.mark.parametrize(("flag", "kept"), [((), True), (("-x",), False)], ids=["stop-saves", "abort-drops"])
def test_a_graceful_stop_saves_artifacts_and_an_abort_does_not(
    cli: CLI,
    repo: Path,
    store: ArtifactStore,
    prefect_server: Server,
    dstack_home: Path,
    flag: tuple[str, ...],
    kept: bool,
) -> None:
    """Old dstack's rule: artifacts are uploaded after `stop`, not after `stop -x`."""
    name = submitted_name(cli("run", "slow", "-d", cwd=repo).out)
    with PrefectAPI(prefect_server.url) as api:
        fr = api.flow_run_by_name(name)

        def started() -> bool:
            return any(r["message"] == "slow started" for r in api.logs(fr["id"]))

        wait_until(started, 60)
        assert cli("stop", name, *flag, "-y", cwd=repo).code == 0
        wait_finished(api, name)

    runs = store.list_runs()
    if kept:
        m = store.get_manifest(name, "slow")
        assert m.extra["status"] == "stopped"
        assert [f.path for f in m.files] == ["out/partial.txt"]
    else:
        assert name not in runs


def test_the_task_result_is_the_manifest(
    cli: CLI, repo: Path, prefect_server: Server, dstack_home: Path
) -> None:
    """A step's task result is its manifest, persisted as JSON in the store; reused steps are Cached."""
    cli("run", "prep", cwd=repo)
    name = submitted_name(cli("run", "train", "-d", cwd=repo).out)
    with PrefectAPI(prefect_server.url) as api:
        wait_finished(api, name)
        fr = api.flow_run_by_name(name)
        tasks = wait_until(lambda: (t := api.task_runs(fr["id"])) and len(t) == 2 and t, 20)

    states = {t["name"]: t["state"]["name"] for t in tasks}
    assert states == {"prep": "Cached", "train": "Completed"}
    record = json.loads((dstack_home / "store" / "results" / fr["id"] / "train.json").read_text())
    manifest = json.loads(record["result"])  # Prefect's JSON serializer stores the value as a string
    assert manifest["run"] == name
    assert [f["path"] for f in manifest["files"]] == ["model/sum.txt"]


def test_a_plain_folder_without_git_runs_and_reuses(cli: CLI, make_repo: Any) -> None:
    """A repo that is not a git repo works: its files are the snapshot, and reuse applies."""
    repo = make_repo(FILES, git=False, name="plain")
    write_tree(repo, {".gitignore": "ignored/\n", "ignored/big.bin": "x"})

    first = cli("run", "train", cwd=repo)
    second = cli("run", "train", cwd=repo)

    assert first.code == 0, first.text
    assert "train ran" in first.out and "train ran" not in second.out
    assert json.loads(cli("ps", "-a", "--json", cwd=repo).out)[0]["status"] == "done"
    assert subprocess.run(["git", "-C", str(repo), "status"], capture_output=True).returncode != 0


def test_a_fully_reused_run_is_recorded_without_running(
    cli: CLI, repo: Path, prefect_server: Server, dstack_home: Path
) -> None:
    """Nothing to run: the run still shows in Prefect (Done, a Cached task run per step, log
    lines) and in `ls`."""
    first = submitted_name(cli("run", "train", "-d", cwd=repo).out)
    with PrefectAPI(prefect_server.url) as api:
        wait_finished(api, first)
        res = cli("run", "train", "-d", cwd=repo)
        name = re.search(r"\(run (\S+)\)", res.out).group(1)  # type: ignore[union-attr]
        fr = api.flow_run_by_name(name)
        tasks = api.task_runs(fr["id"])
        logs = [r["message"] for r in api.logs(fr["id"])]

    assert res.code == 0, res.text
    assert fr["state"]["type"] == "COMPLETED" and fr["state"]["name"] == "Done"
    assert sorted((t["name"], t["state"]["name"]) for t in tasks) == [("prep", "Cached"), ("train", "Cached")]
    assert f"reusing train from run {first} (same inputs)" in logs
    listed = cli("ls", name, "-r", cwd=repo)
    assert "sum.txt" in listed.out and "rows.txt" in listed.out


def test_a_home_artifact_of_a_local_step_is_saved(
    cli: CLI, make_repo: Any, prefect_server: Server, dstack_home: Path, tmp_path: Path
) -> None:
    """`artifacts: [~/t.txt]` on the host is the user's home, as `cache: [~/...]` is (it was
    read as a folder named '~' in the working directory: an empty artifact)."""
    home = tmp_path / "user-home"
    home.mkdir()
    env = {**prefect_server.env(dstack_home), "HOME": str(home)}
    yaml = (
        "workflows:\n  - name: h\n    provider: bash\n"
        "    commands: [echo t > ~/t.txt]\n    artifacts: [~/t.txt]\n"
    )
    repo = make_repo({".dstack/workflows.yaml": yaml})

    res = cli("run", "h", cwd=repo, env=env)

    assert res.code == 0, res.text
    name = re.search(r"^(\S+-\d+)\s+h\b", res.out, re.M).group(1)  # type: ignore[union-attr]
    rows = cli("ls", name, "-r", "--json", cwd=repo, env=env).json()
    assert [(r["artifact"], r["size"]) for r in rows] == [(str(home / "t.txt"), 2)]


@pytest.mark.parametrize(
    ("container", "kept", "lost"),
    [
        (False, ["out", "/opt/env", "{home}/t.txt"], []),
        (True, ["out", "/opt/env"], ["~/t.txt"]),
    ],
    ids=["local", "container"],
)
def test_paths_inside_a_container_are_not_read_from_the_host(
    container: bool, kept: list[str], lost: list[str]
) -> None:
    """A containerised step's `~` artifacts live in the container's home: they are left out
    (the step warns), never read from the host's home; its absolute ones are kept, to be read
    from the host folders mounted at them."""
    from dstack_prefect.engine._artifacts import collected_paths
    from dstack_prefect.graph import build_plan
    from dstack_prefect.spec import load_text

    yaml = (
        "workflows:\n  - name: s\n    provider: bash\n"
        "    commands: [x]\n    artifacts: [out, /opt/env, ~/t.txt]\n"
    )
    step = build_plan(load_text(yaml), "s", [], "r-1").step("s")

    paths, missing = collected_paths(step, container=container)

    assert paths == [p.format(home=Path.home()) for p in kept]
    assert missing == lost


def test_an_artifact_entry_left_out_is_said_in_the_log(cli: CLI, make_repo: Any) -> None:
    """A symlink to a folder inside an artifact is not stored (the manifest's `skipped`): the
    run's log says so, naming the entry, instead of leaving the user to find it missing."""
    yaml = (
        "workflows:\n  - name: s\n    provider: bash\n"
        "    commands: [mkdir -p out/real, ln -s real out/link, echo x > out/real/f.txt]\n"
        "    artifacts: [out]\n"
    )
    repo = make_repo({".dstack/workflows.yaml": yaml})

    res = cli("run", "s", cwd=repo)

    assert res.code == 0, res.text
    assert "artifact file out/link is not saved: symlink to a folder" in res.err


def test_a_container_gets_one_mount_per_outermost_absolute_artifact(tmp_path: Path) -> None:
    """A containerised step's absolute artifact folders and its deps' are mounted from under
    the step's `.dstack-absolute/`; a path inside another one rides on the outer mount, and a
    dep's file stays a file."""
    from dstack_prefect.engine._artifacts import ABSOLUTE_ROOT, container_artifact_mounts
    from dstack_prefect.graph import build_plan
    from dstack_prefect.spec import load_text
    from dstack_prefect.storage import Manifest

    yaml = (
        "workflows:\n  - name: s\n    provider: bash\n"
        "    commands: [x]\n    artifacts: [out, /opt/conda/, ~/t]\n"
    )
    step = build_plan(load_text(yaml), "s", [], "r-1").step("s")
    root = tmp_path / ABSOLUTE_ROOT
    (root / "models").mkdir(parents=True)
    (root / "models/m.pt").write_bytes(b"m")
    deps = [
        Manifest(run="r-0", step="d", artifacts=["/opt/conda/envs/myenv", "/models/m.pt", "data"]),
    ]

    mounts = container_artifact_mounts(step, tmp_path, deps)

    assert mounts == {"/models/m.pt": root / "models/m.pt", "/opt/conda": root / "opt/conda"}
    assert (root / "opt/conda").is_dir() and (root / "models/m.pt").is_file()


def test_a_local_step_finds_a_deps_absolute_artifact_in_its_folder_and_is_told(
    cli: CLI, make_repo: Any, tmp_path: Path
) -> None:
    """A dep's absolute artifact is placed under `.dstack-absolute/<path>` of a local step
    (never at the path itself on this machine), and the step's log says where it is."""
    made = tmp_path / "made-env"
    yaml = (
        "workflows:\n  - name: make\n    provider: bash\n"
        f"    commands: [mkdir -p {made}, echo built > {made}/f]\n    artifacts: [{made}]\n"
        "  - name: use\n    provider: bash\n    deps: [make]\n"
        f"    commands: [rm -r {made}, cat .dstack-absolute{made}/f]\n"
    )
    repo = make_repo({".dstack/workflows.yaml": yaml})

    res = cli("run", "use", cwd=repo)

    assert res.code == 0, res.text
    assert "use | built" in res.out
    said = " ".join(res.err.split())  # the console wraps long lines
    assert f"dep artifact {made} is at .dstack-absolute{made} in the working directory" in said
    assert not made.exists()
