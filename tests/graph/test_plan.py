"""build_plan: the target and its upstreams in order, with `dstack run` overrides applied."""

# ruff: noqa: E501 - golden messages are kept on one line so they can be compared by eye

from __future__ import annotations

from pathlib import Path

import pytest

from dstack_prefect.errors import CycleError, PlanError, SpecErrors, UnknownWorkflowError
from dstack_prefect.graph import GpuRequest, PortSpec, StepDep, build_plan, resolve_secrets, secret_refs
from dstack_prefect.spec import Workflows, load_text, load_workflows

PIPELINE = """\
workflows:
  - name: download
    provider: bash
    commands: [python download.py]
    artifacts: [data]
  - name: left
    provider: bash
    commands: [python left.py]
    deps: [download]
  - name: right
    provider: bash
    commands: [python right.py]
    deps:
      - workflow: download
      - tag: baseline
  - name: train
    provider: bash
    commands:
      - python train.py ${{ run.args }}
      - echo ${{ run.name }} $$HOME
    env:
      - TOKEN=${{ secrets.HF_TOKEN }}
      - DEBUG
    artifacts:
      - path: model
    ports: [7860]
    resources:
      memory: 16GB
      gpu:
        name: A100
    deps:
      - left
      - right
      - dstackai/dstack/hello-txt
"""


@pytest.fixture
def pipeline() -> Workflows:
    return load_text(PIPELINE, ".dstack/workflows.yaml")


def test_topological_order_with_diamond(pipeline: Workflows) -> None:
    """A diamond (train <- left, right <- download) plans download once, before both branches."""

    plan = build_plan(pipeline, "train", [])

    assert [s.name for s in plan.steps] == ["download", "left", "right", "train"]
    assert plan.step("train").upstream == ["left", "right"]
    assert plan.step("download").upstream == []


def test_deps_keep_tags_and_other_repos(pipeline: Workflows) -> None:
    """Step.deps lists every dep as written; tag and cross-repo deps are not upstream steps."""

    plan = build_plan(pipeline, "train", [])

    assert plan.step("right").deps == [
        StepDep(kind="workflow", name="download"),
        StepDep(kind="tag", name="baseline"),
    ]
    assert plan.step("train").deps[-1] == StepDep(kind="workflow", name="hello-txt", repo="dstackai/dstack")


def test_a_repo_prefixed_dep_is_this_repos_workflow_as_in_dstack_0_9() -> None:
    """`owner/repo/prep` plans this repo's prep (dstack 0.9 ignored the prefix), with a located
    warning that says so."""
    workflows = load_text(
        "workflows:\n"
        "  - name: prep\n    provider: bash\n    commands: [echo prep]\n"
        "  - name: train\n    provider: bash\n    commands: [echo train]\n"
        "    deps: [dstackai/dstack/prep]\n"
    )

    plan = build_plan(workflows, "train", [])

    assert ["prep", "train"] == [s.name for s in plan.steps]
    assert ["prep"] == plan.step("train").upstream
    assert [
        "workflows[1].deps[0]: the repo prefix 'dstackai/dstack' is ignored, as dstack 0.9 did:"
        " the dep is this repo's 'prep'"
    ] == [f"{w.key}: {w.message}" for w in workflows.warnings]


def test_a_repo_prefixed_dep_this_repo_lacks_says_it_is_skipped(pipeline: Workflows) -> None:
    """`owner/repo/NAME` where this repo has no NAME loads (old files name dstack's own examples),
    with a warning that says the dep is skipped, rather than one that leaves it open."""

    assert [f"{w.line}:{w.col}: {w.key}: {w.message}" for w in pipeline.warnings] == [
        "34:9: workflows[3].deps[2]: the repo prefix 'dstackai/dstack' is ignored, as dstack 0.9 did,"
        " and this repo has no 'hello-txt': the dep is skipped"
    ]


def test_only_the_closure_is_planned(pipeline: Workflows) -> None:
    """Workflows the target does not need are not in the plan."""

    plan = build_plan(pipeline, "left", [])

    assert [s.name for s in plan.steps] == ["download", "left"]


