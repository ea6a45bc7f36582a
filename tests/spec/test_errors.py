"""Bad workflow files give exact, located messages, every problem of every file at once."""

# ruff: noqa: E501 - golden messages are kept on one line so they can be compared by eye

from __future__ import annotations

import pytest

from dstack_prefect.errors import SpecErrors
from dstack_prefect.spec import check_workflows, load_for, load_text, load_workflows
from dstack_prefect.spec._locate import _MISSING
from dstack_prefect.spec._models import MODELS
from tests.conftest import git_init
from tests.spec.bad_inputs import CASES, Case, W
from tests.spec.conftest import RepoFactory


def test_table_is_large_enough() -> None:
    """The golden table covers at least 40 bad inputs."""

    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_message(case: Case, make_repo: RepoFactory) -> None:
    """Each bad input is reported (as `dstack validate` does) with exactly the expected path:line:col messages."""
    root = make_repo(case.files)

    _, errors = check_workflows(root)

    assert [e.message for e in errors] == case.messages


@pytest.mark.parametrize("case", [c for c in CASES if "unknown-dep" not in c.id], ids=lambda c: c.id)
def test_bad_input_fails_to_load(case: Case, make_repo: RepoFactory) -> None:
    """Loading a bad input raises SpecErrors with the same messages."""
    root = make_repo(case.files)

    with pytest.raises(SpecErrors) as info:
        load_workflows(root)

    assert [e.message for e in info.value.errors] == case.messages


class TestUnknownDeps:
    """A dep naming a workflow no file defines: an error for validate and for a plan that needs it."""

    def test_load_keeps_it_unresolved(self) -> None:
        """load_text loads the file and keeps the located error, so unrelated workflows still run."""
        text = (
            "workflows:\n  - name: prep\n    provider: bash\n    commands: [x]\n"
            "  - name: train\n    provider: bash\n    commands: [x]\n    deps: [perp]\n"
        )

        workflows = load_text(text)

        assert [e.message for e in workflows.unresolved] == [
            "workflows.yaml:8:12: workflows[1].deps[0]: unknown workflow 'perp' in deps; did you mean 'prep'?"
        ]

    def test_a_workflow_with_its_own_problems_has_its_deps_checked_too(self, make_repo: RepoFactory) -> None:
        """Every problem in one pass: a workflow whose resources are wrong still gets its unknown
        dep and the cycle through it reported, not only after the resources are fixed."""
        root = make_repo(
            {
                ".dstack/workflows.yaml": (
                    "workflows:\n"
                    "  - name: c\n    provider: bash\n    commands: [x]\n    deps: [zz, d]\n"
                    "    resources: {cpu: 0}\n"
                    "  - name: d\n    provider: bash\n    commands: [x]\n    deps: [c]\n"
                )
            }
        )

        _, errors = check_workflows(root)

        assert [e.message for e in errors] == [
            ".dstack/workflows.yaml:5:12: workflows[0].deps[0]: unknown workflow 'zz' in deps",
            ".dstack/workflows.yaml:5:16: workflows[0].deps[1]: deps form a cycle: c -> d -> c",
            ".dstack/workflows.yaml:6:22: workflows[0].resources.cpu: got 0, expected a number >= 1",
        ]

    def test_not_a_warning(self) -> None:
        """It is never also a warning, so no command prints it twice."""
        text = "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    deps: [trian]\n"

        workflows = load_text(text)

        assert workflows.warnings == []


def test_snippet_points_at_the_column() -> None:
    """The snippet is the offending source line with a caret under the column."""
    text = "workflows:\n  - name: a\n    provider: bash\n    comands: [x]\n"

    with pytest.raises(SpecErrors) as info:
        load_text(text)

    assert info.value.errors[0].snippet == "        comands: [x]\n        ^"


def test_error_fields() -> None:
    """A SpecError carries path, line, col, key and the bare message separately."""
    text = "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n    resources:\n      cpu: many\n"

    with pytest.raises(SpecErrors) as info:
        load_text(text, ".dstack/workflows/x.yaml")

    assert info.value.errors[0].as_dict() == {
        "path": ".dstack/workflows/x.yaml",
        "line": 6,
        "col": 12,
        "key": "workflows[0].resources.cpu",
        "message": "got 'many', expected an integer",
    }


