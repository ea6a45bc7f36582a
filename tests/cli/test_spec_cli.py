"""`dstack validate`, `dstack schema` and `dstack plan` through the real typer app."""

# ruff: noqa: E501 - golden messages are kept on one line so they can be compared by eye

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dstack_prefect.cli import app

GOOD = """\
workflows:
  - name: prep
    provider: bash
    commands: [python prep.py]
    ports: 1
  - name: train
    provider: bash
    commands:
      - python train.py ${{ run.args }}
    deps: [prep]
    resources:
      gpu: 1
"""
BAD = "workflows:\n  - name: a\n    provider: bsh\n    comands: [x]\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repo with a valid workflow file, as the current directory."""
    (tmp_path / ".dstack").mkdir()
    (tmp_path / ".dstack" / "workflows.yaml").write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


class TestValidate:
    def test_valid_repo(self, repo: Path) -> None:
        """A valid repo exits 0 with a count summary; legacy forms are warnings on stderr."""

        code, out, err = run("validate")

        assert (code, out.strip()) == (0, "OK: 2 workflows in 1 file, 1 warning")
        assert "legacy port count 1" in err

    def test_invalid_repo_lists_every_problem(self, repo: Path) -> None:
        """An invalid file exits 1 and prints each located problem with its snippet."""
        (repo / ".dstack" / "workflows").mkdir()
        (repo / ".dstack" / "workflows" / "bad.yaml").write_text(BAD)

        code, _, err = run("validate")

        assert code == 1
        assert (
            ".dstack/workflows/bad.yaml:3:15: workflows[0].provider: unknown provider 'bsh'; did you mean 'bash'?"
            in err
        )
        assert (
            ".dstack/workflows/bad.yaml:4:5: workflows[0]: unknown key 'comands'; did you mean 'commands'?"
            in err
        )
        assert "Traceback" not in err

    def test_warnings_print_brackets_as_written(self, repo: Path) -> None:
        """A warning quoting the file's text prints it as written, brackets and all (not as markup)."""
        (repo / ".dstack" / "workflows.yaml").write_text(
            GOOD.replace("deps: [prep]", 'deps: ["[b]me/repo/prep"]')
        )

        code, _, err = run("validate")

        assert code == 0
        assert "the repo prefix '[b]me/repo' is ignored" in err

    def test_json_valid(self, repo: Path) -> None:
        """--json reports counts, no errors and the located warnings."""

        code, out, _ = run("validate", "--json")

        payload = json.loads(out)
        assert code == 0
        assert {k: payload[k] for k in ("valid", "files", "workflows", "errors")} == {
            "valid": True,
            "files": 1,
            "workflows": 2,
            "errors": [],
        }
        assert payload["warnings"][0]["line"] == 5

    def test_json_invalid(self, repo: Path) -> None:
        """--json lists each error as {path, line, col, key, message} and exits 1."""
        (repo / ".dstack" / "workflows.yaml").write_text(BAD)

        code, out, _ = run("validate", "--json")

        assert code == 1
        assert json.loads(out) == {
            "valid": False,
            "files": 1,
            "workflows": 0,
            "errors": [
                {
                    "path": ".dstack/workflows.yaml",
                    "line": 3,
                    "col": 15,
                    "key": "workflows[0].provider",
                    "message": "unknown provider 'bsh'; did you mean 'bash'?",
                },
                {
                    "path": ".dstack/workflows.yaml",
                    "line": 4,
                    "col": 5,
                    "key": "workflows[0]",
                    "message": "unknown key 'comands'; did you mean 'commands'?",
                },
            ],
            "warnings": [],
        }

    def test_json_counts_the_workflows_that_loaded(self, repo: Path) -> None:
        """With errors in one file, --json still counts the workflows that are valid on their own."""
        (repo / ".dstack" / "workflows").mkdir()
        (repo / ".dstack" / "workflows" / "bad.yaml").write_text(BAD)

        code, out, _ = run("validate", "--json")

        assert (code, json.loads(out)["workflows"]) == (1, 2)

    def test_json_lists_an_unknown_dep_among_other_errors(self, repo: Path) -> None:
        """An unknown dep is an error in --json even when another file has errors too, and its
        workflow is not counted among those without problems."""
        (repo / ".dstack" / "workflows").mkdir()
        (repo / ".dstack" / "workflows" / "bad.yaml").write_text(BAD)
        (repo / ".dstack" / "workflows" / "c.yaml").write_text(
            "workflows:\n  - name: c\n    provider: bash\n    commands: [x]\n    deps: [trian]\n"
        )

        code, out, _ = run("validate", "--json")

        assert json.loads(out)["workflows"] == 2
        assert code == 1
        assert [(e["path"], e["line"], e["message"]) for e in json.loads(out)["errors"]] == [
            (".dstack/workflows/bad.yaml", 3, "unknown provider 'bsh'; did you mean 'bash'?"),
            (".dstack/workflows/bad.yaml", 4, "unknown key 'comands'; did you mean 'commands'?"),
            (".dstack/workflows/c.yaml", 5, "unknown workflow 'trian' in deps; did you mean 'train'?"),
        ]

    def test_unknown_dep_is_an_error_printed_once(self, repo: Path) -> None:
        """validate exits 1 on an unknown dep and prints it once, as an error, not a warning."""
        (repo / ".dstack" / "workflows.yaml").write_text(GOOD.replace("deps: [prep]", "deps: [perp]"))

        code, _, err = run("validate")

        assert (code, err.count("unknown workflow 'perp' in deps; did you mean 'prep'?")) == (1, 1)

    def test_home_is_not_a_repo(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """From ~/projects/p with no .dstack/, the dstack home ~/.dstack is not taken for a repo."""
        home = tmp_path.resolve()
        monkeypatch.setenv("HOME", str(home))
        (home / ".dstack" / "runs").mkdir(parents=True)
        (home / "projects" / "p").mkdir(parents=True)
        monkeypatch.chdir(home / "projects" / "p")

        code, _, err = run("validate")

        assert code == 1
        assert f"No .dstack/ folder in {home / 'projects' / 'p'} or any folder above it" in err
        assert "hint: cd into your repo" in err

    def test_no_repo(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Outside a repo, validate exits 1 with a hint."""
        monkeypatch.chdir(tmp_path)

        code, _, err = run("validate")

        assert code == 1
        assert "No .dstack/ folder" in err
        assert "hint: cd into your repo, or run `dstack init` there to create .dstack/workflows.yaml\n" in err

    def test_empty_dstack_folder_points_at_init(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A .dstack/ without workflow files (a dstack home, a fresh mkdir) says how to make one."""
        (tmp_path / ".dstack").mkdir()
        monkeypatch.chdir(tmp_path)

        code, _, err = run("validate")

        assert code == 1
        assert f"No workflow files in {tmp_path.resolve() / '.dstack'}" in err
        assert "hint: run `dstack init` to create .dstack/workflows.yaml with a first workflow\n" in err


class TestPlan:
    def test_repo_prefixed_deps_show_as_they_take_effect(self, repo: Path) -> None:
        """owner/repo/NAME is this repo's NAME (prefix ignored, as dstack 0.9 did), or skipped
        when there is none: the plan shows which, as the warnings say."""
        (repo / ".dstack" / "workflows.yaml").write_text(
            GOOD.replace("deps: [prep]", "deps: [me/repo/zz, me/repo/prep]")
        )

        code, out, _ = run("plan", "train")

        assert code == 0
        assert "deps: me/repo/zz (skipped), prep" in out

    def test_table(self, repo: Path) -> None:
        """The table lists steps in run order with resolved commands and resources."""

        code, out, _ = run("plan", "train", "--gpu", "2", "--epochs", "3")

        assert code == 0
        assert out.index("prep") < out.index("train.py")
        assert "python train.py --epochs 3" in out
        assert "gpu=2" in out

    def test_json(self, repo: Path) -> None:
        """--json prints the Plan the engine receives, wherever it appears among the args."""

        code, out, _ = run("plan", "train", "-e", "A=1", "--json", "x")

        plan = json.loads(out)
        assert code == 0
        assert [s["name"] for s in plan["steps"]] == ["prep", "train"]
        assert plan["steps"][1]["env"] == {"A": "1"}
        assert plan["run_args"] == ["x"]

    def test_args_reach_the_script_as_typed(self, repo: Path) -> None:
        """A single-dash word (`-lr`, which click split into flags) and everything after `--`
        (even `-e 5` and `--json`) are run args as typed; the `--` itself is not passed on."""

        code, out, _ = run("plan", "train", "--json", "-lr", "0.1", "--", "-e", "5", "--json")

        plan = json.loads(out)
        assert code == 0
        assert plan["run_args"] == ["-lr", "0.1", "-e", "5", "--json"]
        assert plan["steps"][1]["env"] == {}
        assert plan["steps"][1]["commands"] == ["python train.py -lr 0.1 -e 5 --json"]

    def test_runs_own_options_mean_what_they_mean_to_run(self, repo: Path) -> None:
        """`dstack plan` takes `dstack run`'s command line as is: -d is not a run arg (run
        detaches; the plan is the same), and --name is the run's name in ${{ run.name }}."""

        code, out, _ = run("plan", "train", "--json", "x", "-d", "--name", "lr-0.1")

        plan = json.loads(out)
        assert code == 0
        assert plan["run_args"] == ["x"]
        assert plan["run_name"] == "lr-0.1"

    def test_json_lists_the_warnings(self, repo: Path) -> None:
        """--json prints no warning lines, so it carries them, located, as validate --json does."""

        code, out, err = run("plan", "train", "--json")

        assert (code, err) == (0, "")
        assert json.loads(out)["warnings"] == [
            {
                "path": ".dstack/workflows.yaml",
                "line": 5,
                "col": 12,
                "key": "workflows[0].ports",
                "message": "legacy port count 1, list the ports instead, e.g. 'ports: [8000]'",
            }
        ]

    def test_provider_mode_outside_a_repo(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """`dstack plan bash -c CMD` works with no .dstack folder."""
        monkeypatch.chdir(tmp_path)

        code, out, _ = run("plan", "bash", "-c", "echo hi", "--json")

        assert code == 0
        assert json.loads(out)["steps"][0]["commands"] == ["echo hi"]

    def test_sizes_are_readable(self, repo: Path) -> None:
        """Memory is shown in GiB with at most one decimal: 16GB (15259 MiB) reads 14.9GiB."""

        code, out, _ = run("plan", "train", "--memory", "16GB")

        assert (code, "mem=14.9GiB" in out) == (0, True)

    def test_unknown_dep_is_printed_once(self, repo: Path) -> None:
        """A plan that needs an unknown dep exits 1 and prints the located error once."""
        (repo / ".dstack" / "workflows.yaml").write_text(GOOD.replace("deps: [prep]", "deps: [perp]"))

        code, _, err = run("plan", "train")

        assert (code, err.count("unknown workflow 'perp' in deps; did you mean 'prep'?")) == (1, 1)

    def test_json_lists_each_located_problem_of_broken_files(self, repo: Path) -> None:
        """`plan --json` over broken files exits 1 with the errors as `validate --json` lists them."""
        (repo / ".dstack" / "workflows.yaml").write_text(BAD)

        code, out, _ = run("plan", "a", "--json")

        payload = json.loads(out)
        assert code == 1
        assert payload["type"] == "SpecErrors"
        assert [(e["line"], e["col"], e["key"]) for e in payload["errors"]] == [
            (3, 15, "workflows[0].provider"),
            (4, 5, "workflows[0]"),
        ]

    def test_a_mistyped_option_is_not_dropped(self, repo: Path) -> None:
        """`--gpus 2` on a workflow without ${{ run.args }} exits 1 naming `--gpu`, not a plan
        without GPUs."""

        code, out, err = run("plan", "prep", "--gpus", "2")

        assert (code, out) == (1, "")
        assert err.split("\n", 1)[1] == (  # after the legacy `ports: 1` warning
            "error: unknown option '--gpus'; did you mean '--gpu'?\n"
            "hint: add ${{ run.args }} to a command of 'prep', e.g. python train.py ${{ run.args }};"
            " options are listed in docs/workflows.md, section `dstack run` options\n"
        )

    def test_only_the_warnings_of_the_workflows_it_needs(self, repo: Path) -> None:
        """A legacy key in a workflow the target does not need is not repeated at every plan or
        run (validate lists it); one in a dep is, and an anchor merged into both counts for both."""
        (repo / ".dstack" / "workflows.yaml").write_text(
            GOOD
            + "  - name: lone\n    provider: bash\n    commands: [echo]\n"
            + "  - &legacy {name: first, provider: bash, before_run: [echo], commands: [echo]}\n"
            + "  - <<: *legacy\n    name: second\n"
        )
        prep_warning = "warning: .dstack/workflows.yaml:5:12: workflows[0].ports: legacy port count 1"
        anchor_warning = "warning: .dstack/workflows.yaml:16:43: workflows[3]: legacy key 'before_run'"

        lone = run("plan", "lone")
        train = run("plan", "train")
        second = run("plan", "second")
        provider = run("plan", "bash", "-c", "echo hi")

        assert (lone[0], lone[2]) == (0, "")
        assert (train[0], train[2].startswith(prep_warning), anchor_warning in train[2]) == (0, True, False)
        assert (second[0], second[2].startswith(anchor_warning), prep_warning in second[2]) == (
            0,
            True,
            False,
        )
        assert (provider[0], provider[2]) == (0, "")
        assert run("validate")[2].count("warning:") == 2

    def test_run_prints_the_warnings_too(self, repo: Path) -> None:
        """`dstack run` says the files' warnings, as plan and validate do (here before a bad
        option stops it, so no server is needed)."""

        code, _, err = run("run", "prep", "--cpu", "0")

        assert code == 1
        assert err.startswith(
            "warning: .dstack/workflows.yaml:5:12: workflows[0].ports: legacy port count 1,"
            " list the ports instead, e.g. 'ports: [8000]'\nerror: --cpu: got 0, expected a number >= 1\n"
        )

    def test_unknown_target(self, repo: Path) -> None:
        """An unknown target exits 1 with old dstack's message and a suggestion."""

        code, _, err = run("plan", "trian")

        assert code == 1
        assert "No workflow or provider 'trian' is found" in err
        assert "Did you mean 'train'?" in err


class TestProblemsElsewhere:
    """`dstack plan|run W` fails on the problems of W and the workflows it needs; the others are
    one warning (`dstack validate` lists them), and a provider run needs no workflow file."""

    BROKEN_B = "  - name: b\n    provider: bash\n    commands: [x]\n    resources: {memory: '-1'}\n"
    ELSEWHERE = "warning: 1 problem in the workflow files that `dstack {} {}` does not need; `dstack validate` lists it\n"

    @staticmethod
    def add_unparsable_file(repo: Path) -> None:
        """.dstack/workflows/bad.yaml, defining `c` at a line YAML cannot parse."""
        (repo / ".dstack" / "workflows").mkdir()
        (repo / ".dstack" / "workflows" / "bad.yaml").write_text(
            "workflows:\n  - name: c\n   provider: bash\n"
        )

    def test_a_broken_workflow_it_does_not_need_is_a_warning(self, repo: Path) -> None:
        """`plan prep` plans prep (exit 0) beside a broken `b`, saying there is a problem elsewhere."""
        (repo / ".dstack" / "workflows.yaml").write_text(GOOD + self.BROKEN_B)

        code, out, err = run("plan", "prep")

        assert (code, "prep" in out) == (0, True)
        assert err.endswith(self.ELSEWHERE.format("plan", "prep"))

    def test_json_lists_the_problems_elsewhere(self, repo: Path) -> None:
        """--json prints no warning lines: it carries the problems `plan prep` does not need,
        located, as `validate --json` lists them."""
        (repo / ".dstack" / "workflows.yaml").write_text(GOOD + self.BROKEN_B)

        code, out, err = run("plan", "prep", "--json")

        assert (code, err) == (0, "")
        [problem] = json.loads(out)["problems_elsewhere"]
        assert (problem["path"], problem["line"]) == (".dstack/workflows.yaml", 16)
        assert json.loads(run("plan", "train", "--json")[1])["problems_elsewhere"] == [problem]

    def test_the_broken_workflow_itself_fails(self, repo: Path) -> None:
        """`plan b` of the broken `b` exits 1 with its located problem."""
        (repo / ".dstack" / "workflows.yaml").write_text(GOOD + self.BROKEN_B)

        code, _, err = run("plan", "b")

        assert code == 1
        assert (
            "error: 1 problem in the workflow files\n.dstack/workflows.yaml:16:25: workflows[2].resources.memory:"
            in err
        )

    def test_a_broken_dep_fails(self, repo: Path) -> None:
        """`plan train` exits 1 when prep, a dep of train, is broken."""
        (repo / ".dstack" / "workflows.yaml").write_text(GOOD.replace("ports: 1", "ports: 0"))

        code, _, err = run("plan", "train")

        assert code == 1
        assert "workflows[0].ports: got 0, expected a port count >= 1 or a list of ports" in err

    def test_a_yaml_error_in_another_file_is_a_warning(self, repo: Path) -> None:
        """A file that does not parse blocks no workflow of another file whose deps are all there."""
        self.add_unparsable_file(repo)

        code, _, err = run("plan", "train")

        assert code == 0
        assert self.ELSEWHERE.format("plan", "train") in err

    def test_a_yaml_error_where_a_dep_may_be_fails(self, repo: Path) -> None:
        """A dep defined in no file that loaded fails with the file that did not parse (it may be there)."""
        (repo / ".dstack" / "workflows.yaml").write_text(GOOD.replace("deps: [prep]", "deps: [c]"))
        self.add_unparsable_file(repo)

        code, _, err = run("plan", "train")

        assert code == 1
        assert "error: 2 problems in the workflow files\n" in err
        assert ".dstack/workflows/bad.yaml:3:4: invalid YAML" in err
        assert "unknown workflow 'c' in deps" in err

    def test_a_target_in_a_file_that_does_not_parse_fails_with_its_yaml_error(self, repo: Path) -> None:
        """`plan c`, where c is in a file that does not parse, shows that file's error, not 'no workflow c'."""
        self.add_unparsable_file(repo)

        code, _, err = run("plan", "c")

        assert code == 1
        assert ".dstack/workflows/bad.yaml:3:4: invalid YAML" in err

    def test_a_provider_plan_does_not_read_broken_files(self, repo: Path) -> None:
        """`plan bash -c CMD` needs no workflow file: a YAML error is a warning."""
        (repo / ".dstack" / "workflows.yaml").write_text("workflows:\n  - name: a\n   provider: bash\n")

        code, out, err = run("plan", "bash", "-c", "echo hi")

        assert (code, "echo hi" in out) == (0, True)
        assert err == self.ELSEWHERE.format("plan", "bash")

    def test_a_provider_run_does_not_read_broken_files(self, repo: Path) -> None:
        """`run bash` with broken files goes on to its own checks (here a bad option stops it
        before a server is needed), after the warning."""
        (repo / ".dstack" / "workflows.yaml").write_text("workflows:\n  - name: a\n   provider: bash\n")

        code, _, err = run("run", "bash", "--cpu", "0", "-c", "echo hi")

        assert code == 1
        assert err == (
            self.ELSEWHERE.format("run", "bash") + "error: --cpu: got 0, expected a number >= 1\n"
            "hint: e.g. dstack run WORKFLOW --cpu 4\n"
        )


class TestSchema:
    def test_stdout(self) -> None:
        """`dstack schema` prints a JSON Schema with $schema and title."""

        code, out, _ = run("schema")

        schema = json.loads(out)
        assert code == 0
        assert schema["title"] == "dstack workflows file"
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"

    def test_output_file(self, tmp_path: Path) -> None:
        """-o writes the same schema to a file."""
        target = tmp_path / "schema.json"

        code, _, _ = run("schema", "-o", str(target))

        assert code == 0
        assert json.loads(target.read_text()) == json.loads(run("schema")[1])

    def test_output_into_a_missing_folder(self, tmp_path: Path) -> None:
        """-o into a folder that does not exist is one clear error, not a traceback."""
        target = tmp_path / "nope" / "schema.json"

        code, _, err = run("schema", "-o", str(target))

        assert code == 1
        assert err == (
            f"error: cannot write {target}: No such file or directory\n"
            f"hint: create {target.parent} first, or pick another path with -o\n"
        )

    def test_output_onto_a_folder(self, tmp_path: Path) -> None:
        """-o naming a folder says so and exits 1."""

        code, _, err = run("schema", "-o", str(tmp_path))

        assert code == 1
        assert err.startswith(f"error: cannot write {tmp_path}: Is a directory\n")


@pytest.mark.parametrize("command", ["validate", "schema", "plan"])
def test_help_ends_with_example(command: str) -> None:
    """Every command's help text ends with an Example line."""

    code, out, _ = run(command, "--help")

    assert code == 0
    assert f"Example: dstack {command}" in out


class TestInit:
    def test_init_writes_a_first_workflow_that_validates(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """In a git repo with no .dstack/, `dstack init` (old dstack users type it first) writes
        .dstack/workflows.yaml at the repo's top with a `hello` workflow that plans cleanly."""
        import subprocess

        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        (tmp_path / "src").mkdir()
        monkeypatch.chdir(tmp_path / "src")

        code, out, _ = run("init")
        planned = run("plan", "hello")

        assert code == 0
        assert out == "Created ../.dstack/workflows.yaml with a workflow `hello`; run it: dstack run hello\n"
        assert planned[0] == 0 and 'echo "Hello from dstack-prefect"' in planned[1]

    def test_init_leaves_existing_workflows_alone(self, repo: Path) -> None:
        """A repo with workflow files keeps them; init says what is there."""
        before = (repo / ".dstack" / "workflows.yaml").read_text()

        code, out, _ = run("init")

        assert code == 0
        assert out.startswith("Already set up: 2 workflows in 1 file under ")
        assert (repo / ".dstack" / "workflows.yaml").read_text() == before


def test_version_names_dstack_prefect_and_prefect() -> None:
    """`dstack --version` / `-v`, old dstack's global flag."""
    from importlib.metadata import version

    from dstack_prefect import __version__

    expected = f"dstack-prefect {__version__} (prefect {version('prefect')})\n"

    assert run("--version") == (0, expected, "")
    assert run("-v")[1] == expected