def test_source_and_resources(pipeline: Workflows) -> None:
    """Steps carry file:line and resources normalised to MiB and GPU requests."""

    step = build_plan(pipeline, "train", []).step("train")

    assert step.source == ".dstack/workflows.yaml:16"
    assert step.resources.memory_mib == 15259
    assert step.resources.gpu == GpuRequest(count=1, name="A100")
    assert step.env == {"TOKEN": "${{ secrets.HF_TOKEN }}", "DEBUG": ""}


class TestOverrides:
    """Override options change the target only, the way old dstack's providers did."""

    def test_env_appends(self, pipeline: Workflows) -> None:
        """-e adds to the YAML env and can replace a variable."""

        step = build_plan(pipeline, "train", ["-e", "A=1", "--env", "DEBUG=yes"]).step("train")

        assert step.env == {"TOKEN": "${{ secrets.HF_TOKEN }}", "DEBUG": "yes", "A": "1"}

    def test_artifact_replaces(self, pipeline: Workflows) -> None:
        """-a replaces the YAML artifacts."""

        step = build_plan(pipeline, "train", ["-a", "ckpt", "-a", "logs"]).step("train")

        assert [a.path for a in step.artifacts] == ["ckpt", "logs"]

    def test_dep_replaces_and_changes_the_graph(self, pipeline: Workflows) -> None:
        """--dep replaces deps, so the plan follows the new upstreams."""

        plan = build_plan(pipeline, "train", ["--dep", "download", "--dep", ":v1"])

        assert [s.name for s in plan.steps] == ["download", "train"]
        assert plan.step("train").deps == [
            StepDep(kind="workflow", name="download", option="--dep"),
            StepDep(kind="tag", name="v1", option="--dep"),
        ]

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (["--gpu", "2"], {"gpu": {"count": 2, "name": "A100", "memory_mib": None}}),
            (
                ["--gpu-name", "V100", "--gpu-memory", "16GiB"],
                {"gpu": {"count": 1, "name": "V100", "memory_mib": 16384}},
            ),
            (["--cpu", "8", "--memory", "32GiB"], {"cpu": 8, "memory_mib": 32768}),
            (["--shm-size", "1GB", "-i"], {"shm_size_mib": 954, "interruptible": True}),
        ],
        ids=["gpu-count", "gpu-name-memory", "cpu-memory", "shm-interruptible"],
    )
    def test_resources(self, pipeline: Workflows, argv: list[str], expected: dict[str, object]) -> None:
        """Resource options override just the resource fields they name."""

        resources = build_plan(pipeline, "train", argv).step("train").resources.model_dump()

        assert {k: resources[k] for k in expected} == expected

    def test_ports_merge_by_app_port(self, pipeline: Workflows) -> None:
        """-p APP:LOCAL maps a YAML port; a new port is added."""

        step = build_plan(pipeline, "train", ["-p", "7860:80", "-p", "9000"]).step("train")

        assert step.ports == [PortSpec(port=7860, local_port=80), PortSpec(port=9000)]

    def test_working_dir(self, pipeline: Workflows) -> None:
        """-w sets the working folder."""

        assert build_plan(pipeline, "train", ["-w", "src"]).step("train").working_dir == "src"

    def test_overrides_touch_only_the_target(self, pipeline: Workflows) -> None:
        """Upstream steps keep their YAML values."""

        plan = build_plan(pipeline, "train", ["--gpu", "4", "-e", "A=1"])

        assert plan.step("download").resources.gpu is None
        assert plan.step("download").env == {}

    @pytest.mark.parametrize(
        ("argv", "option"),
        [
            (["-w", "${{ secrets.DIR }}"], "-w/--working-dir"),
            (["-a", "out/${{ secrets.DIR }}"], "-a/--artifact"),
            (["--gpu-name", "${{ secrets.DIR }}"], "--gpu-name"),
            (["--dep", ":${{ secrets.DIR }}"], "--dep"),
        ],
        ids=["working-dir", "artifact", "gpu-name", "dep"],
    )
    def test_a_secret_where_it_is_not_put_in(self, pipeline: Workflows, argv: list[str], option: str) -> None:
        """A secret in an option whose value is never resolved is refused, naming the option."""

        with pytest.raises(PlanError) as info:
            build_plan(pipeline, "left", argv)

        assert info.value.message == (
            f"{option}: '${{{{ secrets.DIR }}}}' is not put in here and would stay as written,"
            " expected secrets only in env, commands, setup, entrypoint and registry_auth"
        )

    @pytest.mark.parametrize(
        ("argv", "hint"),
        [
            (["--memory", "0"], "e.g. dstack run WORKFLOW --memory 16GB"),
            (["-e", "1X=2"], "e.g. dstack run WORKFLOW -e LR=0.1"),
            (
                ["-p", "web"],
                "e.g. dstack run WORKFLOW -p 8000, or -p 8000:3000 to reach it at local port 3000",
            ),
            (
                ["--dep", "left", "--dep", "left"],
                "e.g. dstack run WORKFLOW --dep prep (a workflow) or --dep :v1 (a tag)",
            ),
            (["-w", "${{ x }}"], "e.g. dstack run WORKFLOW -w src"),
        ],
        ids=["memory", "env", "port", "dep-twice", "working-dir-interpolation"],
    )
    def test_a_bad_option_says_what_to_write(self, pipeline: Workflows, argv: list[str], hint: str) -> None:
        """A bad override's hint is the option written right."""

        with pytest.raises(PlanError) as info:
            build_plan(pipeline, "train", argv)

        assert info.value.hint == hint

    def test_the_same_port_twice(self, pipeline: Workflows) -> None:
        """`-p 8000 -p 8000` says the port is given twice (not that '8000' and '8000' clash)."""

        with pytest.raises(PlanError) as info:
            build_plan(pipeline, "left", ["-p", "8000", "-p", "8000"])

        assert info.value.message == "-p/--port: '8000' is given twice, expected each port once"

    def test_an_empty_gpu_name(self, pipeline: Workflows) -> None:
        """`--gpu-name ''` is refused, not a request for one GPU of any name."""

        with pytest.raises(PlanError) as info:
            build_plan(pipeline, "left", ["--gpu-name", ""])

        assert info.value.message == "--gpu-name: got '', expected a GPU name such as 'A100'"

    def test_a_value_that_starts_with_a_dash(self, pipeline: Workflows) -> None:
        """`--memory -1GB` says the value was read as an option, not that it is missing."""

        with pytest.raises(PlanError) as info:
            build_plan(pipeline, "train", ["--memory", "-1GB"])

        assert info.value.message == (
            "--memory: expected a value after it, got '-1GB', which starts with '-'"
            " (write --memory=-1GB if that is the value)"
        )

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--cpu", "many"], "--cpu: got 'many', expected a whole number such as 4"),
            (["--gpu", "x"], "--gpu: got 'x', expected a whole number such as 1"),
            (["--memory"], "--memory: expected a value after it"),
            (["--memory", "lots"], "--memory: got 'lots', expected a size such as '16GB', '512MiB' or '2Gi'"),
            (["-p", "web"], "-p/--port: got 'web', expected a port number or 'APP_PORT:LOCAL_PORT'"),
            (["--dep", "nope"], "--dep: unknown workflow 'nope' in deps"),
            (["--dep", "left", "--dep", "left"], "--dep: 'left' is given twice, expected each dep once"),
            (
                ["--dep", "left", "--dep", "owner/repo/left"],
                "--dep: 'owner/repo/left' is given twice (the repo prefix is ignored: it is 'left'), expected each dep once",
            ),
            (
                ["-w", "../.."],
                "-w/--working-dir: got '../..', which climbs out of the repo with '..', expected a folder inside it, e.g. 'src'",
            ),
            (
                ["-w", "/tmp"],
                "-w/--working-dir: got '/tmp', an absolute path, expected a folder relative to the repo root, e.g. 'src'",
            ),
            (
                ["-a", "../x"],
                "-a/--artifact: got '../x', which climbs out of the working folder with '..', expected a path inside it, or an absolute one",
            ),
            (["--gpu", "0"], "--gpu: got 0, expected a number >= 1"),
            (["--cpu", "0"], "--cpu: got 0, expected a number >= 1"),
            (
                ["--memory", "0GB"],
                "--memory: got '0GB', a size of zero, expected a size such as '16GB', '512MiB' or '2Gi'",
            ),
            (
                ["-e", "caf\u00e9=1"],
                "-e/--env: got variable name 'caf\u00e9', expected letters, digits and '_'",
            ),
            (
                ["-e", "X=${{ run.nme }}"],
                "-e/--env: unknown name 'run.nme' in '${{', expected run.args, run.name or secrets.NAME; did you mean 'run.name'?",
            ),
            (
                ["-a", "out-${{ run.id }}"],
                "-a/--artifact: unknown name 'run.id' in '${{', expected run.args, run.name or secrets.NAME",
            ),
            (["-w", "${{ x"], "-w/--working-dir: unclosed '${{', expected '}}' to close it"),
            (
                ["--gpu-name", "${{ gpu }}"],
                "--gpu-name: unknown name 'gpu' in '${{', expected run.args, run.name or secrets.NAME",
            ),
            (
                ["-p", "8000:9000", "-p", "8001:9000"],
                "-p/--port: '8000:9000' and '8001:9000' both use local port 9000; give each port its own local port",
            ),
            (
                ["-p", "8000:7860"],
                "-p/--port: '7860' and '8000:7860' both use local port 7860; give each port its own local port",
            ),
        ],
        ids=[
            "cpu",
            "gpu",
            "memory-without-value",
            "memory",
            "port",
            "dep",
            "dep-twice",
            "dep-twice-through-the-repo-prefix",
            "working-dir-climbs-out",
            "working-dir-absolute",
            "artifact-climbs-out",
            "gpu-zero",
            "cpu-zero",
            "memory-zero",
            "env-name-not-ascii",
            "env-interpolation",
            "artifact-interpolation",
            "working-dir-interpolation",
            "gpu-name-interpolation",
            "port-local-twice",
            "port-local-taken-by-yaml",
        ],
    )
    def test_bad_option(self, pipeline: Workflows, argv: list[str], message: str) -> None:
        """A malformed override is a PlanError naming the option."""

        with pytest.raises(PlanError) as info:
            build_plan(pipeline, "train", argv)

        assert info.value.message == message