def test_all_problems_in_one_pass(make_repo: RepoFactory) -> None:
    """Problems in several workflows and files are all reported together, in file order."""
    root = make_repo(
        {
            ".dstack/workflows/a.yaml": "workflows:\n  - name: a\n    provider: bash\n  - name: b\n    provider: lab\n    zz: 1\n",
            ".dstack/workflows/b.yaml": "workflows: [",
        }
    )

    with pytest.raises(SpecErrors) as info:
        load_workflows(root)

    assert [(e.path, e.line) for e in info.value.errors] == [
        (".dstack/workflows/a.yaml", 2),
        (".dstack/workflows/a.yaml", 6),
        (".dstack/workflows/b.yaml", 1),
    ]


class TestWarnings:
    """Legacy forms load, with a located warning naming the modern form."""

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (
                "    commands: [x]\n    before_run: [y]\n",
                "workflows.yaml:5:5: workflows[0]: legacy key 'before_run', use 'setup'",
            ),
            (
                "    commands: [x]\n    requirements: r.txt\n",
                "workflows.yaml:5:5: workflows[0]: legacy key 'requirements', put 'pip install -r FILE' in 'setup'",
            ),
            (
                "    commands: [x]\n    resources:\n      local: true\n",
                "workflows.yaml:6:7: workflows[0].resources: legacy key 'local' has no effect: runs are local by default",
            ),
            (
                "    commands: [x]\n    ports: 2\n",
                "workflows.yaml:5:12: workflows[0].ports: legacy port count 2, list the ports instead, e.g. 'ports: [8000, 8001]'",
            ),
            (
                "    commands: [x]\n    ports: 1\n",
                "workflows.yaml:5:12: workflows[0].ports: legacy port count 1, list the ports instead, e.g. 'ports: [8000]'",
            ),
            (
                "    commands: [x]\n    ports: 9\n",
                "workflows.yaml:5:12: workflows[0].ports: legacy port count 9, list the ports instead, e.g. 'ports: [8000, 8001, ..., 8008]'",
            ),
            (
                "    commands: [x]\n    deps:\n      - tag: t\n        mount: true\n",
                "workflows.yaml:7:9: workflows[0].deps[0]: legacy key 'mount' in deps is ignored;"
                " set 'mount: true' on the upstream's artifacts",
            ),
        ],
        ids=[
            "before_run",
            "requirements",
            "resources-local",
            "ports-count",
            "one-port",
            "nine-ports",
            "deps-mount",
        ],
    )
    def test_warning(self, body: str, expected: str) -> None:
        """The legacy form loads and the warning says where and what to write instead."""
        text = "workflows:\n  - name: train\n    provider: bash\n" + body

        workflows = load_text(text)

        assert [str(w) for w in workflows.warnings] == [expected]

    def test_a_bare_number_of_memory_below_a_gib(self) -> None:
        """`memory: 16` is 16 MiB (a bare number is MiB): it loads, with a warning naming '16GB'."""
        text = (
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n"
            "    resources:\n      memory: 16\n      gpu: {memory: 24}\n      shm_size: 64\n"
        )

        workflows = load_text(text)

        assert [str(w) for w in workflows.warnings] == [
            "workflows.yaml:6:15: workflows[0].resources.memory: 16 is 16 MiB (a bare number is MiB);"
            " write '16GB' for gigabytes, or '16MiB' to keep it and silence this",
            "workflows.yaml:7:21: workflows[0].resources.gpu.memory: 24 is 24 MiB (a bare number is MiB);"
            " write '24GB' for gigabytes, or '24MiB' to keep it and silence this",
        ]

    def test_a_registry_password_written_in_the_file_points_to_secrets(self) -> None:
        """A literal registry_auth password loads, with a warning that it is kept with each run
        and how to keep it in a secret; a `${{ secrets.X }}` password gets none."""
        step = "  - name: {}\n    provider: docker\n    image: r.example/app:1\n    commands: [x]\n"
        auth = "    registry_auth:\n      username: me\n      password: {}\n"
        text = (
            "workflows:\n"
            + step.format("literal")
            + auth.format("hunter2")
            + step.format("secret")
            + auth.format('"${{ secrets.REG_PASS }}"')
        )

        workflows = load_text(text)

        assert [str(w) for w in workflows.warnings] == [
            "workflows.yaml:8:17: workflows[0].registry_auth.password: a password written in the file"
            " is kept with each run (in the Prefect flow run's plan); keep it in a secret:"
            " `dstack secrets add REGISTRY_PASSWORD`, then 'password: ${{ secrets.REGISTRY_PASSWORD }}'"
        ]

    def test_a_warning_in_a_merged_anchor_is_said_once(self) -> None:
        """A legacy form in an anchor that two workflows merge is one warning, not two."""
        text = (
            "x-base: &b {provider: bash, commands: [x], ports: 1}\n"
            "workflows:\n  - <<: *b\n    name: a\n  - <<: *b\n    name: c\n"
        )

        workflows = load_text(text)

        assert [f"{w.line}:{w.col}" for w in workflows.warnings] == ["1:51"]

    def test_sorted_by_file_and_line(self, make_repo: RepoFactory) -> None:
        """Warnings come in file order, then line order, whatever kind each is."""
        root = make_repo(
            {
                ".dstack/workflows/a.yaml": "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n"
                "    ports: 1\n    before_run: [y]\n",
                ".dstack/workflows/b.yaml": "workflows:\n  - name: b\n    provider: bash\n    commands: [x]\n"
                "    requirements: r.txt\n",
            }
        )

        workflows = load_workflows(root)

        assert [(w.path, w.line) for w in workflows.warnings] == [
            (".dstack/workflows/a.yaml", 5),
            (".dstack/workflows/a.yaml", 6),
            (".dstack/workflows/b.yaml", 5),
        ]


