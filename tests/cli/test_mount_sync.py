"""`mount: true` artifacts end to end: synced to the store while the step runs, read by ls and cp.

Real CLI, Prefect server and git repo. A step never sleeps a fixed time: it writes its files,
then waits for a file the test creates in its working folder (``go``, ``end``), and says where
it is by touching one there (``wrote``). The sync interval is DSTACK_MOUNT_SYNC_INTERVAL: short
where a test waits for a periodic sync, an hour where only the sync at the step's end may run.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI, run_row
from tests.cli import test_artifacts_cli
from tests.cli.test_artifacts_cli import DSTACK
from tests.conftest import Server, git_init, supervisor_pid, wait_until, write_tree

pytestmark = pytest.mark.service("prefect")

STEP = """
  - name: {name}
    provider: bash
    commands:
      - mkdir -p ck out && echo one > ck/1.txt && echo plain > out/p.txt
      - while [ ! -e go ]; do sleep 0.05; done
      - echo two > ck/2.txt && touch wrote
      - while [ ! -e end ]; do sleep 0.05; done
    artifacts:
      - path: ck
        mount: true
      - out
"""
IN_CONTAINER = """
  - name: ckpt-docker
    provider: bash
    commands:
      - mkdir -p ck && echo one > ck/1.txt && echo abs > /ckabs/a.txt
      - while [ ! -e end ]; do sleep 0.05; done
    artifacts:
      - path: ck
        mount: true
      - path: /ckabs
        mount: true