class TestInterpolation:
    """${{ run.args }}, ${{ run.name }} and $$ are substituted; secrets stay references."""

    def test_run_args_quoting(self, pipeline: Workflows) -> None:
        """Leftover tokens join with spaces; tokens with spaces are quoted, inner quotes escaped."""

        plan = build_plan(pipeline, "train", ["--epochs", "3", "a b", 'say "hi" now'], run_name="lucky-fox-1")

        assert plan.step("train").commands == [
            'python train.py --epochs 3 "a b" "say \\"hi\\" now"',
            "echo lucky-fox-1 $HOME",
        ]
        assert plan.run_args == ["--epochs", "3", "a b", 'say "hi" now']

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                '    working_dir: "src/${{ run.args }}"\n',
                "step 'a': working_dir: got 'src/../..', which climbs out of the repo with '..', expected a folder inside it, e.g. 'src'",
            ),
            (
                '    artifacts: ["out/${{ run.args }}"]\n',
                "step 'a': artifacts[0]: got 'out/../..', which climbs out of the working folder with '..', expected a path inside it, or an absolute one",
            ),
            (
                '    cache: ["${{ run.args }}"]\n',
                "step 'a': cache[0]: got '../..', which climbs out of the working folder with '..', expected a path inside it, under '~', or an absolute one",
            ),
            (
                '    inputs: ["src/${{ run.args }}"]\n',
                "step 'a': inputs[0]: got 'src/../..', which climbs out of the repo with '..', expected a path inside it, e.g. 'src'",
            ),
        ],
        ids=["working-dir", "artifact", "cache", "inputs"],
    )
    def test_paths_are_checked_after_run_args_go_in(self, body: str, message: str) -> None:
        """A path that is fine as written but climbs out once ${{ run.args }} is put in is refused."""
        workflows = load_text("workflows:\n  - name: a\n    provider: bash\n    commands: [ls]\n" + body)

        with pytest.raises(PlanError) as info:
            build_plan(workflows, "a", ["../.."])

        assert info.value.message == message

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            ([], "step 'a': image: got '', expected a Docker image such as 'ubuntu:22.04'"),
            (
                ["two", "words"],
                "step 'a': image: got 'two words', expected a Docker image such as 'ubuntu:22.04'",
            ),
        ],
        ids=["no-args", "two-words"],
    )
    def test_image_is_checked_after_run_args_go_in(self, argv: list[str], message: str) -> None:
        """`image: "${{ run.args }}"` with no args is no image, and with two tokens not one."""
        workflows = load_text('workflows:\n  - name: a\n    provider: docker\n    image: "${{ run.args }}"\n')

        with pytest.raises(PlanError) as info:
            build_plan(workflows, "a", argv)

        assert (info.value.message, info.value.hint) == (
            message,
            "it is '${{ run.args }}' with the values put in",
        )

    def test_secrets_stay_references(self, pipeline: Workflows) -> None:
        """The plan holds `${{ secrets.X }}`, never a value; the executor resolves it at start."""

        step = build_plan(pipeline, "train", []).step("train")

        assert secret_refs(step) == {"HF_TOKEN"}
        assert resolve_secrets(step.env["TOKEN"], {"HF_TOKEN": "s3cr3t"}) == "s3cr3t"

    def test_missing_secret(self) -> None:
        """Resolving a secret that is not set names it and says how to add it."""

        with pytest.raises(PlanError, match="secret 'X' is not set"):
            resolve_secrets("${{ secrets.X }}", {})