class TestInputsMatchingNoFile:
    """An `inputs` entry that matches no file of the code snapshot would keep the step's code
    key the same forever (a typo reused old results silently): a located warning."""

    TEXT = (
        "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n"
        '    inputs: [src/prep.py, src/prepp.py, "src/*.py", src, data/raw.csv, "lib/${{ run.args }}"]\n'
    )

    def test_warning(self, make_repo: RepoFactory) -> None:
        """A typo and a gitignored file are each named at their place; matching entries and one
        that run args complete are not."""
        root = make_repo({W: self.TEXT, "src/prep.py": "", ".gitignore": "data/\n", "data/raw.csv": ""})
        git_init(root)
        note = "matches no file in the repo's code (tracked, or untracked and not ignored), so no change would make the step run again"

        warnings = load_workflows(root).warnings

        assert [str(w) for w in warnings] == [
            f".dstack/workflows.yaml:5:27: workflows[0].inputs[1]: 'src/prepp.py' {note}; did you mean 'src/prep.py'?",
            f".dstack/workflows.yaml:5:58: workflows[0].inputs[4]: 'data/raw.csv' {note}",
        ]

    def test_validate_lists_it(self, make_repo: RepoFactory) -> None:
        """`dstack validate` (check_workflows) has the same warning, and no error."""
        root = make_repo({W: self.TEXT.replace("src/prepp.py, ", ""), "src/prep.py": ""})
        git_init(root)

        workflows, errors = check_workflows(root)

        assert errors == []
        assert [w.key for w in workflows.warnings] == ["workflows[0].inputs[3]"]


class TestHostileYAML:
    """Text that would crash or hang a naive loader is one located problem, found quickly."""

    def test_deep_nesting_libyaml_cannot_compose(self) -> None:
        """Fifty thousand nested brackets (libyaml's composer crashes the process on them) are refused."""
        text = "workflows: " + "[" * 50_000 + "]" * 50_000 + "\n"

        with pytest.raises(SpecErrors) as info:
            load_text(text)

        assert [e.message for e in info.value.errors] == [
            "workflows.yaml:1:111: invalid YAML: nested more than 100 levels deep, expected a flatter file"
        ]

    def test_deep_nesting_of_dashes(self) -> None:
        """Sequences nested on one line with `- - - ...` count as levels too."""
        text = "workflows:\n  " + "- " * 20_000 + "x\n"

        with pytest.raises(SpecErrors) as info:
            load_text(text)

        assert [e.message for e in info.value.errors] == [
            "workflows.yaml:2:201: invalid YAML: nested more than 100 levels deep, expected a flatter file"
        ]

    def test_alias_bomb(self) -> None:
        """Aliases that expand to a billion values are refused after a bounded amount of work."""
        lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
        lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
        text = "\n".join(lines) + "\nworkflows: *a8\n"

        with pytest.raises(SpecErrors) as info:
            load_text(text)

        (error,) = info.value.errors
        assert error.detail == "invalid YAML: aliases expand to more than 100000 values, expected fewer"

    def test_aliases_and_merge_keys_still_load(self) -> None:
        """Ordinary anchors, aliases and `<<:` merges are not mistaken for either."""
        text = (
            "workflows:\n  - name: a\n    <<: &base {provider: bash, commands: [x]}\n"
            "  - <<: *base\n    name: b\n    deps: [a]\n"
        )

        assert sorted(load_text(text).by_name) == ["a", "b"]

    def test_shared_settings_under_an_x_key(self) -> None:
        """A top-level `x-` key (as in docker-compose) holds anchors for the workflows to merge."""
        text = (
            "x-common: &common\n  provider: bash\n  resources: {cpu: 2}\n"
            "workflows:\n  - <<: *common\n    name: a\n    commands: [x]\n"
        )

        workflows = load_text(text)

        assert (workflows.by_name["a"].provider, workflows.by_name["a"].resources.cpu) == ("bash", 2)

    def test_byte_order_mark(self, make_repo: RepoFactory) -> None:
        """A file saved with a byte order mark loads, and its first line's caret is where it belongs."""
        root = make_repo({W: "\ufeffworkflows: [{name: a, provider: bash, commands: ['${{ x }}']}]\n"})

        _, errors = check_workflows(root)

        assert [e.message for e in errors] == [
            ".dstack/workflows.yaml:1:51: workflows[0].commands[0]: unknown name 'x' in '${{', expected run.args, run.name or secrets.NAME"
        ]
        assert errors[0].snippet.splitlines()[1] == " " * 54 + "^"


