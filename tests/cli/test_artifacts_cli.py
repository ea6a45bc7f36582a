"""ls, cp, tags, push, pull, config and prune end to end: real CLI, Prefect server, git repo, S3 (moto).

The module shares one dstack home (its own local store) and a few runs, made once by module
fixtures, because a run takes seconds; each test then checks one behaviour on them.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dstack_prefect.engine import PrefectAPI
from tests.conftest import Result, Server, git_init, write_tree
from tests.storage.conftest import BUCKET, boto_client, moto_server  # noqa: F401 - the S3 service fixture

pytestmark = pytest.mark.service("prefect")

COMPAT = Path(__file__).resolve().parents[2].parent / "shared" / "compat" / "dstack-examples"
HELLO_TXT = """
workflows:
  - name: hello-txt
    help: "This workflow prints 'Hello, world!' to `output/hello.txt` and saves it as an artifact"
    provider: bash
    commands:
      - echo "Hello world" > output/hello.txt
    artifacts:
      - path: ./output

  - name: hello-txt-verbatim
    provider: bash
    commands:
      - echo "Hello world" > output/hello.txt
    artifacts:
      - path: ./output

  - name: stamp
    provider: bash
    commands:
      - mkdir -p stamp pip-cache
      - date +%s%N > stamp/now.txt
      - date +%s%N > pip-cache/seen.txt
    artifacts: [stamp]
    cache: [pip-cache]

  - name: show-hello
    provider: bash
    deps:
      - workflow: hello-txt
    commands:
      - cat output/hello.txt
"""
"""hello-txt of 2023-05-12_artifacts_998e42a.yaml (the workflow the deps example names), a copy
of it, a step writing content no other run has (for prune), and a consumer of hello-txt whose
name sorts after it (a run of it has two steps, the target last)."""

SLOW = """
workflows:
  - name: slow
    provider: bash
    commands:
      - mkdir -p out && echo x > out/x.txt
      - sleep 120
    artifacts: [out]
"""

DSTACK = Callable[..., Result]


def _deps_example() -> str:
    """The tag and workflow deps example of 2023-05-12 (cat-txt, cat-txt-2, cat-txt-3)."""
    path = COMPAT / "2023-05-12_deps_2f2d6c9.yaml"
    if not path.exists():
        pytest.skip(f"the compat examples are not here: {path}")
    return path.read_text()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's dstack home: its own local store and config."""
    return tmp_path_factory.mktemp("artifacts-home")