class TestUnusedRunArgs:
    """Tokens that no step would see are an error, not silently dropped: old dstack dropped
    them, so `--gpus 2` (for `--gpu 2`) ran on no GPU without a word."""

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--gpus", "2"], "unknown option '--gpus'; did you mean '--gpu'?"),
            (["--ports", "2"], "unknown option '--ports'; did you mean '--port'?"),
            (["-i", "--memroy", "8GB"], "unknown option '--memroy'; did you mean '--memory'?"),
            (
                ["--epochs", "3"],
                "run args '--epochs 3' would be dropped: no step of 'left' uses ${{ run.args }}",
            ),
        ],
        ids=["gpus", "ports", "memroy", "no-close-option"],
    )
    def test_unused_tokens_are_an_error(self, pipeline: Workflows, argv: list[str], message: str) -> None:
        """A token no step uses names the closest option, or says it would be dropped, and how to pass it."""

        with pytest.raises(PlanError) as info:
            build_plan(pipeline, "left", argv)

        assert info.value.message == message
        assert info.value.hint == (
            "add ${{ run.args }} to a command of 'left', e.g. python train.py ${{ run.args }};"
            " options are listed in docs/workflows.md, section `dstack run` options"
        )

    def test_used_by_an_upstream(self) -> None:
        """Run args that an upstream step uses are fine, even when the target does not use them."""
        workflows = load_text(
            "workflows:\n"
            "  - name: prep\n    provider: bash\n    commands: ['echo ${{ run.args }}']\n"
            "  - name: train\n    provider: bash\n    commands: [echo train]\n    deps: [prep]\n"
        )

        plan = build_plan(workflows, "train", ["--gpus", "2"])

        assert plan.step("prep").commands == ["echo --gpus 2"]

    def test_provider_mode(self) -> None:
        """`dstack run bash -c CMD EXTRA` with no ${{ run.args }} in CMD is refused too."""

        with pytest.raises(PlanError, match="run args 'EXTRA' would be dropped: no step of 'bash' uses"):
            build_plan(None, "bash", ["-c", "echo hi", "EXTRA"])

    def test_docker_command_without_c(self) -> None:
        """`dstack run docker ubuntu echo hi` (the command without -c) says to give it with -c."""

        with pytest.raises(PlanError) as info:
            build_plan(None, "docker", ["ubuntu", "echo", "hi"])

        assert (info.value.message, info.value.hint) == (
            "run args 'echo hi' would be dropped: no step of 'docker' uses ${{ run.args }}",
            'give the command with -c, e.g. dstack run docker ubuntu -c "echo hi"',
        )