def test_every_required_key_says_what_it_expects() -> None:
    """A "missing key" message names what goes there, for every required key of every model."""
    required = {name for model in MODELS for name, info in model.model_fields.items() if info.is_required()}

    assert required - {"workflows"} <= set(_MISSING)


def test_env_mapping_values_are_kept_as_written() -> None:
    """`PY: 3.10` is "3.10", `UMASK: 0022` is "0022" and `DEBUG: on` is "on" in the step's
    environment, not the numbers and booleans YAML 1.1 reads (3.1, 18, true)."""
    text = (
        "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n    env:\n"
        "      PY: 3.10\n      UMASK: 0022\n      N: 8\n      SIZE: 1_000\n      DEBUG: true\n      EMPTY:\n"
        "      VERBOSE: on\n      FLAG: yes\n      QUIET: Off\n      NO_COLOR: n\n"
    )

    env = load_text(text).by_name["a"].env

    assert env == {
        "PY": "3.10",
        "UMASK": "0022",
        "N": "8",
        "SIZE": "1_000",
        "DEBUG": "true",
        "EMPTY": "",
        "VERBOSE": "on",
        "FLAG": "yes",
        "QUIET": "Off",
        "NO_COLOR": "n",
    }


def test_version_number_is_kept_as_written() -> None:
    """`version: 1.80` (an openvscode-server or Jupyter version) is "1.80", not "1.8"."""
    text = "workflows:\n  - name: ide\n    provider: code\n    version: 1.80\n"

    assert load_text(text).by_name["ide"].version == "1.80"


class TestLoadFor:
    """`load_for(root, target)`: what `dstack run|plan TARGET` loads; only the problems of TARGET
    and the workflows it needs stop it, the others are returned for a warning."""

    SHARED = (
        'x-res: &res {memory: "-1"}\nworkflows:\n'
        "  - name: a\n    provider: bash\n    commands: [x]\n    resources: *res\n"
        "  - name: b\n    provider: bash\n    commands: [x]\n    resources: *res\n"
        "  - name: c\n    provider: bash\n    commands: [x]\n    deps: [b]\n"
        "  - name: d\n    provider: bash\n    commands: [x]\n"
    )

    @pytest.mark.parametrize("target", ["a", "b", "c"])
    def test_a_problem_in_a_shared_anchor_stops_every_workflow_that_uses_it(
        self, target: str, make_repo: RepoFactory
    ) -> None:
        """A bad anchor merged into a and b is reported once (at a), and stops a, b and c (b's
        downstream) all the same."""
        root = make_repo({W: self.SHARED})

        with pytest.raises(SpecErrors) as info:
            load_for(root, target)

        assert [e.message for e in info.value.errors] == [
            ".dstack/workflows.yaml:1:22: workflows[0].resources.memory: got '-1', expected a size such as '16GB', '512MiB' or '2Gi'"
        ]

    def test_a_workflow_that_needs_none_of_them_loads(self, make_repo: RepoFactory) -> None:
        """d loads, with the problem elsewhere returned."""
        root = make_repo({W: self.SHARED})

        workflows, elsewhere = load_for(root, "d")

        assert ("d" in workflows, len(elsewhere)) == (True, 1)

    def test_a_provider_needs_no_workflow_file(self, make_repo: RepoFactory) -> None:
        """A provider that no file names is planned whatever the files hold, a YAML error too."""
        root = make_repo({W: "workflows:\n  - name: a\n   provider: bash\n"})

        _, elsewhere = load_for(root, "bash")

        assert [e.detail for e in elsewhere] == [
            "invalid YAML: did not find expected '-' indicator; expected '- ' at column 3 (the list that starts at line 2), or this line indented under the item above"
        ]