@pytest.fixture(scope="module")
def dstack(prefect_server: Server, home: Path) -> DSTACK:
    """Run `dstack ARGS...` in ``cwd`` with this module's home (or ``home=``), plus ``env`` extras."""

    def run(*args: str, cwd: Path, home_dir: Path | None = None, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "dstack_prefect", *args],
            cwd=cwd,
            env={**prefect_server.env(home_dir or home), **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repo with the deps example as .dstack/workflows.yaml, hello-txt and a local folder."""
    root = tmp_path_factory.mktemp("repo")
    write_tree(
        root,
        {
            ".dstack/workflows.yaml": _deps_example(),
            ".dstack/workflows/hello.yaml": HELLO_TXT,
            "data/rows.csv": "a,b\n1,2\n",
            "data/sub/more.csv": "c\n3\n",
        },
    )
    git_init(root)
    return root


def run_workflow(dstack: DSTACK, repo: Path, workflow: str, *args: str) -> str:
    """`dstack run WORKFLOW ARGS...` to the end; returns the run name."""
    res = dstack("run", workflow, *args, cwd=repo)
    assert res.code == 0, res.text
    m = re.search(rf"^(\S+)\s+{re.escape(workflow)}\s", res.out, re.MULTILINE)
    assert m, res.out
    return m.group(1)


def start_slow(dstack: DSTACK, tmp_path: Path) -> tuple[Path, str]:
    """A repo with SLOW and a detached run of it (still going); returns both."""
    other = tmp_path / "slow-repo"
    write_tree(other, {".dstack/workflows.yaml": SLOW})
    git_init(other)
    started = dstack("run", "slow", "-d", cwd=other)
    assert started.code == 0, started.text
    found = re.search(r"Run (\S+) submitted", started.out)
    assert found, started.out
    return other, found.group(1)


@pytest.fixture(scope="module")
def hello_run(dstack: DSTACK, repo: Path) -> str:
    return run_workflow(dstack, repo, "hello-txt")


@pytest.fixture(scope="module")
def txt_file(dstack: DSTACK, repo: Path, hello_run: str) -> str:
    """hello_run tagged txt-file, as the deps example asks."""
    res = dstack("tags", "add", "txt-file", hello_run, "-y", cwd=repo)
    assert res.code == 0, res.text
    return "txt-file"


class TestLs:
    def test_ls_lists_the_artifact_folder_and_its_file(
        self, dstack: DSTACK, repo: Path, hello_run: str
    ) -> None:
        """`ls RUN` shows the artifact with a trailing /, the file and its size."""
        res = dstack("ls", hello_run, cwd=repo)

        assert res.code == 0, res.text
        assert re.search(r"ARTIFACT\s+FILE\s+SIZE", res.out)
        assert re.search(r"output/\s+hello\.txt\s+12 bytes", res.out)

    def test_ls_json_gives_sizes_in_bytes(self, dstack: DSTACK, repo: Path, hello_run: str) -> None:
        """`ls RUN --json` lists artifact, file, size, whether the artifact is a folder (the
        table's trailing /) and whether the file is from a sync of a running step, for machines."""
        res = dstack("ls", hello_run, "--json", cwd=repo)

        assert [
            {"artifact": "output", "file": "hello.txt", "size": 12, "folder": True, "synced": False}
        ] == res.json()

    def test_ls_of_a_prefix_with_no_files_is_an_error(
        self, dstack: DSTACK, repo: Path, hello_run: str
    ) -> None:
        """`ls RUN PREFIX` where no file is under PREFIX fails, naming both, with the ls to run."""
        res = dstack("ls", hello_run, "nosuchprefix", cwd=repo)

        assert res.code == 1
        assert f"no artifact file under 'nosuchprefix' in {hello_run}" in res.err
        assert f"dstack ls {hello_run}" in res.err

    def test_ls_of_an_unknown_run_says_how_to_find_runs(self, dstack: DSTACK, repo: Path) -> None:
        """`ls` of a run without artifacts fails with a hint, not a traceback."""
        res = dstack("ls", "no-such-run-1", cwd=repo)

        assert res.code == 1
        assert "no-such-run-1" in res.err and "dstack ps -a" in res.err
        assert "Traceback" not in res.err

    def test_ls_cp_push_of_a_run_that_stored_nothing_say_why(self, dstack: DSTACK, tmp_path: Path) -> None:
        """`ls`, `cp` and `push` of a run that exists but stored nothing say it is still going,
        or was aborted, and when a step stores its artifacts; not "check the run name"."""
        other, name = start_slow(dstack, tmp_path)
        remote = {"DSTACK_REMOTE_STORE": str(tmp_path / "remote")}

        def reads() -> list[Result]:
            return [
                dstack("ls", name, cwd=other),
                dstack("cp", name, "out", str(tmp_path / "copy"), cwd=other),
                dstack("push", name, cwd=other, env=remote),
            ]

        going = reads()
        stopped = dstack("stop", name, "-x", "-y", cwd=other)
        aborted = reads()

        assert stopped.code == 0, stopped.text
        for res in going:
            assert res.code == 1
            assert re.search(
                rf"^error: run '{name}' is (submitted|pending|downloading|running) and has stored no "
                "artifacts yet",
                res.err,
            ), res.err
            assert "hint: a step stores its artifacts when it is done or gracefully stopped" in res.err
        for res in aborted:
            assert res.code == 1
            assert res.err.startswith(f"error: run '{name}' was aborted before any step stored its artifacts")
            assert "not when it fails or is aborted: run `dstack run slow` again" in res.err
        assert "dstack ps -a" not in "".join(r.err for r in going + aborted)

    def test_ls_of_a_failed_provider_run_says_to_run_it_again(self, dstack: DSTACK, repo: Path) -> None:
        """A failed `dstack run bash -c CMD` stored nothing: the hint does not offer `dstack run
        bash` (without its command, which is not known here) as the way to run it again."""
        failed = dstack("run", "--name", "provider-fails", "bash", "-c", "exit 3", cwd=repo)

        res = dstack("ls", "provider-fails", cwd=repo)

        assert failed.code == 1, failed.text
        assert res.code == 1
        assert res.err.rstrip().endswith("not when it fails or is aborted: run it again"), res.err


def test_a_declared_artifact_folder_exists_when_the_step_starts(dstack: DSTACK, repo: Path) -> None:
    """hello-txt verbatim writes output/hello.txt without creating output/ first."""
    run_workflow(dstack, repo, "hello-txt-verbatim")


def test_rm_removes_the_runs_task_results(dstack: DSTACK, repo: Path, home: Path) -> None:
    """Each step's Prefect task result (its manifest as JSON, under the store's results/) goes with
    its run: they stayed after `dstack rm`, one folder per run, forever."""
    name = run_workflow(dstack, repo, "hello-txt", "--rerun")
    row = next(r for r in dstack("ps", "-a", "--json", cwd=repo).json() if r["name"] == name)
    results = home / "store" / "results" / row["flow_run_id"]
    written = sorted(p.name for p in results.iterdir())

    removed = dstack("rm", name, "-y", cwd=repo)

    assert written == ["hello-txt.json"]
    assert removed.code == 0, removed.text
    assert not results.exists()


def test_rm_removes_what_is_left_of_a_run_deleted_in_prefect(
    dstack: DSTACK, repo: Path, home: Path, prefect_server: Server
) -> None:
    """A run deleted in the Prefect UI or API leaves its folder and artifacts in this home: `rm`
    removes them (asking first), as it removes any run; they stayed, with no command to remove them."""
    name = run_workflow(dstack, repo, "hello-txt", "--rerun")
    row = next(r for r in dstack("ps", "-a", "--json", cwd=repo).json() if r["name"] == name)
    with PrefectAPI(prefect_server.url) as api:
        api.delete_flow_run(row["flow_run_id"])

    asked = dstack("rm", name, cwd=repo)
    removed = dstack("rm", name, "-y", cwd=repo)
    again = dstack("rm", name, "-y", cwd=repo)

    assert asked.code == 1 and f"dstack rm {name} -y" in asked.err
    assert removed.code == 0, removed.text
    assert f"Removed {name} (its artifacts; `dstack prune artifacts` frees the files)\n" == removed.out
    assert not (home / "runs" / name).exists()
    assert dstack("ls", name, cwd=repo).code == 1
    assert again.code == 1 and f"no run named '{name}'" in again.err


FAILS_AFTER_PREP = """
workflows:
  - name: made
    provider: bash
    commands: [mkdir -p out, echo made > out/made.txt]
    artifacts: [out]
  - name: broken
    provider: bash
    deps: [made]
    commands: [exit 3]
"""


class TestCp:
    def test_cp_to_a_dash_writes_the_file_to_stdout(self, dstack: DSTACK, repo: Path, hello_run: str) -> None:
        """`dstack cp RUN FILE - | jq .`: TARGET - is stdout, holding the file and nothing else;
        a folder is refused, naming `ls -r`."""
        res = dstack("cp", hello_run, "output/hello.txt", "-", cwd=repo)
        folder = dstack("cp", hello_run, "output", "-", cwd=repo)

        assert res.code == 0, res.text
        assert "Hello world\n" == res.out
        assert not (repo / "-").exists()
        assert folder.code == 1
        assert "error: 'output' is a folder: - (stdout) takes one file" in folder.err
        assert f"dstack ls {hello_run} output -r" in folder.err

    def test_cp_copies_an_artifact_file(
        self, dstack: DSTACK, repo: Path, hello_run: str, tmp_path: Path
    ) -> None:
        """`cp RUN output/hello.txt TARGET` writes the file and says so."""
        res = dstack("cp", hello_run, "output/hello.txt", str(tmp_path / "copy.txt"), cwd=repo)

        assert res.code == 0, res.text
        assert "Artifact files copied" in res.out
        assert "Hello world\n" == (tmp_path / "copy.txt").read_text()

    def test_cp_into_a_folder_keeps_the_file_name(
        self, dstack: DSTACK, repo: Path, hello_run: str, tmp_path: Path
    ) -> None:
        """A target ending in / is a folder, created if needed, and the file keeps its name."""
        res = dstack("cp", hello_run, "output/hello.txt", f"{tmp_path}/new/", cwd=repo)

        assert res.code == 0, res.text
        assert "Hello world\n" == (tmp_path / "new" / "hello.txt").read_text()

    def test_cp_never_overwrites_another_file_without_force(
        self, dstack: DSTACK, repo: Path, hello_run: str, tmp_path: Path
    ) -> None:
        """An existing file with other content stays, and the error names --force."""
        (tmp_path / "hello.txt").write_text("mine\n")

        res = dstack("cp", hello_run, "output/hello.txt", str(tmp_path / "hello.txt"), cwd=repo)

        assert res.code == 1
        assert "--force" in res.err
        assert "mine\n" == (tmp_path / "hello.txt").read_text()

    def test_cp_of_an_unknown_path_says_so_and_makes_no_folder(
        self, dstack: DSTACK, repo: Path, hello_run: str, tmp_path: Path
    ) -> None:
        """`cp RUN nope DIR/` fails with the error on the first line of stderr (no empty
        progress bar before it), names the ls to run, and leaves no DIR behind."""
        res = dstack("cp", hello_run, "nope", f"{tmp_path}/new/", cwd=repo)

        assert res.code == 1
        assert res.err.startswith("error: no artifact file or folder 'nope'"), res.err
        assert f"dstack ls {hello_run} -r" in res.err
        assert not (tmp_path / "new").exists()

    def test_cp_force_overwrites(self, dstack: DSTACK, repo: Path, hello_run: str, tmp_path: Path) -> None:
        """--force replaces an existing file with the artifact's content."""
        (tmp_path / "hello.txt").write_text("mine\n")

        res = dstack("cp", hello_run, "output/hello.txt", str(tmp_path / "hello.txt"), "--force", cwd=repo)

        assert res.code == 0, res.text
        assert "Hello world\n" == (tmp_path / "hello.txt").read_text()


class TestTags:
    def test_tags_lists_the_tag_with_its_run(
        self, dstack: DSTACK, repo: Path, hello_run: str, txt_file: str
    ) -> None:
        """`tags` lists TAG, CREATED, RUN and WORKFLOW; --json the same for machines."""
        table = dstack("tags", cwd=repo)
        rows = dstack("tags", "--json", cwd=repo).json()

        assert re.search(r"TAG\s+CREATED\s+RUN\s+WORKFLOW", table.out)
        assert re.search(rf"txt-file\s+.+\s+{hello_run}\s+hello-txt", table.out)
        assert {"run": hello_run, "workflow": "hello-txt"} == {
            k: v
            for row in rows
            if row["tag"] == "txt-file"
            for k, v in row.items()
            if k in ("run", "workflow")
        }

    def test_ps_shows_the_tag(self, dstack: DSTACK, repo: Path, hello_run: str, txt_file: str) -> None:
        """A tagged run carries the tag in `dstack ps`'s TAG column."""
        rows = dstack("ps", "-a", "--json", cwd=repo).json()

        assert "txt-file" == next(r["tag"] for r in rows if r["name"] == hello_run)

    def test_cat_txt_reads_the_file_through_the_tag(self, dstack: DSTACK, repo: Path, txt_file: str) -> None:
        """cat-txt (`deps: [{tag: txt-file}]`) prints the tagged run's output/hello.txt."""
        res = dstack("run", "cat-txt", cwd=repo)

        assert res.code == 0, res.text
        assert "Hello world" in res.out

    def test_a_missing_tag_dep_is_located_and_stops_the_run_before_it_starts(
        self, dstack: DSTACK, repo: Path, tmp_path: Path
    ) -> None:
        """cat-txt in a home without :txt-file: plan and run name the workflow's file:line and the
        tag, say how to make it, and no run starts."""
        home = tmp_path / "no-tags-home"
        home.mkdir()

        planned = dstack("plan", "cat-txt", cwd=repo, home_dir=home)
        ran = dstack("run", "cat-txt", cwd=repo, home_dir=home)

        expected = "error: .dstack/workflows.yaml:2: workflow 'cat-txt' depends on the tag 'txt-file', not in"
        for res in (planned, ran):
            assert res.code == 1
            assert expected in res.err, res.err
            assert "dstack tags add txt-file RUN" in res.err and "dstack pull :txt-file" in res.err
        assert "RUN" not in ran.out

    def test_cat_txt_2_reads_the_file_of_the_last_hello_txt(
        self, dstack: DSTACK, repo: Path, hello_run: str
    ) -> None:
        """cat-txt-2 (`deps: [{workflow: hello-txt}]`) prints the last hello-txt run's file."""
        res = dstack("run", "cat-txt-2", cwd=repo)

        assert res.code == 0, res.text
        assert "Hello world" in res.out

    def test_a_run_carries_one_tag(self, dstack: DSTACK, repo: Path, hello_run: str, txt_file: str) -> None:
        """Tagging a run that already has another tag fails and names that tag."""
        res = dstack("tags", "add", "second-name", hello_run, "-y", cwd=repo)

        assert res.code == 1
        assert f"the run '{hello_run}' refers to another tag: 'txt-file'" in res.err

    def test_an_existing_tag_is_not_moved_without_a_terminal_or_y(
        self, dstack: DSTACK, repo: Path, hello_run: str, txt_file: str
    ) -> None:
        """`tags add` of an existing tag to another run with no terminal to ask on fails,
        naming the tag's run and -y, and leaves the tag as it was."""
        other = run_workflow(dstack, repo, "hello-txt", "--rerun")

        res = dstack("tags", "add", "txt-file", other, cwd=repo)

        assert res.code == 1
        assert "error: not confirmed, no terminal to ask on: The tag 'txt-file' already exists" in res.err
        assert f"hint: pass -y to confirm: dstack tags add txt-file {other} -y" in res.err
        assert hello_run == next(
            t["run"] for t in dstack("tags", "--json", cwd=repo).json() if t["tag"] == "txt-file"
        )

    def test_tagging_the_same_run_again_asks_nothing(
        self, dstack: DSTACK, repo: Path, hello_run: str, txt_file: str
    ) -> None:
        """The tag already names this run: nothing moves, so there is nothing to confirm."""
        res = dstack("tags", "add", "txt-file", hello_run, cwd=repo)

        assert res.code == 0, res.text
        assert f"Tag txt-file added to the run {hello_run}" in res.out

    def test_a_failed_run_is_tagged_with_a_warning_naming_what_the_tag_holds(
        self, dstack: DSTACK, tmp_path: Path
    ) -> None:
        """Old dstack tagged any run; a run that failed is tagged too, and the warning says
        which steps' artifacts the tag holds: a dep on it gets only those."""
        other = tmp_path / "failing-repo"
        write_tree(other, {".dstack/workflows.yaml": FAILS_AFTER_PREP})
        git_init(other)
        failed = dstack("run", "broken", cwd=other)
        run = re.search(r"^(\S+)\s+broken\s", failed.out, re.MULTILINE)
        assert failed.code == 1 and run, failed.text

        res = dstack("tags", "add", "partial", run.group(1), "-y", cwd=other)

        assert res.code == 0, res.text
        assert (
            f"warning: the run {run.group(1)} ended failed, not done: the tag holds the artifacts of "
            "the steps that stored them (made), and a `tag: partial` dep gets only those"
        ) in " ".join(res.err.split())

    def test_a_tag_shows_the_workflow_that_was_run(self, dstack: DSTACK, repo: Path, hello_run: str) -> None:
        """A tagged run of show-hello (steps hello-txt, then show-hello) shows show-hello, not
        the step whose name sorts first."""
        run = run_workflow(dstack, repo, "show-hello")
        assert dstack("tags", "add", "shown", run, "-y", cwd=repo).code == 0

        rows = dstack("tags", "--json", cwd=repo).json()

        assert ("show-hello", run) == next((t["workflow"], t["run"]) for t in rows if t["tag"] == "shown")

    def test_tags_delete_clears_the_tag_column(self, dstack: DSTACK, repo: Path) -> None:
        """`tags delete` removes the tag from `tags` and from the run's TAG column."""
        run = run_workflow(dstack, repo, "hello-txt", "--rerun")  # a reused step stores nothing new
        assert dstack("tags", "add", "short-lived", run, "-y", cwd=repo).code == 0

        res = dstack("tags", "delete", "short-lived", "-y", cwd=repo)

        assert res.code == 0, res.text
        assert "short-lived" not in [t["tag"] for t in dstack("tags", "--json", cwd=repo).json()]
        assert "" == next(r["tag"] for r in dstack("ps", "-a", "--json", cwd=repo).json() if r["name"] == run)

    def test_rm_of_a_tagged_run_keeps_the_tag_readable(self, dstack: DSTACK, repo: Path) -> None:
        """After `rm RUN`, `ls :TAG` still lists the tagged files."""
        run = run_workflow(dstack, repo, "hello-txt", "--rerun")  # a reused step stores nothing new
        assert dstack("tags", "add", "kept", run, "-y", cwd=repo).code == 0
        assert dstack("rm", run, "-y", cwd=repo).code == 0

        res = dstack("ls", ":kept", cwd=repo)

        assert res.code == 0, res.text
        assert "hello.txt" in res.out
        assert dstack("ls", run, cwd=repo).code == 1

    @pytest.mark.parametrize(
        "name", ["two words", "a/b", "-dash", ":colon"], ids=["space", "slash", "dash-first", "colon-first"]
    )
    def test_a_tag_name_that_cannot_be_written_as_colon_tag_is_refused(
        self, dstack: DSTACK, repo: Path, hello_run: str, name: str
    ) -> None:
        """`tags add NAME -a data`, `tags add NAME RUN` and `run W --tag=NAME` refuse a name that
        cannot be written as :NAME (spaces, '/', a leading '-' or ':'), saying the rule, before
        anything is uploaded or run; no tag is made."""
        by_dirs = dstack("tags", "add", "-a", "data", "-y", "--", name, cwd=repo)
        by_run = dstack("tags", "add", "-y", "--", name, hello_run, cwd=repo)
        by_run_t = dstack("run", "hello-txt", f"--tag={name}", cwd=repo)  # `-t -dash` is -d -a -s -h

        for res in (by_dirs, by_run, by_run_t):
            assert res.code == 1, res.text
            assert f"error: tag name {name!r} is not valid: use letters, digits" in res.err
            assert "Traceback" not in res.err
        assert name not in [t["tag"] for t in dstack("tags", "--json", cwd=repo).json()]
        assert "RUN" not in by_run_t.out  # refused before a run was made

    def test_a_damaged_tag_file_is_named_and_can_be_deleted(
        self, dstack: DSTACK, repo: Path, home: Path
    ) -> None:
        """A tag file cut short (a full disk, a hand edit) makes `tags` and `ls :T` say which file
        is damaged and how to get rid of it, with no traceback; `tags delete T` removes it."""
        assert dstack("tags", "add", "cut-short", "-a", "data", "-y", cwd=repo).code == 0
        (home / "store" / "tags" / "cut-short.json").write_text('{"tag": "cut-sh')

        listed = dstack("tags", cwd=repo)
        read = dstack("ls", ":cut-short", cwd=repo)
        deleted = dstack("tags", "delete", "cut-short", "-y", cwd=repo)

        for res in (listed, read):
            assert res.code == 1
            assert "error: tags/cut-short.json in " in res.err and " is damaged (" in res.err
            assert "hint: delete it with `dstack tags delete cut-short -y`" in res.err
            assert "Traceback" not in res.err
        assert deleted.code == 0, deleted.text
        assert "cut-short" not in [t["tag"] for t in dstack("tags", "--json", cwd=repo).json()]

    def test_tags_add_says_which_entries_it_did_not_store(
        self, dstack: DSTACK, repo: Path, tmp_path: Path
    ) -> None:
        """`tags add T -a DIR` with a symlink to a folder and a dangling symlink in DIR names each
        one it did not store and why, as a run's log does (it said only 'Tag T added')."""
        folder = tmp_path / "with links"
        write_tree(folder, {"inner/f.txt": "f\n"})
        (folder / "inner-link").symlink_to("inner")
        (folder / "dangling").symlink_to(tmp_path / "nowhere")

        res = dstack("tags", "add", "with-links", "-a", str(folder), "-y", cwd=repo)

        said = " ".join(res.text.split())
        assert res.code == 0, res.text
        assert f"{folder.as_posix()}/inner-link is not saved: symlink to a folder" in said
        assert f"{folder.as_posix()}/dangling is not saved: dangling symlink" in said
        assert ["inner/f.txt"] == [
            r["file"] for r in dstack("ls", ":with-links", "-r", "--json", cwd=repo).json()
        ]

    def test_a_run_that_is_not_finished_is_not_tagged(self, dstack: DSTACK, tmp_path: Path) -> None:
        """`tags add T RUN` while RUN is still going is refused, saying so and what to do: the
        tag would keep only the steps stored so far, and miss the rest for good."""
        other, name = start_slow(dstack, tmp_path)

        res = dstack("tags", "add", "too-early", name, "-y", cwd=other)
        dstack("stop", name, "-x", "-y", cwd=other)

        assert res.code == 1
        assert f"error: the run '{name}' is " in res.err and ", not finished" in res.err
        assert "hint: tag it when it is done" in res.err
        assert "too-early" not in [t["tag"] for t in dstack("tags", "--json", cwd=other).json()]

    def test_tags_add_uploads_local_folders(self, dstack: DSTACK, repo: Path) -> None:
        """`tags add T -a data` stores the folder as tag T, listed by `ls :T -r`."""
        res = dstack("tags", "add", "local-data", "-a", "data", "-y", cwd=repo)

        rows = dstack("ls", ":local-data", "-r", "--json", cwd=repo).json()
        assert res.code == 0, res.text
        assert [("data", "rows.csv", 8), ("data", "sub/more.csv", 4)] == [
            (r["artifact"], r["file"], r["size"]) for r in rows
        ]

    def test_ls_shows_a_file_artifact_without_a_slash_and_an_empty_one(
        self, dstack: DSTACK, repo: Path, home: Path, tmp_path: Path
    ) -> None:
        """A file artifact is listed as itself, not as a folder 'single.txt/'; a declared
        artifact left empty is listed as (empty), not left out."""
        from dstack_prefect.storage import ArtifactStore

        write_tree(tmp_path, {"single.txt": "one\n"})
        m = ArtifactStore(home / "store").put_step("files-run-1", "s", "s", tmp_path, ["single.txt", "none"])

        res = dstack("ls", m.run, cwd=repo)

        assert res.code == 0, res.text
        assert re.search(r"^none/\s+\(empty\)", res.out, re.MULTILINE)
        assert re.search(r"^single\.txt\s+single\.txt\s+4 bytes", res.out, re.MULTILINE)

    def test_ls_prefix_filters_paths(self, dstack: DSTACK, repo: Path) -> None:
        """`ls :T -r data/sub` lists only the files under that prefix."""
        assert dstack("tags", "add", "prefixed", "-a", "data", "-y", cwd=repo).code == 0

        rows = dstack("ls", ":prefixed", "data/sub", "-r", "--json", cwd=repo).json()

        assert ["sub/more.csv"] == [r["file"] for r in rows]


class TestPushPull:
    @pytest.fixture(scope="class")
    def s3_env(self, moto_server: dict[str, Any]) -> dict[str, str]:  # noqa: F811 - the imported fixture
        """The AWS_* variables that point s3fs at moto, and a fresh remote store prefix."""
        return {
            "AWS_ENDPOINT_URL": moto_server["client_kwargs"]["endpoint_url"],
            "AWS_ACCESS_KEY_ID": moto_server["key"],
            "AWS_SECRET_ACCESS_KEY": moto_server["secret"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "DSTACK_REMOTE_STORE": f"s3://{BUCKET}/{uuid.uuid4().hex[:10]}",
        }

    @pytest.fixture(scope="class")
    def pulled_home(
        self,
        dstack: DSTACK,
        repo: Path,
        txt_file: str,
        s3_env: dict[str, str],
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Path:
        """A second dstack home into which :txt-file was pushed and pulled through S3."""
        push = dstack("push", ":txt-file", cwd=repo, env=s3_env)
        assert push.code == 0, push.text
        assert "Pushed :txt-file: 1 manifest(s), 1 blob(s)" in push.out
        other = tmp_path_factory.mktemp("other-home")
        pull = dstack("pull", ":txt-file", cwd=repo, home_dir=other, env=s3_env)
        assert pull.code == 0, pull.text
        assert "Pulled :txt-file: 1 manifest(s), 1 blob(s)" in pull.out
        return other

    def test_pull_makes_the_tag_readable_in_another_home(
        self, dstack: DSTACK, repo: Path, pulled_home: Path
    ) -> None:
        """After push and pull through S3, `ls :TAG` in the other home lists the file."""
        res = dstack("ls", ":txt-file", cwd=repo, home_dir=pulled_home)

        assert res.code == 0, res.text
        assert re.search(r"output/\s+hello\.txt\s+12 bytes", res.out)

    def test_a_pulled_run_is_indexed_for_reuse(self, repo: Path, hello_run: str, pulled_home: Path) -> None:
        """`pull` indexes the done steps it brings, so reuse finds them by key in a home that
        has runs of its own (the index named only local runs)."""
        from dstack_prefect.engine._artifacts import repo_identity
        from dstack_prefect.storage import ArtifactStore

        store = ArtifactStore(pulled_home / "store")
        key = store.get_manifest(hello_run, "hello-txt").extra["cache_key"]
        scope = ("reuse", repo_identity(repo), "hello-txt")

        assert (hello_run, "hello-txt") == store.read_pointer(scope, f"key-{key}")
        assert (hello_run, "hello-txt") == store.read_pointer(scope, "latest")

    def test_pushing_again_sends_nothing(
        self, dstack: DSTACK, repo: Path, pulled_home: Path, s3_env: dict[str, str]
    ) -> None:
        """A second push finds the manifest there unchanged and skips it with its blob, saying
        the blob was not checked (not that it is there)."""
        res = dstack("push", ":txt-file", cwd=repo, env=s3_env)

        assert res.code == 0, res.text
        assert (
            "0 manifest(s), 0 blob(s) (0 bytes), 0 blob(s) already there; 1 blob(s) not checked "
            "(their manifests are there unchanged; --force checks them)"
        ) in " ".join(res.out.split())

    def test_a_file_damaged_in_the_remote_store_is_repaired_by_the_push_the_hint_names(
        self,
        dstack: DSTACK,
        repo: Path,
        tmp_path: Path,
        s3_env: dict[str, str],
        moto_server: dict[str, Any],  # noqa: F811
    ) -> None:
        """A tag of `-a` folders whose file is corrupt in the remote store: `pull :TAG` fails and
        names the command that repairs it, `dstack push :TAG --force` (not pull, and not the
        internal run tag-TAG-<time>); a plain push does not call the file there; the named
        command sends it, and the pull then works."""
        mine, theirs = tmp_path / "mine", tmp_path / "theirs"
        write_tree(tmp_path / "up", {"rows.txt": "1\n2\n"})
        assert dstack("tags", "add", "up1", "-a", str(tmp_path / "up"), cwd=repo, home_dir=mine).code == 0
        assert dstack("push", ":up1", cwd=repo, home_dir=mine, env=s3_env).code == 0
        s3 = boto_client(moto_server)
        digest = hashlib.sha256(b"1\n2\n").hexdigest()
        prefix = s3_env["DSTACK_REMOTE_STORE"].removeprefix(f"s3://{BUCKET}/")
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/blobs/sha256/{digest[:2]}/{digest[2:]}", Body=b"1\n3\n")

        pulled = dstack("pull", ":up1", cwd=repo, home_dir=theirs, env=s3_env)
        plain = dstack("push", ":up1", cwd=repo, home_dir=mine, env=s3_env)
        forced = dstack("push", ":up1", "--force", cwd=repo, home_dir=mine, env=s3_env)
        again = dstack("pull", ":up1", cwd=repo, home_dir=theirs, env=s3_env)

        said = " ".join(pulled.err.split())
        assert pulled.code == 1
        assert "of tag ':up1' is corrupt in" in said
        assert "hint: put a good copy there with `dstack push :up1 --force` from a machine whose" in said
        assert "tag-up1-" not in said
        assert "0 blob(s) already there; 1 blob(s) not checked" in " ".join(plain.out.split())
        assert forced.code == 0 and "1 blob(s) (4 bytes)" in forced.out, forced.text
        assert again.code == 0, again.text

    def test_cp_from_a_pulled_tag_keeps_an_existing_file(
        self, dstack: DSTACK, repo: Path, pulled_home: Path, tmp_path: Path
    ) -> None:
        """`cp` from the pulled tag refuses to replace a same-named file with other content."""
        (tmp_path / "hello.txt").write_text("mine\n")

        res = dstack("cp", ":txt-file", "output/hello.txt", str(tmp_path), cwd=repo, home_dir=pulled_home)

        assert res.code == 1
        assert "--force" in res.err
        assert "mine\n" == (tmp_path / "hello.txt").read_text()

    @pytest.fixture
    def run_pulled_home(
        self,
        dstack: DSTACK,
        repo: Path,
        hello_run: str,
        s3_env: dict[str, str],
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Path:
        """A fresh dstack home into which hello_run was pushed and pulled (by its run name)."""
        assert dstack("push", hello_run, cwd=repo, env=s3_env).code == 0
        other = tmp_path_factory.mktemp("run-pulled-home")
        assert dstack("pull", hello_run, cwd=repo, home_dir=other, env=s3_env).code == 0
        return other

    def test_pull_refuses_a_local_run_of_the_same_name_with_other_content(
        self, dstack: DSTACK, repo: Path, hello_run: str, s3_env: dict[str, str], run_pulled_home: Path
    ) -> None:
        """`pull RUN` where the local store holds another run of that name (names collide between
        machines) fails naming the run and step, changes nothing, and replaces it with --force."""
        other = run_pulled_home
        local = other / "store" / "manifests" / hello_run / "hello-txt.json"
        mine = {**json.loads(local.read_text()), "created_at": "2020-01-01T00:00:00.000000+00:00"}
        local.write_text(json.dumps(mine))

        res = dstack("pull", hello_run, cwd=repo, home_dir=other, env=s3_env)
        kept = json.loads(local.read_text())
        forced = dstack("pull", hello_run, "--force", cwd=repo, home_dir=other, env=s3_env)

        assert res.code == 1
        assert f"{hello_run}/hello-txt" in res.err and "--force" in res.err
        assert mine == kept
        assert forced.code == 0, forced.text
        assert "2020-01-01T00:00:00.000000+00:00" != json.loads(local.read_text())["created_at"]

    def test_rm_removes_a_pulled_run_that_the_server_never_had(
        self, dstack: DSTACK, repo: Path, hello_run: str, run_pulled_home: Path
    ) -> None:
        """A run pulled into another home is in its store but not on its Prefect server: `rm`
        still removes it (asking first; -y), so `prune artifacts` can free its files; a name in
        neither place is still "no run named"."""
        other = run_pulled_home

        asked = dstack("rm", hello_run, cwd=repo, home_dir=other)
        kept = dstack("ls", hello_run, cwd=repo, home_dir=other)
        removed = dstack("rm", hello_run, "-y", cwd=repo, home_dir=other)
        gone = dstack("ls", hello_run, cwd=repo, home_dir=other)
        unknown = dstack("rm", "never-was-1", "-y", cwd=repo, home_dir=other)

        assert asked.code == 1 and f"dstack rm {hello_run} -y" in asked.err
        assert kept.code == 0 and "hello.txt" in kept.out
        assert removed.code == 0, removed.text
        assert f"Removed {hello_run}" in removed.out
        assert gone.code == 1
        assert unknown.code == 1 and "no run named 'never-was-1'" in unknown.err

    def test_pull_refuses_a_local_tag_that_names_another_run(
        self, dstack: DSTACK, repo: Path, hello_run: str, pulled_home: Path, s3_env: dict[str, str]
    ) -> None:
        """`pull :TAG` where the local tag of that name names another run fails naming both
        runs; --force replaces it."""
        local = pulled_home / "store" / "tags" / "txt-file.json"
        local.write_text(json.dumps({**json.loads(local.read_text()), "run": "someone-else-1"}))

        res = dstack("pull", ":txt-file", cwd=repo, home_dir=pulled_home, env=s3_env)
        forced = dstack("pull", ":txt-file", "--force", cwd=repo, home_dir=pulled_home, env=s3_env)

        assert res.code == 1
        assert "tag 'txt-file'" in res.err and "someone-else-1" in res.err and hello_run in res.err
        assert "--force" in res.err
        assert forced.code == 0, forced.text
        assert hello_run == json.loads(local.read_text())["run"]

    def test_pull_of_what_the_remote_store_lacks_says_to_push_it(
        self, dstack: DSTACK, repo: Path, s3_env: dict[str, str]
    ) -> None:
        """`pull RUN|:TAG` the remote store lacks names the remote store and says to push it
        from where it was made (not `dstack ps -a` / `dstack tags`, which read this machine)."""
        run = dstack("pull", "no-such-run-1", cwd=repo, env=s3_env)
        tag = dstack("pull", ":no-such-tag", cwd=repo, env=s3_env)

        for res, ref in ((run, "no-such-run-1"), (tag, ":no-such-tag")):
            assert res.code == 1
            assert s3_env["DSTACK_REMOTE_STORE"] in res.err
            assert f"dstack push {ref}" in res.err
            assert "dstack ps -a" not in res.err and "dstack tags`" not in res.err

    def test_prune_remote_aborts_what_a_killed_push_left(
        self,
        dstack: DSTACK,
        repo: Path,
        s3_env: dict[str, str],
        moto_server: dict[str, Any],  # noqa: F811
    ) -> None:
        """A push killed in a multipart upload leaves an incomplete upload in the remote store:
        `prune artifacts --remote --dry-run` counts it, `--remote -y` aborts it, and both say so."""
        s3 = boto_client(moto_server)
        prefix = s3_env["DSTACK_REMOTE_STORE"].removeprefix(f"s3://{BUCKET}/")
        key = f"{prefix}/blobs/sha256/ab/{'c' * 62}"
        s3.create_multipart_upload(Bucket=BUCKET, Key=key)  # no part yet: stale since it began

        dry = dstack("prune", "artifacts", "--remote", "--dry-run", cwd=repo, env=s3_env)
        res = dstack("prune", "artifacts", "--remote", "-y", cwd=repo, env=s3_env)

        left = [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]
        assert dry.code == 0 and res.code == 0, dry.text + res.text
        assert "Would also remove 1 partial upload(s) that killed uploads left" in " ".join(dry.out.split())
        assert s3_env["DSTACK_REMOTE_STORE"] in " ".join(res.out.split())
        assert "Also removed 1 partial upload(s) that killed uploads left" in " ".join(res.out.split())
        assert key not in left

    def test_push_without_a_remote_store_says_how_to_set_one(
        self, dstack: DSTACK, repo: Path, txt_file: str
    ) -> None:
        """`push` with no remote store configured fails with the config command to run."""
        res = dstack("push", ":txt-file", cwd=repo)

        assert res.code == 1
        assert "dstack config --remote-store s3://bucket/prefix" in res.err


class TestConfig:
    def test_config_writes_and_shows_settings(self, dstack: DSTACK, repo: Path, tmp_path: Path) -> None:
        """`config --remote-store URL --executor docker` saves them in config.json and shows them."""
        res = dstack(
            "config",
            "--remote-store",
            "s3://b/p",
            "--executor",
            "docker",
            "--json",
            cwd=repo,
            home_dir=tmp_path,
        )

        assert res.code == 0, res.text
        assert {"remote_store": "s3://b/p", "executor": "docker"} == json.loads(
            (tmp_path / "config.json").read_text()
        )
        assert {
            "home": str(tmp_path),
            "store": str(tmp_path / "store"),
            "remote_store": "s3://b/p",
            "executor": "docker",
            "from": {
                "home": "DSTACK_HOME",
                "store": "default",
                "remote_store": "config.json",
                "executor": "config.json",
            },
        } == res.json()

    def test_config_saves_a_store_folder_as_an_absolute_path(
        self, dstack: DSTACK, repo: Path, tmp_path: Path
    ) -> None:
        """`config --store rel/store` (or ~/store) saves the folder it names from here: saved as
        typed, each directory a command ran in had a store of its own."""
        home = tmp_path / "home"
        res = dstack("config", "--store", "rel/store", cwd=repo, home_dir=home)
        tilde = dstack(
            "config", "--remote-store", "~/remote", cwd=repo, home_dir=home, env={"HOME": str(tmp_path)}
        )

        assert (0, 0) == (res.code, tilde.code), res.text + tilde.text
        assert {"store": str(repo / "rel" / "store"), "remote_store": str(tmp_path / "remote")} == json.loads(
            (home / "config.json").read_text()
        )

    def test_config_unset_removes_a_setting(self, dstack: DSTACK, repo: Path, tmp_path: Path) -> None:
        """`config --unset remote-store` drops it, and the table shows where each value comes from."""
        dstack("config", "--remote-store", "s3://b/p", cwd=repo, home_dir=tmp_path)

        res = dstack("config", "--unset", "remote-store", cwd=repo, home_dir=tmp_path)

        assert res.code == 0, res.text
        assert {} == json.loads((tmp_path / "config.json").read_text())
        assert re.search(r"executor\s+local\s+default", res.out)

    def test_config_refuses_a_store_url_that_names_no_store(
        self, dstack: DSTACK, repo: Path, tmp_path: Path
    ) -> None:
        """`config --remote-store foo://x` (and `s3://` without a bucket) fails at once, saying
        why, and saves nothing: before, it was saved and every push ended in a traceback."""
        unknown = dstack("config", "--remote-store", "foo://x", cwd=repo, home_dir=tmp_path)
        no_bucket = dstack("config", "--store", "s3://", cwd=repo, home_dir=tmp_path)

        assert (1, 1) == (unknown.code, no_bucket.code)
        assert "error: store URL 'foo://x' cannot be opened: Protocol not known: foo" in unknown.err
        assert "error: store URL 's3://' names no bucket" in no_bucket.err
        assert "Traceback" not in unknown.err + no_bucket.err
        assert not (tmp_path / "config.json").exists()

    def test_config_refuses_a_bucket_the_endpoint_says_does_not_exist(
        self,
        dstack: DSTACK,
        repo: Path,
        tmp_path: Path,
        moto_server: dict[str, Any],  # noqa: F811
    ) -> None:
        """`config --store s3://no-such-bucket/p` fails in one line naming the option and the
        bucket, and saves nothing (every run computed, then failed at upload); a bucket that
        exists is saved; a store that cannot be reached now is saved with a warning saying so."""
        env = {
            "AWS_ENDPOINT_URL": moto_server["client_kwargs"]["endpoint_url"],
            "AWS_ACCESS_KEY_ID": moto_server["key"],
            "AWS_SECRET_ACCESS_KEY": moto_server["secret"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        closed = {**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # the discard port: nothing listens

        missing = dstack("config", "--store", "s3://no-such-bucket/p", cwd=repo, home_dir=tmp_path, env=env)
        remote = dstack(
            "config", "--remote-store", "s3://no-such-bucket", cwd=repo, home_dir=tmp_path, env=env
        )
        nothing_saved = not (tmp_path / "config.json").exists()
        there = dstack("config", "--store", f"s3://{BUCKET}/p", cwd=repo, home_dir=tmp_path, env=env)
        away = dstack("config", "--remote-store", "s3://far/p", cwd=repo, home_dir=tmp_path, env=closed)

        assert (1, 1) == (missing.code, remote.code)
        assert missing.err.startswith(
            "error: --store 's3://no-such-bucket/p': the bucket 'no-such-bucket' does not exist\n"
        ), missing.err
        assert "hint: create the bucket, or name one that exists" in missing.err
        assert remote.err.startswith("error: --remote-store 's3://no-such-bucket': the bucket"), remote.err
        assert nothing_saved
        assert (0, "") == (there.code, there.err), there.text
        assert away.code == 0, away.text
        assert away.err.startswith("warning: --remote-store 's3://far/p' could not be checked now ("), (
            away.err
        )
        assert {"store": f"s3://{BUCKET}/p", "remote_store": "s3://far/p"} == json.loads(
            (tmp_path / "config.json").read_text()
        )

    def test_config_with_an_empty_value_unsets_it(self, dstack: DSTACK, repo: Path, tmp_path: Path) -> None:
        """`config --store ""` removes the setting, as an empty DSTACK_STORE counts as unset
        (it wrote "store": "" to config.json)."""
        dstack(
            "config",
            "--store",
            str(tmp_path / "s"),
            "--remote-store",
            "s3://b/p",
            cwd=repo,
            home_dir=tmp_path,
        )

        res = dstack("config", "--store", "", "--remote-store", "", cwd=repo, home_dir=tmp_path)

        assert res.code == 0, res.text
        assert {} == json.loads((tmp_path / "config.json").read_text())
        assert re.search(r"store\s+\S+/store\s+default", res.out)

    def test_config_rejects_an_unknown_key(self, dstack: DSTACK, repo: Path, tmp_path: Path) -> None:
        """`config --unset nope` fails and lists the settings there are."""
        res = dstack("config", "--unset", "nope", cwd=repo, home_dir=tmp_path)

        assert res.code == 1
        assert "unknown setting 'nope'" in res.err and "remote-store" in res.err


class TestPrune:
    @pytest.fixture(scope="class")
    def stamp_run(self, dstack: DSTACK, repo: Path) -> str:
        """A run of `stamp`: an artifact and a cache folder with content no other run has."""
        return run_workflow(dstack, repo, "stamp")

    def test_prune_cache_forgets_the_workflow_cache(
        self, dstack: DSTACK, repo: Path, home: Path, stamp_run: str
    ) -> None:
        """`prune cache stamp` in the repo removes the workflow's cache folder manifest."""
        res = dstack("prune", "cache", "stamp", cwd=repo)

        assert res.code == 0, res.text
        assert "Removed 1 cache folder(s) of stamp" in res.out
        assert [] == list((home / "store" / "cache").rglob("*.json"))

    def test_prune_cache_of_a_workflow_with_nothing_cached(self, dstack: DSTACK, repo: Path) -> None:
        """`prune cache W` for a workflow of the repo with no cache says so and succeeds."""
        res = dstack("prune", "cache", "hello-txt", cwd=repo)

        assert res.code == 0, res.text
        assert "Nothing cached for hello-txt" in res.out

    def test_prune_cache_of_an_unknown_workflow_is_an_error(self, dstack: DSTACK, repo: Path) -> None:
        """`prune cache W` for no workflow of the repo (and nothing cached) fails with the closest name."""
        res = dstack("prune", "cache", "stmp", cwd=repo)

        assert res.code == 1
        assert "no workflow 'stmp' in this repo" in res.err
        assert "did you mean 'stamp'?" in res.err

    def test_prune_artifacts_removes_blobs_of_removed_runs(
        self, dstack: DSTACK, repo: Path, home: Path, stamp_run: str, hello_run: str
    ) -> None:
        """After `rm RUN`, `prune artifacts -y` deletes its files' blobs and keeps everyone else's;
        --dry-run before it counts the same files as kept for being young, and -y says so."""
        manifest = json.loads((home / "store" / "manifests" / stamp_run / "stamp.json").read_text())
        gone = [f["sha256"] for f in manifest["files"]]
        kept = [
            f["sha256"]
            for f in json.loads((home / "store" / "manifests" / hello_run / "hello-txt.json").read_text())[
                "files"
            ]
        ]
        assert dstack("rm", stamp_run, "-y", cwd=repo).code == 0

        dry = dstack("prune", "artifacts", "--dry-run", cwd=repo)
        res = dstack("prune", "artifacts", "-y", cwd=repo)

        blob = home / "store" / "blobs" / "sha256"
        assert res.code == 0, res.text
        young = re.search(r"Would remove 0 unreferenced file\(s\), .*; kept (\d+) unreferenced", dry.out)
        removed = re.search(
            r"Removed (\d+) unreferenced file\(s\), .*; (\d+) of them younger than 10 minutes", res.out
        )
        assert young and removed, dry.out + res.out
        assert int(young.group(1)) >= 1
        assert young.group(1) == removed.group(1) == removed.group(2)
        assert [False, True] == [
            (blob / gone[0][:2] / gone[0][2:]).exists(),
            (blob / kept[0][:2] / kept[0][2:]).exists(),
        ]

    def test_prune_dry_run_keeps_young_blobs(self, dstack: DSTACK, repo: Path) -> None:
        """`prune artifacts --dry-run` removes nothing, counts no blob younger than 10 minutes,
        and says how many it kept for that."""
        res = dstack("prune", "artifacts", "--dry-run", cwd=repo)

        assert res.code == 0, res.text
        assert re.search(
            r"Would remove 0 unreferenced file\(s\), .*; kept \d+ unreferenced file\(s\)", res.out
        )
        assert "younger than 10 minutes" in res.out


class TestStoreFaults:
    def test_a_full_disk_leaves_no_partial_file_and_says_what_to_do(
        self, prefect_server: Server, repo: Path, tmp_path: Path
    ) -> None:
        """An upload that runs out of room (here a 64 KiB file-size limit, `ulimit -f`, which
        fails writes as a full disk does) fails with a one-line reason and a next step, makes no
        tag and leaves no partial file taking the room in the store."""
        home = tmp_path / "home"
        write_tree(tmp_path / "big", {"small.txt": "s\n"})
        (tmp_path / "big" / "large.bin").write_bytes(b"x" * (256 << 10))
        dstack = f"{sys.executable} -m dstack_prefect"
        script = f"trap '' XFSZ; ulimit -f 64; exec {dstack} tags add big -a {tmp_path / 'big'} -y"
        env = {**prefect_server.env(home), "PYTHONDONTWRITEBYTECODE": "1"}

        proc = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True)

        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
        assert "hint: a file is larger than that filesystem or `ulimit -f` allows" in proc.stderr
        assert [] == [p.name for p in (home / "store").rglob("*") if p.name.startswith(".tmp-")]
        assert not (home / "store" / "tags").exists()


class TestCorruptBlobRepair:
    def test_a_corrupt_blob_is_removed_and_a_rerun_stores_it_again(
        self, dstack: DSTACK, repo: Path, tmp_path: Path
    ) -> None:
        """In a home of its own: `cp` of a damaged file fails and removes the damaged blob; a
        consumer of the reused producer then fails saying the file is missing, with the same
        hint; that hint (`dstack run hello-txt --rerun hello-txt`) stores the blob again and
        the first run's file copies fine."""
        home = tmp_path / "home"

        def run(*args: str) -> Result:
            return dstack(*args, cwd=repo, home_dir=home)

        made = run("run", "hello-txt")
        assert made.code == 0, made.text
        producer = re.search(r"^(\S+)\s+hello-txt\s", made.out, re.MULTILINE)
        assert producer, made.out
        files = json.loads((home / "store" / "manifests" / producer.group(1) / "hello-txt.json").read_text())
        digest = files["files"][0]["sha256"]
        blob = home / "store" / "blobs" / "sha256" / digest[:2] / digest[2:]
        blob.write_bytes(b"J" + blob.read_bytes()[1:])
        hint = "dstack run hello-txt --rerun hello-txt"

        corrupt = run("cp", producer.group(1), "output/hello.txt", str(tmp_path / "a.txt"))
        removed = not blob.exists()
        consumer = run("run", "cat-txt-2")
        repaired = run("run", "hello-txt", "--rerun", "hello-txt")
        copied = run("cp", producer.group(1), "output/hello.txt", str(tmp_path / "b.txt"))

        assert corrupt.code == 1
        assert "corrupt" in corrupt.err and "removed from the store" in corrupt.err and hint in corrupt.err
        assert removed
        assert consumer.code != 0
        said = " ".join(consumer.text.split())  # the run's output wraps long lines
        assert "artifact file 'output/hello.txt' of run" in said and "missing from the store" in said
        assert hint in said
        assert "Traceback" not in said
        assert repaired.code == 0, repaired.text
        assert copied.code == 0, copied.text
        assert "Hello world\n" == (tmp_path / "b.txt").read_text()