class TestProviderMode:
    """`dstack run PROVIDER ...` runs a provider without YAML, even with no .dstack folder."""

    def test_bash_command(self) -> None:
        """bash -c CMD is one step running CMD."""

        plan = build_plan(None, "bash", ["-c", "echo hi", "--gpu", "1"])

        assert [(s.name, s.provider, s.commands) for s in plan.steps] == [("bash", "bash", ["echo hi"])]
        assert plan.steps[0].resources.gpu == GpuRequest(count=1)

    def test_docker_image(self) -> None:
        """docker IMAGE -c CMD --entrypoint E sets image, commands and the split entrypoint."""

        step = build_plan(None, "docker", ["ubuntu:22.04", "-c", "echo hi", "--entrypoint", "sh -c"]).steps[0]

        assert (step.image, step.commands, step.entrypoint) == ("ubuntu:22.04", ["echo hi"], ["sh", "-c"])

    def test_lab(self) -> None:
        """lab needs nothing else: its step starts JupyterLab on the first port, which it adds."""

        step = build_plan(None, "lab", ["-p", "8000"]).steps[0]

        assert step.provider == "lab"
        assert [PortSpec(), PortSpec(port=8000)] == step.ports
        assert step.commands[-1].startswith('exec jupyter lab --no-browser --ip=127.0.0.1 --port="$PORT_0"')

    def test_workflow_name_wins_over_provider(self) -> None:
        """A workflow named like a provider is run as that workflow."""
        workflows = load_text("workflows:\n  - name: bash\n    provider: bash\n    commands: [echo mine]\n")

        assert build_plan(workflows, "bash", []).steps[0].commands == ["echo mine"]

    @pytest.mark.parametrize(
        ("target", "argv", "message"),
        [
            ("bash", [], "`dstack run bash` needs a command"),
            ("docker", [], "`dstack run docker` needs an IMAGE"),
            (
                "bash",
                ["-c", "echo ${{ run.nme }}"],
                "-c/--command: unknown name 'run.nme' in '${{', expected run.args, run.name or secrets.NAME; did you mean 'run.name'?",
            ),
            (
                "docker",
                ["ubuntu:${{ tag }}"],
                "IMAGE: unknown name 'tag' in '${{', expected run.args, run.name or secrets.NAME",
            ),
        ],
        ids=["bash", "docker", "command-interpolation", "image-interpolation"],
    )
    def test_missing_parts(self, target: str, argv: list[str], message: str) -> None:
        """bash without -c and docker without an image are plan errors."""

        with pytest.raises(PlanError) as info:
            build_plan(None, target, argv)

        assert info.value.message == message