"""
WORKFLOWS = "workflows:" + STEP.format(name="ckpt") + STEP.format(name="ckpt-abort") + IN_CONTAINER
"""ckpt writes ck/1.txt (a mount artifact) and out/p.txt (a plain one), waits for `go`, writes
ck/2.txt and touches `wrote`, then waits for `end`. ckpt-abort is the same step under another
name: its runs are only ever aborted, so no done run of it could be reused anyway. ckpt-docker
(run with --docker) writes a relative and an absolute mount artifact, then waits for `end`."""

FAST = {"DSTACK_MOUNT_SYNC_INTERVAL": "0.2"}
NEVER = {"DSTACK_MOUNT_SYNC_INTERVAL": "3600"}


dstack = test_artifacts_cli.dstack
"""`dstack ARGS...` in ``cwd`` with this module's ``home``, plus ``env`` extras."""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's dstack home (its own runs folder and local store), which `dstack` runs in."""
    return tmp_path_factory.mktemp("mount-home")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mount-repo")
    write_tree(root, {".dstack/workflows.yaml": WORKFLOWS})
    git_init(root)
    return root


@pytest.fixture(scope="module")
def api(prefect_server: Server) -> Any:
    with PrefectAPI(prefect_server.url) as client:
        yield client


def start(dstack: DSTACK, repo: Path, env: dict[str, str], workflow: str = "ckpt") -> str:
    """`dstack run WORKFLOW -d --rerun` (never a reuse of an earlier test's run); its name."""
    res = dstack("run", workflow, "-d", "--rerun", cwd=repo, env=env)
    assert res.code == 0, res.text
    m = re.search(r"Run (\S+) submitted", res.out)
    assert m, res.out
    return m.group(1)


def step_dir(home: Path, run: str, workflow: str = "ckpt") -> Path:
    """The working folder of the run's one step."""
    return home / "runs" / run / "steps" / workflow


def touch(home: Path, run: str, name: str, workflow: str = "ckpt") -> None:
    """Create ``name`` in the step's working folder (the step waits for it)."""
    (step_dir(home, run, workflow) / name).touch()


def files(dstack: DSTACK, repo: Path, run: str, env: dict[str, str] | None = None) -> list[str]:
    """`ls RUN -r --json` as artifact/file paths; [] while it fails (no stored artifacts yet)."""
    res = dstack("ls", run, "-r", "--json", cwd=repo, env=env)
    return [f"{r['artifact']}/{r['file']}" for r in res.json()] if res.code == 0 else []


def finished(api: PrefectAPI, run: str, timeout: float = 60) -> str:
    """Wait for the run to end; its status."""

    def status() -> str | None:
        row = run_row(api.flow_run_by_name(run))
        return row.status if row.status in ("done", "failed", "stopped", "aborted") else None

    return str(wait_until(status, timeout))


class TestWhileRunning:
    def test_a_running_steps_mount_folder_is_listed_and_copied(
        self, dstack: DSTACK, repo: Path, home: Path, api: PrefectAPI, tmp_path: Path
    ) -> None:
        """Before the step ends, `ls RUN` lists its mount folder's files from the last sync and
        says so; `cp` copies them; the plain artifact is not there yet."""
        run = start(dstack, repo, FAST)
        try:
            wait_until(lambda: "ck/1.txt" in files(dstack, repo, run), 60)

            table = dstack("ls", run, cwd=repo)
            rows = dstack("ls", run, "-r", "--json", cwd=repo).json()
            copied = dstack("cp", run, "ck/1.txt", str(tmp_path / "1.txt"), cwd=repo)
        finally:
            touch(home, run, "go")
            touch(home, run, "end")

        assert table.code == 0, table.text
        assert re.search(r"^ck/\s+1\.txt\s+4 bytes", table.out, re.MULTILINE)
        said = " ".join(table.err.split())
        assert "step 'ckpt' has not stored its artifacts" in said and "as last synced (" in said
        assert [{"artifact": "ck", "file": "1.txt", "size": 4, "folder": True, "synced": True}] == rows
        assert copied.code == 0, copied.text
        assert "one\n" == (tmp_path / "1.txt").read_text()
        assert "done" == finished(api, run)

    def test_after_a_normal_end_the_final_manifest_replaces_the_synced_one(
        self, dstack: DSTACK, repo: Path, home: Path, api: PrefectAPI
    ) -> None:
        """A step that ends Done stores every artifact as usual; its synced manifest is removed
        and ls no longer says the files are from a sync."""
        run = start(dstack, repo, FAST)
        wait_until(lambda: "ck/1.txt" in files(dstack, repo, run), 60)
        touch(home, run, "go")
        touch(home, run, "end")

        status = finished(api, run)
        table = dstack("ls", run, "-r", cwd=repo)

        assert "done" == status
        assert ["ck/1.txt", "ck/2.txt", "out/p.txt"] == files(dstack, repo, run)
        assert "synced" not in table.err
        assert not (home / "store" / "synced" / run).exists()


@pytest.fixture(scope="module")
def aborted(dstack: DSTACK, repo: Path, home: Path, api: PrefectAPI) -> str:
    """A run of ckpt aborted (`stop -x`) right after the step wrote ck/2.txt, with no periodic
    sync (an hour's interval): only the sync at the step's end can have stored ck/2.txt."""
    run = start(dstack, repo, NEVER, "ckpt-abort")
    folder = step_dir(home, run, "ckpt-abort")
    wait_until(lambda: (folder / "out" / "p.txt").exists(), 60)
    (folder / "go").touch()
    wait_until(lambda: (folder / "wrote").exists(), 60)
    res = dstack("stop", run, "-x", "-y", cwd=repo)
    assert res.code == 0, res.text
    assert "aborted" == finished(api, run)
    return run


class TestAfterAbortOrCrash:
    def test_after_an_abort_the_synced_files_stay_listed_and_copyable(
        self, dstack: DSTACK, repo: Path, aborted: str, tmp_path: Path
    ) -> None:
        """After `stop -x` the mount folder's files, as synced when the step was killed, are
        listed and copied; the plain artifact is not saved (old dstack's rule for an abort)."""
        table = dstack("ls", aborted, "-r", cwd=repo)
        copied = dstack("cp", aborted, "ck", str(tmp_path / "ck"), cwd=repo)

        assert ["ck/1.txt", "ck/2.txt"] == files(dstack, repo, aborted)
        assert "step 'ckpt-abort' ended without storing its artifacts" in " ".join(table.err.split())
        assert copied.code == 0, copied.text
        assert ["1.txt", "2.txt"] == sorted(p.name for p in (tmp_path / "ck").iterdir())

    def test_a_synced_manifest_never_makes_a_later_run_reuse_the_step(
        self, dstack: DSTACK, repo: Path, aborted: str
    ) -> None:
        """The aborted run's synced manifest has the same inputs as the next run of ckpt-abort,
        yet `plan` says the step runs (no earlier run), not that it reuses the aborted one."""
        res = dstack("plan", "ckpt-abort", "--json", cwd=repo)

        assert res.code == 0, res.text
        decision = json.loads(res.out)["decisions"]["ckpt-abort"]
        assert "run" == decision["action"], decision
        assert aborted not in json.dumps(decision)

    def test_rm_deletes_the_synced_manifest_and_prune_then_frees_its_files(
        self, dstack: DSTACK, repo: Path, home: Path, api: PrefectAPI
    ) -> None:
        """Prune keeps the files a synced manifest names; `rm` deletes that manifest, and the
        next prune frees them."""
        run = start(dstack, repo, NEVER, "ckpt-abort")
        folder = step_dir(home, run, "ckpt-abort")
        wait_until(lambda: (folder / "out" / "p.txt").exists(), 60)
        (folder / "ck" / "unique.txt").write_text(f"only in {run}\n")
        assert dstack("stop", run, "-x", "-y", cwd=repo).code == 0
        assert "aborted" == finished(api, run)
        synced = home / "store" / "synced" / run / "ckpt-abort.json"
        digest = next(
            f["sha256"] for f in json.loads(synced.read_text())["files"] if f["path"] == "ck/unique.txt"
        )
        blob = home / "store" / "blobs" / "sha256" / digest[:2] / digest[2:]

        kept = dstack("prune", "artifacts", "-y", cwd=repo)
        was_kept = blob.exists()
        removed = dstack("rm", run, "-y", cwd=repo)
        pruned = dstack("prune", "artifacts", "-y", cwd=repo)

        assert kept.code == 0 and removed.code == 0 and pruned.code == 0, kept.text + removed.text
        assert was_kept
        assert not synced.exists()
        assert not blob.exists()

    def test_after_a_crash_of_the_flow_process_the_synced_files_stay_listed(
        self, dstack: DSTACK, repo: Path, home: Path, api: PrefectAPI
    ) -> None:
        """SIGKILL of the process running the flow: the run ends Crashed, and what the last
        periodic sync stored of the mount folder is still listed."""
        run = start(dstack, repo, FAST)
        wait_until(lambda: "ck/1.txt" in files(dstack, repo, run), 60)

        os.kill(supervisor_pid(home / "runs" / run), signal.SIGKILL)

        assert "failed" == finished(api, run)
        assert "CRASHED" == api.flow_run_by_name(run)["state"]["type"]
        assert ["ck/1.txt"] == files(dstack, repo, run)


def test_a_failing_sync_is_noted_once_and_never_fails_the_step(
    dstack: DSTACK, repo: Path, home: Path, api: PrefectAPI, tmp_path: Path
) -> None:
    """While the store cannot take the synced manifest (a file `synced` where its folder goes,
    in a store of this test's own), every sync fails: the step's log says so once, and the
    step, the store repaired, ends Done with its artifacts stored."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "synced").write_text("in the way\n")
    env = {**FAST, "DSTACK_STORE": str(store)}
    run = start(dstack, repo, env)

    def noted() -> str:
        res = dstack("logs", run, cwd=repo, env=env)
        return res.text if res.text.count("syncing the mount artifacts of ckpt") else ""

    try:
        wait_until(noted, 60)
        (store / "synced").unlink()
    finally:
        touch(home, run, "go")
        touch(home, run, "end")
    status = finished(api, run)
    logs = " ".join(dstack("logs", run, cwd=repo, env=env).text.split())

    assert "done" == status
    assert 1 == logs.count("syncing the mount artifacts of ckpt")
    assert "the step goes on" in logs
    assert ["ck/1.txt", "ck/2.txt", "out/p.txt"] == files(dstack, repo, run, env)


@pytest.mark.service("docker")
def test_a_containerised_steps_mount_folders_are_synced_while_it_runs(
    dstack: DSTACK, repo: Path, home: Path, api: PrefectAPI, runtime_image: str
) -> None:
    """With --docker the working folder and absolute artifact folders are host folders
    mounted in the container: the same sync lists what the step wrote in both while it runs."""
    env = {**FAST, "DSTACK_RUNTIME_IMAGE": runtime_image}
    res = dstack("run", "ckpt-docker", "--docker", "-d", "--rerun", cwd=repo, env=env)
    assert res.code == 0, res.text
    m = re.search(r"Run (\S+) submitted", res.out)
    assert m, res.out
    run = m.group(1)
    try:
        listed = wait_until(lambda: len(files(dstack, repo, run)) == 2 and files(dstack, repo, run), 120)
    finally:
        touch(home, run, "end", "ckpt-docker")

    assert ["/ckabs/a.txt", "ck/1.txt"] == listed
    assert "done" == finished(api, run)