class TestErrors:
    """Unknown targets, unknown upstreams and cycles are reported clearly."""

    def test_unknown_target(self, pipeline: Workflows) -> None:
        """The message is old dstack's, and the hint suggests the closest name."""

        with pytest.raises(UnknownWorkflowError) as info:
            build_plan(pipeline, "trian", [])

        assert (info.value.message, info.value.hint) == (
            "No workflow or provider 'trian' is found",
            "Did you mean 'train'?",
        )

    def test_unknown_target_suggests_the_name_as_written(self) -> None:
        """The suggestion keeps the name's capitals: 'TrainModel', not 'trainmodel'."""
        workflows = load_text("workflows:\n  - name: TrainModel\n    provider: bash\n    commands: [x]\n")

        with pytest.raises(UnknownWorkflowError) as info:
            build_plan(workflows, "TrainModle", [])

        assert info.value.hint == "Did you mean 'TrainModel'?"

    def test_unknown_target_far_from_any_name_lists_the_names(self, pipeline: Workflows) -> None:
        """With no close name, the hint lists the workflows there are (validate does not)."""

        with pytest.raises(UnknownWorkflowError) as info:
            build_plan(pipeline, "zzz", [])

        assert (
            info.value.hint
            == "workflows here: download, left, right, train; or a provider: bash, docker, code, lab, notebook"
        )

    def test_unknown_target_without_workflows(self) -> None:
        """With no .dstack folder, only providers can run."""

        with pytest.raises(UnknownWorkflowError, match="No workflow or provider 'train' is found"):
            build_plan(None, "train", [])

    def test_unknown_dep_is_located(self, tmp_path: Path) -> None:
        """An upstream that is not defined fails the plan at the dep's file:line:col."""
        (tmp_path / ".dstack" / "workflows").mkdir(parents=True)
        (tmp_path / ".dstack" / "workflows" / "a.yaml").write_text(
            "workflows:\n  - name: prep\n    provider: bash\n    commands: [x]\n"
            "  - name: train\n    provider: bash\n    commands: [x]\n    deps:\n      - workflow: perp\n"
        )
        workflows = load_workflows(tmp_path)

        with pytest.raises(SpecErrors) as info:
            build_plan(workflows, "train", [])

        assert [e.message for e in info.value.errors] == [
            ".dstack/workflows/a.yaml:9:9: workflows[1].deps[0]: unknown workflow 'perp' in deps; did you mean 'prep'?"
        ]

    def test_unknown_dep_never_suggests_the_workflow_itself(self) -> None:
        """A dep close to the workflow's own name gets no "did you mean" naming it (a self-cycle),
        in the YAML or in a --dep option."""
        text = "workflows:\n  - name: xgboost\n    provider: bash\n    commands: [x]\n    deps: {}\n"

        with pytest.raises(SpecErrors) as in_yaml:
            build_plan(load_text(text.format("[xgboost-env]")), "xgboost", [])
        with pytest.raises(PlanError) as in_option:
            build_plan(load_text(text.format("[]")), "xgboost", ["--dep", "xgboost-env"])

        assert [e.message for e in in_yaml.value.errors] == [
            "workflows.yaml:5:12: workflows[0].deps[0]: unknown workflow 'xgboost-env' in deps"
        ]
        assert in_option.value.message == "--dep: unknown workflow 'xgboost-env' in deps"

    def test_unknown_dep_elsewhere_does_not_block(self) -> None:
        """A workflow whose upstreams are all defined plans even if another one's dep is unknown."""
        workflows = load_text(
            "workflows:\n  - name: prep\n    provider: bash\n    commands: [x]\n"
            "  - name: train\n    provider: bash\n    commands: [x]\n    deps: [nope]\n"
        )

        plan = build_plan(workflows, "prep", [])

        assert [s.name for s in plan.steps] == ["prep"]

    def test_provider_mode_working_dir_climbs_out(self) -> None:
        """`dstack run bash -c CMD -w ../..` is refused before anything runs."""

        with pytest.raises(PlanError) as info:
            build_plan(None, "bash", ["-c", "ls", "-w", "../.."])

        assert info.value.message == (
            "-w/--working-dir: got '../..', which climbs out of the repo with '..', expected a folder inside it, e.g. 'src'"
        )

    def test_cycle_through_dep_override(self, pipeline: Workflows) -> None:
        """A --dep that closes a loop is a CycleError printing the loop."""

        with pytest.raises(CycleError) as info:
            build_plan(pipeline, "download", ["--dep", "left"])

        assert info.value.message == "deps form a cycle: download -> left -> download"


def _chain(n: int) -> Workflows:
    """Workflows w0 ... w{n-1}, each needing the one before."""
    text = "workflows:\n" + "".join(
        f"  - name: w{i}\n    provider: bash\n    commands: [x]\n" + (f"    deps: [w{i - 1}]\n" if i else "")
        for i in range(n)
    )
    return load_text(text)


def test_a_long_chain_of_deps_plans_in_order() -> None:
    """A chain of 3000 workflows (each needing the one before) plans every step in order, with no
    recursion limit hit."""
    n = 3000
    workflows = _chain(n)

    plan = build_plan(workflows, f"w{n - 1}", [])

    assert [s.name for s in plan.steps] == [f"w{i}" for i in range(n)]


def test_a_long_cycle_through_a_dep_override() -> None:
    """A --dep closing a loop over a long chain is a CycleError, not a recursion error."""
    n = 3000
    workflows = _chain(n)

    with pytest.raises(CycleError) as info:
        build_plan(workflows, "w0", ["--dep", f"w{n - 1}"])

    assert info.value.message.startswith(f"deps form a cycle: w0 -> w{n - 1} -> w{n - 2} -> ")
    assert info.value.message.endswith(" -> w1 -> w0")


def test_gpu_name_matches_as_described() -> None:
    """`gpu: {name: a100}` finds an "NVIDIA A100-SXM4-80GB" (part of the name, any case), as the
    schema's description of `name` and docs/workflows.md say."""
    from dstack_prefect.executors.local import Gpu, Machine, matching_gpus
    from dstack_prefect.spec import json_schema

    workflows = load_text(
        "workflows:\n  - name: t\n    provider: bash\n    commands: [x]\n    resources: {gpu: {name: a100}}\n"
    )
    machine = Machine(cpus=8, memory_mib=65536, gpus=(Gpu("0", "NVIDIA A100-SXM4-80GB", 81920),))
    described = json_schema()["definitions"]["Gpu"]["properties"]["name"]["description"]

    assert [g.index for g in matching_gpus(build_plan(workflows, "t", []).step("t"), machine)] == ["0"]
    assert described == "GPU name or part of it, any case: `A100` matches `NVIDIA A100-SXM4-80GB`"
