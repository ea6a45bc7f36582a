"""The table of bad workflow files: each with the exact located messages it must produce.

``schema=True`` marks problems that `dstack schema`'s JSON Schema rejects too
(tests/spec/test_schema.py); the others (YAML syntax, duplicates, unknown deps, cycles,
interpolation, paths that climb out deep inside) only the loader can see. The messages are
what `dstack validate` reports (`check_workflows`), unknown deps included.
"""

# ruff: noqa: E501 - golden messages are kept on one line so they can be compared by eye

from __future__ import annotations

from typing import NamedTuple

W = ".dstack/workflows.yaml"


class Case(NamedTuple):
    id: str
    files: dict[str, str]
    messages: list[str]
    schema: bool


def ONE(text: str) -> dict[str, str]:
    """A repo whose only workflow file is .dstack/workflows.yaml with ``text``."""
    return {W: text}


CASES = [
    Case(
        "syntax-error",
        ONE("workflows:\n  - name: a\n    provider: bash\n   commands: [x]\n"),
        [
            ".dstack/workflows.yaml:4:4: invalid YAML: did not find expected '-' indicator; expected '- ' at column 3 (the list that starts at line 2), or this line indented under the item above"
        ],
        schema=False,
    ),
    Case(
        "unclosed-bracket",
        ONE("workflows:\n  - name: a\n    commands: [x\n"),
        [
            ".dstack/workflows.yaml:3:17: invalid YAML: did not find expected ',' or ']' (for the '[' at line 3, column 15)"
        ],
        schema=False,
    ),
    Case(
        "tab-indent",
        ONE("workflows:\n\t- name: a\n"),
        [".dstack/workflows.yaml:2:1: invalid YAML: a tab character, expected spaces for indentation"],
        schema=False,
    ),
    Case(
        "undefined-alias",
        ONE(
            "x-res: &res {cpu: 1}\nworkflows:\n  - name: a\n    provider: bash\n    commands: [x]\n    resources: *rse\n"
        ),
        [
            ".dstack/workflows.yaml:6:16: invalid YAML: alias '*rse' names no anchor,"
            " expected an '&rse' defined above it; did you mean 'res'?"
        ],
        schema=False,
    ),
    Case(
        "empty-file",
        ONE(""),
        [".dstack/workflows.yaml:1:1: an empty file, expected a mapping with a 'workflows' list"],
        schema=True,
    ),
    Case(
        "only-comment",
        ONE("# nothing here\n"),
        [".dstack/workflows.yaml:1:1: an empty file, expected a mapping with a 'workflows' list"],
        schema=True,
    ),
    Case(
        "root-is-list",
        ONE("- name: a\n"),
        [
            ".dstack/workflows.yaml:1:1: got a list, expected a mapping with a 'workflows' list; put 'workflows:' on a line above the list"
        ],
        schema=True,
    ),
    Case(
        "root-is-scalar",
        ONE("hello\n"),
        [".dstack/workflows.yaml:1:1: got 'hello', expected a mapping with a 'workflows' list"],
        schema=True,
    ),
    Case(
        "missing-workflows",
        ONE("workflow:\n  - name: a\n"),
        [".dstack/workflows.yaml:1:1: unknown key 'workflow'; did you mean 'workflows'?"],
        schema=True,
    ),
    Case(
        "workflows-not-list",
        ONE("workflows:\n  name: a\n"),
        [
            ".dstack/workflows.yaml:2:3: workflows: got a mapping, expected a list of workflows; start each workflow with '- ', e.g. '  - name: a'"
        ],
        schema=True,
    ),
    Case(
        "workflows-null",
        ONE("workflows:\n"),
        [".dstack/workflows.yaml:1:11: workflows: got null, expected a list of workflows"],
        schema=True,
    ),
    Case(
        "item-not-mapping",
        ONE("workflows:\n  - train\n"),
        [".dstack/workflows.yaml:2:5: workflows[0]: got 'train', expected a mapping"],
        schema=True,
    ),
    Case(
        "missing-name",
        ONE("workflows:\n  - provider: bash\n    commands: [x]\n"),
        [".dstack/workflows.yaml:2:5: workflows[0]: missing key 'name', expected a name such as 'train'"],
        schema=True,
    ),
    Case(
        "missing-provider",
        ONE("workflows:\n  - name: a\n    commands: [x]\n"),
        [
            ".dstack/workflows.yaml:2:5: workflows[0]: missing key 'provider', expected one of bash, docker, code, lab, notebook"
        ],
        schema=True,
    ),
    Case(
        "unknown-provider-close",
        ONE("workflows:\n  - name: a\n    provider: bsh\n    commands: [x]\n"),
        [".dstack/workflows.yaml:3:15: workflows[0].provider: unknown provider 'bsh'; did you mean 'bash'?"],
        schema=True,
    ),
    Case(
        "unknown-provider-far",
        ONE("workflows:\n  - name: a\n    provider: kubernetes\n    commands: [x]\n"),
        [
            ".dstack/workflows.yaml:3:15: workflows[0].provider: unknown provider 'kubernetes', expected one of bash, docker, code, lab, notebook"
        ],
        schema=True,
    ),
    Case(
        "unknown-key-commands",
        ONE("workflows:\n  - name: a\n    provider: bash\n    comands: [x]\n"),
        [".dstack/workflows.yaml:4:5: workflows[0]: unknown key 'comands'; did you mean 'commands'?"],
        schema=True,
    ),
    Case(
        "unknown-key-no-match",
        ONE("workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n    zzz: 1\n"),
        [
            ".dstack/workflows.yaml:5:5: workflows[0]: unknown key 'zzz', expected one of name, provider, help, commands, setup, python, env, artifacts, deps, cache, ports, resources, working_dir, image, entrypoint, registry_auth, home_dir, ssh, version, inputs"
        ],
        schema=True,
    ),
    Case(
        "unknown-root-key",
        ONE("workflow:\n  - name: a\nworkflows: []\n"),
        [".dstack/workflows.yaml:1:1: unknown key 'workflow'; did you mean 'workflows'?"],
        schema=True,
    ),
    Case(
        "unknown-resources-key",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      gpus: 1\n"
        ),
        [".dstack/workflows.yaml:6:7: workflows[0].resources: unknown key 'gpus'; did you mean 'gpu'?"],
        schema=True,
    ),
    Case(
        "unknown-gpu-key",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      gpu:\n        cont: 2\n"
        ),
        [".dstack/workflows.yaml:7:9: workflows[0].resources.gpu: unknown key 'cont'; did you mean 'count'?"],
        schema=True,
    ),
    Case(
        "bash-without-commands",
        ONE("workflows:\n  - name: a\n    provider: bash\n"),
        [".dstack/workflows.yaml:2:5: workflows[0]: missing 'commands', which provider 'bash' requires"],
        schema=True,
    ),
    Case(
        "docker-without-image",
        ONE("workflows:\n  - name: a\n    provider: docker\n    commands: [x]\n"),
        [".dstack/workflows.yaml:2:5: workflows[0]: missing 'image', which provider 'docker' requires"],
        schema=True,
    ),
    Case(
        "name-not-string",
        ONE("workflows:\n  - name: [a]\n    provider: bash\n    commands: [x]\n"),
        [".dstack/workflows.yaml:2:11: workflows[0].name: got a list, expected a string"],
        schema=True,
    ),
    Case(
        "name-with-space",
        ONE("workflows:\n  - name: my train\n    provider: bash\n    commands: [x]\n"),
        [
            ".dstack/workflows.yaml:2:11: workflows[0].name: got 'my train', expected a name of letters, digits, '-', '_' and '.' that starts with a letter, digit or '_'"
        ],
        schema=True,
    ),
    Case(
        "commands-mapping",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands:\n      run: x\n"),
        [
            ".dstack/workflows.yaml:5:7: workflows[0].commands: got a mapping, expected a list of strings or one multi-line string"
        ],
        schema=True,
    ),
    Case(
        "command-item-int",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands:\n      - echo\n      - 42\n"),
        [".dstack/workflows.yaml:6:9: workflows[0].commands[1]: got 42, expected a string"],
        schema=True,
    ),
    Case(
        "cpu-string",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      cpu: many\n"
        ),
        [".dstack/workflows.yaml:6:12: workflows[0].resources.cpu: got 'many', expected an integer"],
        schema=True,
    ),
    Case(
        "cpu-zero",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      cpu: 0\n"
        ),
        [".dstack/workflows.yaml:6:12: workflows[0].resources.cpu: got 0, expected a number >= 1"],
        schema=True,
    ),
    Case(
        "memory-bad-unit",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      memory: 16 parsecs\n"
        ),
        [
            ".dstack/workflows.yaml:6:15: workflows[0].resources.memory: got '16 parsecs', expected a size such as '16GB', '512MiB' or '2Gi'"
        ],
        schema=True,
    ),
    Case(
        "memory-list",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      memory: [16GB]\n"
        ),
        [
            ".dstack/workflows.yaml:6:15: workflows[0].resources.memory: got a list, expected a size such as '16GB', '512MiB' or '2Gi'"
        ],
        schema=True,
    ),
    Case(
        "shm-size-bad",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      shm_size: big\n"
        ),
        [
            ".dstack/workflows.yaml:6:17: workflows[0].resources.shm_size: got 'big', expected a size such as '16GB', '512MiB' or '2Gi'"
        ],
        schema=True,
    ),
    Case(
        "gpu-memory-bad",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      gpu:\n        memory: lots\n"
        ),
        [
            ".dstack/workflows.yaml:7:17: workflows[0].resources.gpu.memory: got 'lots', expected a size such as '16GB', '512MiB' or '2Gi'"
        ],
        schema=True,
    ),
    Case(
        "gpu-string",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      gpu: two\n"
        ),
        [
            ".dstack/workflows.yaml:6:12: workflows[0].resources.gpu: got 'two', expected a GPU count or a mapping of count, name, memory"
        ],
        schema=True,
    ),
    Case(
        "gpu-negative",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      gpu: -1\n"
        ),
        [".dstack/workflows.yaml:6:12: workflows[0].resources.gpu.count: got -1, expected a number >= 1"],
        schema=True,
    ),
    Case(
        "interruptible-string",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    resources:\n      interruptible: maybe\n"
        ),
        [
            ".dstack/workflows.yaml:6:22: workflows[0].resources.interruptible: got 'maybe', expected true or false"
        ],
        schema=True,
    ),
    Case(
        "port-out-of-range",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    ports:\n      - 70000\n"
        ),
        [".dstack/workflows.yaml:6:9: workflows[0].ports[0].port: got 70000, expected a number <= 65535"],
        schema=True,
    ),
    Case(
        "port-bad-string",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    ports:\n      - web\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].ports[0]: got 'web', expected a port number or 'APP_PORT:LOCAL_PORT'"
        ],
        schema=True,
    ),
    Case(
        "ports-mapping",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    ports:\n      web: 80\n"
        ),
        [
            ".dstack/workflows.yaml:6:7: workflows[0].ports: got a mapping, expected a list of ports such as [8000, '7860:80']"
        ],
        schema=True,
    ),
    Case(
        "env-bad-name",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    env:\n      - 1BAD=x\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].env[0]: got variable name '1BAD', expected letters, digits and '_'"
        ],
        schema=True,
    ),
    Case(
        "env-scalar",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    env: A=1\n"),
        [
            ".dstack/workflows.yaml:5:10: workflows[0].env: got 'A=1', expected a list of 'NAME=VALUE' or a mapping"
        ],
        schema=True,
    ),
    Case(
        "python-bad",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    python: three\n"),
        [
            ".dstack/workflows.yaml:5:13: workflows[0].python: got 'three', expected a Python version such as '3.10'"
        ],
        schema=True,
    ),
    Case(
        "artifact-int",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    artifacts:\n      - 5\n"
        ),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].artifacts[0]: got 5, expected an artifact path or a mapping of path, mount"
        ],
        schema=True,
    ),
    Case(
        "artifact-unknown-key",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    artifacts:\n      - path: out\n        mnt: true\n"
        ),
        [".dstack/workflows.yaml:7:9: workflows[0].artifacts[0]: unknown key 'mnt'; did you mean 'mount'?"],
        schema=True,
    ),
    Case(
        "cache-missing-path",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    cache:\n      - mount: true\n"
        ),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].cache[0]: missing key 'path', expected a path such as 'output'",
            ".dstack/workflows.yaml:6:9: workflows[0].cache[0]: unknown key 'mount', expected 'path'",
        ],
        schema=True,
    ),
    Case(
        "dep-both",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    deps:\n      - workflow: a\n        tag: b\n"
        ),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].deps[0]: a dep needs exactly one of 'workflow' or 'tag', expected e.g. {workflow: prep}"
        ],
        schema=True,
    ),
    Case(
        "dep-int",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    deps:\n      - 3\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].deps[0]: got 3, expected 'NAME', ':TAG', or a mapping with workflow or tag"
        ],
        schema=True,
    ),
    Case(
        "entrypoint-unbalanced",
        ONE(
            'workflows:\n  - name: a\n    provider: docker\n    image: ubuntu\n    entrypoint: "sh -c \'echo"\n'
        ),
        [
            '.dstack/workflows.yaml:5:17: workflows[0].entrypoint: got "sh -c \'echo" (No closing quotation), expected a shell command line'
        ],
        schema=False,
    ),
    Case(
        "registry-auth-unknown",
        ONE(
            "workflows:\n  - name: a\n    provider: docker\n    image: ubuntu\n    registry_auth:\n      user: me\n"
        ),
        [
            ".dstack/workflows.yaml:6:7: workflows[0].registry_auth: unknown key 'user'; did you mean 'username'?"
        ],
        schema=True,
    ),
    Case(
        "duplicate-key",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    commands: [y]\n"),
        [".dstack/workflows.yaml:5:5: workflows[0].commands: duplicate key 'commands', first at line 4"],
        schema=False,
    ),
    Case(
        "duplicate-names-one-file",
        ONE(
            "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n  - name: a\n    provider: bash\n    commands: [y]\n"
        ),
        [
            ".dstack/workflows.yaml:5:11: workflows[1].name: duplicate workflow name 'a', first defined at .dstack/workflows.yaml:2"
        ],
        schema=False,
    ),
    Case(
        "duplicate-names-two-files",
        {
            ".dstack/workflows/a.yaml": "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n",
            ".dstack/workflows/b.yaml": "workflows:\n  - name: prep\n    provider: bash\n    commands: [x]\n  - name: train\n    provider: bash\n    commands: [y]\n",
        },
        [
            ".dstack/workflows/b.yaml:5:11: workflows[1].name: duplicate workflow name 'train', first defined at .dstack/workflows/a.yaml:2"
        ],
        schema=False,
    ),
    Case(
        "duplicate-names-first-has-errors",
        ONE(
            "workflows:\n  - name: a\n    provider: bash\n    comands: [x]\n  - name: a\n    provider: bash\n    commands: [y]\n"
        ),
        [
            ".dstack/workflows.yaml:4:5: workflows[0]: unknown key 'comands'; did you mean 'commands'?",
            ".dstack/workflows.yaml:5:11: workflows[1].name: duplicate workflow name 'a', first defined at .dstack/workflows.yaml:2",
        ],
        schema=False,
    ),
    Case(
        "duplicate-names-second-has-errors",
        ONE(
            "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n  - name: a\n    provider: bash\n    comands: [y]\n"
        ),
        [
            ".dstack/workflows.yaml:5:11: workflows[1].name: duplicate workflow name 'a', first defined at .dstack/workflows.yaml:2",
            ".dstack/workflows.yaml:7:5: workflows[1]: unknown key 'comands'; did you mean 'commands'?",
        ],
        schema=False,
    ),
    Case(
        "cycle-two",
        ONE(
            "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n    deps: [b]\n  - name: b\n    provider: bash\n    commands: [x]\n    deps:\n      - workflow: a\n"
        ),
        [".dstack/workflows.yaml:5:12: workflows[0].deps[0]: deps form a cycle: a -> b -> a"],
        schema=False,
    ),
    Case(
        "cycle-self",
        ONE("workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n    deps: [a]\n"),
        [".dstack/workflows.yaml:5:12: workflows[0].deps[0]: deps form a cycle: a -> a"],
        schema=False,
    ),
    Case(
        "unknown-run-name",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands:\n      - echo ${{ run.foo }}\n"),
        [
            ".dstack/workflows.yaml:5:14: workflows[0].commands[0]: unknown name 'run.foo' in '${{', expected run.args, run.name or secrets.NAME"
        ],
        schema=False,
    ),
    Case(
        "unknown-bare-name",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands:\n      - echo ${{ foo }}\n"),
        [
            ".dstack/workflows.yaml:5:14: workflows[0].commands[0]: unknown name 'foo' in '${{', expected run.args, run.name or secrets.NAME"
        ],
        schema=False,
    ),
    Case(
        "unclosed-interpolation",
        ONE("workflows:\n  - name: train\n    provider: bash\n    commands:\n      - echo ${{ run.args\n"),
        [".dstack/workflows.yaml:5:14: workflows[0].commands[0]: unclosed '${{', expected '}}' to close it"],
        schema=False,
    ),
    Case(
        "unknown-name-in-env",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n    env:\n      - A=${{ env.HOME }}\n"
        ),
        [
            ".dstack/workflows.yaml:6:11: workflows[0].env[0]: unknown name 'env.HOME' in '${{', expected run.args, run.name or secrets.NAME; for the environment variable HOME write $HOME"
        ],
        schema=False,
    ),
    Case(
        "unknown-name-quoted",
        ONE('workflows:\n  - name: train\n    provider: bash\n    commands:\n      - "echo ${{ args }}"\n'),
        [
            ".dstack/workflows.yaml:5:15: workflows[0].commands[0]: unknown name 'args' in '${{', expected run.args, run.name or secrets.NAME; did you mean 'run.args'?"
        ],
        schema=False,
    ),
    Case(
        "two-files-errors",
        {
            ".dstack/workflows/a.yaml": "workflows:\n  - name: a\n    provider: bsh\n",
            ".dstack/workflows/b.yaml": "workflows: {}\n",
        },
        [
            ".dstack/workflows/a.yaml:3:15: workflows[0].provider: unknown provider 'bsh'; did you mean 'bash'?",
            ".dstack/workflows/b.yaml:1:12: workflows: got a mapping, expected a list of workflows",
        ],
        schema=False,
    ),
]

BASH = "workflows:\n  - name: train\n    provider: bash\n    commands: [x]\n"
"""A valid bash workflow `train` (lines 1-4) to append keys to."""

CASES += [
    Case(
        "bash-empty-commands",
        ONE("workflows:\n  - name: a\n    provider: bash\n    commands: []\n"),
        [".dstack/workflows.yaml:2:5: workflows[0]: missing 'commands', which provider 'bash' requires"],
        schema=True,
    ),
    Case(
        "env-item-digit",
        ONE(BASH + "    env:\n      - 1A=2\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].env[0]: got variable name '1A', expected letters, digits and '_'"
        ],
        schema=True,
    ),
    Case(
        "env-every-bad-item",
        ONE(BASH + "    env:\n      - 1A=2\n      - OK=1\n      - 5\n      - B C=1\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].env[0]: got variable name '1A', expected letters, digits and '_'",
            ".dstack/workflows.yaml:8:9: workflows[0].env[2]: got 5, expected 'NAME=VALUE' or 'NAME'",
            ".dstack/workflows.yaml:9:9: workflows[0].env[3]: got variable name 'B C', expected letters, digits and '_'",
        ],
        schema=True,
    ),
    Case(
        "env-mapping-every-bad-entry",
        ONE(BASH + "    env:\n      1A: x\n      B: [1]\n      C: 2\n"),
        [
            ".dstack/workflows.yaml:6:7: workflows[0].env.1A: got variable name '1A', expected letters, digits and '_'",
            ".dstack/workflows.yaml:7:10: workflows[0].env.B: got a list for B, expected a string",
        ],
        schema=True,
    ),
    Case(
        "python-patch-version",
        ONE(BASH + '    python: "3.9.1"\n'),
        [
            ".dstack/workflows.yaml:5:13: workflows[0].python: got '3.9.1', expected a Python version such as '3.10'"
        ],
        schema=True,
    ),
    Case(
        "cpu-bool",
        ONE(BASH + "    resources:\n      cpu: true\n"),
        [".dstack/workflows.yaml:6:12: workflows[0].resources.cpu: got true, expected an integer"],
        schema=True,
    ),
    Case(
        "gpu-zero",
        ONE(BASH + "    resources:\n      gpu: 0\n"),
        [".dstack/workflows.yaml:6:12: workflows[0].resources.gpu.count: got 0, expected a number >= 1"],
        schema=True,
    ),
    Case(
        "gpu-count-zero",
        ONE(BASH + "    resources:\n      gpu:\n        count: 0\n"),
        [".dstack/workflows.yaml:7:16: workflows[0].resources.gpu.count: got 0, expected a number >= 1"],
        schema=True,
    ),
    Case(
        "gpu-count-bool",
        ONE(BASH + "    resources:\n      gpu:\n        count: true\n"),
        [".dstack/workflows.yaml:7:16: workflows[0].resources.gpu.count: got true, expected an integer"],
        schema=True,
    ),
    Case(
        "memory-zero",
        ONE(BASH + "    resources:\n      memory: 0GB\n"),
        [
            ".dstack/workflows.yaml:6:15: workflows[0].resources.memory: got '0GB', a size of zero, expected a size such as '16GB', '512MiB' or '2Gi'"
        ],
        schema=True,
    ),
    Case(
        "shm-size-zero",
        ONE(BASH + "    resources:\n      shm_size: 0\n"),
        [
            ".dstack/workflows.yaml:6:17: workflows[0].resources.shm_size: got 0, a size of zero, expected a size such as '16GB', '512MiB' or '2Gi'"
        ],
        schema=True,
    ),
    Case(
        "ports-zero",
        ONE(BASH + "    ports: 0\n"),
        [
            ".dstack/workflows.yaml:5:12: workflows[0].ports: got 0, expected a port count >= 1 or a list of ports"
        ],
        schema=True,
    ),
    Case(
        "interruptible-yes-string",
        ONE(BASH + '    resources:\n      interruptible: "yes"\n'),
        [
            ".dstack/workflows.yaml:6:22: workflows[0].resources.interruptible: got 'yes', expected true or false"
        ],
        schema=True,
    ),
    Case(
        "working-dir-climbs-out",
        ONE(BASH + "    working_dir: ../..\n"),
        [
            ".dstack/workflows.yaml:5:18: workflows[0].working_dir: got '../..', which climbs out of the repo with '..', expected a folder inside it, e.g. 'src'"
        ],
        schema=True,
    ),
    Case(
        "working-dir-climbs-out-midway",
        ONE(BASH + "    working_dir: src/../../x\n"),
        [
            ".dstack/workflows.yaml:5:18: workflows[0].working_dir: got 'src/../../x', which climbs out of the repo with '..', expected a folder inside it, e.g. 'src'"
        ],
        schema=False,
    ),
    Case(
        "working-dir-absolute",
        ONE(BASH + "    working_dir: /tmp\n"),
        [
            ".dstack/workflows.yaml:5:18: workflows[0].working_dir: got '/tmp', an absolute path, expected a folder relative to the repo root, e.g. 'src'"
        ],
        schema=True,
    ),
    Case(
        "artifact-climbs-out",
        ONE(BASH + '    artifacts: ["../x"]\n'),
        [
            ".dstack/workflows.yaml:5:17: workflows[0].artifacts[0].path: got '../x', which climbs out of the working folder with '..', expected a path inside it, or an absolute one"
        ],
        schema=True,
    ),
    Case(
        "artifact-mapping-climbs-out",
        ONE(BASH + "    artifacts:\n      - path: ./../x\n"),
        [
            ".dstack/workflows.yaml:6:15: workflows[0].artifacts[0].path: got './../x', which climbs out of the working folder with '..', expected a path inside it, or an absolute one"
        ],
        schema=True,
    ),
    Case(
        "artifact-whole-folder",
        ONE(BASH + "    artifacts: [.]\n"),
        [
            ".dstack/workflows.yaml:5:17: workflows[0].artifacts[0].path: got '.', the whole folder or filesystem root, expected a sub-folder, e.g. 'output'"
        ],
        schema=True,
    ),
    Case(
        "cache-climbs-out",
        ONE(BASH + "    cache:\n      - ../pip\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].cache[0].path: got '../pip', which climbs out of the working folder with '..', expected a path inside it, under '~', or an absolute one"
        ],
        schema=True,
    ),
    Case(
        "dep-listed-twice",
        ONE(
            "workflows:\n  - name: prep2\n    provider: bash\n    commands: [x]\n"
            "  - name: train\n    provider: bash\n    commands: [x]\n    deps:\n      - prep2\n      - workflow: prep2\n"
        ),
        [
            ".dstack/workflows.yaml:10:9: workflows[1].deps[1]: duplicate dep 'prep2', first at deps[0]; list each dep once"
        ],
        schema=False,
    ),
    Case(
        "unknown-dep",
        ONE(BASH + "    deps: [trian]\n"),
        [".dstack/workflows.yaml:5:12: workflows[0].deps[0]: unknown workflow 'trian' in deps"],
        schema=False,
    ),
    Case(
        "unknown-dep-among-other-errors",
        {
            ".dstack/workflows/a.yaml": BASH + "    deps: [prep, nope]\n",
            ".dstack/workflows/b.yaml": "workflows:\n  - name: prep\n    provider: bash\n    commands: [x]\n    zz: 1\n",
        },
        [
            ".dstack/workflows/a.yaml:5:18: workflows[0].deps[1]: unknown workflow 'nope' in deps",
            ".dstack/workflows/b.yaml:5:5: workflows[0]: unknown key 'zz', expected one of name, provider, help, commands, setup, python, env, artifacts, deps, cache, ports, resources, working_dir, image, entrypoint, registry_auth, home_dir, ssh, version, inputs",
        ],
        schema=False,
    ),
]

CASES += [
    Case(
        "interpolation-in-block-scalar",
        ONE(
            BASH.replace(
                "commands: [x]", "commands:\n      - |\n        echo ok\n        echo ${{ run.bad }}"
            )
        ),
        [
            ".dstack/workflows.yaml:7:14: workflows[0].commands[0]: unknown name 'run.bad' in '${{', expected run.args, run.name or secrets.NAME"
        ],
        schema=False,
    ),
    Case(
        "interpolation-in-multi-line-plain",
        ONE(BASH.replace("commands: [x]", "commands:\n      - echo a\n        b ${{ run.bad }}")),
        [
            ".dstack/workflows.yaml:6:11: workflows[0].commands[0]: unknown name 'run.bad' in '${{', expected run.args, run.name or secrets.NAME"
        ],
        schema=False,
    ),
    Case(
        "interpolation-after-an-escape",
        ONE(BASH.replace("commands: [x]", 'commands:\n      - "echo \\u00e9 ${{ run.bad }}"')),
        [
            ".dstack/workflows.yaml:5:22: workflows[0].commands[0]: unknown name 'run.bad' in '${{', expected run.args, run.name or secrets.NAME"
        ],
        schema=False,
    ),
    Case(
        "interpolation-second-of-two",
        ONE(
            BASH.replace(
                "commands: [x]", "commands:\n      - >-\n        a ${{ run.args }}\n        b ${{ run.nme }}"
            )
        ),
        [
            ".dstack/workflows.yaml:7:11: workflows[0].commands[0]: unknown name 'run.nme' in '${{', expected run.args, run.name or secrets.NAME; did you mean 'run.name'?"
        ],
        schema=False,
    ),
    Case(
        "recursive-alias",
        ONE("workflows: &w\n  - name: a\n    provider: bash\n    commands: [x]\n    deps: *w\n"),
        [
            ".dstack/workflows.yaml:5:5: invalid YAML: an alias inside its own anchor's value, expected an alias of a value defined before it"
        ],
        schema=False,
    ),
    Case(
        "nesting-too-deep",
        ONE(BASH + "    help: " + "[" * 150 + "]" * 150 + "\n"),
        [
            ".dstack/workflows.yaml:5:108: invalid YAML: nested more than 100 levels deep, expected a flatter file"
        ],
        schema=False,
    ),
    Case(
        "control-character",
        ONE(BASH + '    help: "caf\u00e9 \x00"\n'),
        [
            ".dstack/workflows.yaml:5:17: invalid YAML: control character #x0000 is not allowed, expected printable text"
        ],
        schema=False,
    ),
]

CASES += [
    Case(
        "ports-same-local-port-twice",
        ONE(BASH + '    ports: [8000, "8001:3000", "8002:3000", "9000:8000"]\n'),
        [
            ".dstack/workflows.yaml:5:32: workflows[0].ports[2]: duplicate local port 3000, first at ports[1]; give each port its own local port",
            ".dstack/workflows.yaml:5:45: workflows[0].ports[3]: duplicate local port 8000, first at ports[0]; give each port its own local port",
        ],
        schema=False,
    ),
    Case(
        "ports-same-port-twice",
        ONE(BASH + "    ports:\n      - 8000\n      - 8000\n"),
        [
            ".dstack/workflows.yaml:7:9: workflows[0].ports[1]: duplicate local port 8000, first at ports[0]; give each port its own local port"
        ],
        schema=False,
    ),
    Case(
        "port-string-zero",
        ONE(BASH + '    ports: ["0:80"]\n'),
        [".dstack/workflows.yaml:5:13: workflows[0].ports[0].port: got 0, expected a number >= 1"],
        schema=True,
    ),
    Case(
        "port-string-out-of-range",
        ONE(BASH + '    ports: ["8000:99999"]\n'),
        [
            ".dstack/workflows.yaml:5:13: workflows[0].ports[0].local_port: got 99999, expected a number <= 65535"
        ],
        schema=True,
    ),
    Case(
        "port-not-ascii-digits",
        ONE(BASH + '    ports: ["8000:\u00b2"]\n'),
        [
            ".dstack/workflows.yaml:5:13: workflows[0].ports[0]: got '8000:\u00b2', expected a port number or 'APP_PORT:LOCAL_PORT'"
        ],
        schema=True,
    ),
]

CASES += [
    Case(
        "cpu-numeric-string",
        ONE(BASH + '    resources:\n      cpu: "2"\n'),
        [".dstack/workflows.yaml:6:12: workflows[0].resources.cpu: got '2', expected an integer"],
        schema=True,
    ),
    Case(
        "gpu-count-numeric-string",
        ONE(BASH + '    resources:\n      gpu:\n        count: "2"\n'),
        [".dstack/workflows.yaml:7:16: workflows[0].resources.gpu.count: got '2', expected an integer"],
        schema=True,
    ),
    Case(
        "named-gpu-numeric-string",
        ONE(BASH + '    resources:\n      A100/gpu: "2"\n'),
        [".dstack/workflows.yaml:6:7: workflows[0].resources.gpu.count: got '2', expected an integer"],
        schema=True,
    ),
    Case(
        "named-gpu-without-name",
        ONE(BASH + "    resources:\n      /gpu: 2\n"),
        [
            ".dstack/workflows.yaml:6:7: workflows[0].resources: got key '/gpu', expected '<NAME>/gpu' with a GPU name, e.g. 'A100/gpu'"
        ],
        schema=True,
    ),
    Case(
        "port-mapping-numeric-string",
        ONE(BASH + '    ports:\n      - port: "80"\n'),
        [".dstack/workflows.yaml:6:15: workflows[0].ports[0].port: got '80', expected an integer"],
        schema=True,
    ),
    Case(
        "working-dir-absolute-after-spaces",
        ONE(BASH + '    working_dir: " /src"\n'),
        [
            ".dstack/workflows.yaml:5:18: workflows[0].working_dir: got ' /src', an absolute path, expected a folder relative to the repo root, e.g. 'src'"
        ],
        schema=True,
    ),
    Case(
        "artifact-climbs-out-after-spaces",
        ONE(BASH + '    artifacts: [" ../x"]\n'),
        [
            ".dstack/workflows.yaml:5:17: workflows[0].artifacts[0].path: got ' ../x', which climbs out of the working folder with '..', expected a path inside it, or an absolute one"
        ],
        schema=True,
    ),
    Case(
        "cache-climbs-out-with-trailing-space",
        ONE(BASH + '    cache: [".. "]\n'),
        [
            ".dstack/workflows.yaml:5:13: workflows[0].cache[0].path: got '.. ', which climbs out of the working folder with '..', expected a path inside it, under '~', or an absolute one"
        ],
        schema=True,
    ),
]

CASES += [
    Case(
        "gpu-and-named-gpu",
        ONE(BASH + "    resources:\n      gpu: 1\n      A100/gpu: 2\n"),
        [
            ".dstack/workflows.yaml:6:7: workflows[0].resources: more than one GPU request, expected one of 'gpu' or '<NAME>/gpu'"
        ],
        schema=True,
    ),
]

CASES += [
    Case(
        "unknown-root-key-no-match",
        ONE("on: push\n" + BASH),
        [
            ".dstack/workflows.yaml:1:1: unknown key 'on', expected 'workflows' (a key for shared settings to alias starts with 'x-', e.g. 'x-on')"
        ],
        schema=True,
    ),
    Case(
        "unknown-gpu-key-no-match",
        ONE(BASH + "    resources:\n      gpu:\n        vendor: nvidia\n"),
        [
            ".dstack/workflows.yaml:7:9: workflows[0].resources.gpu: unknown key 'vendor', expected one of count, name, memory"
        ],
        schema=True,
    ),
]

CASES += [
    Case(
        "interpolation-unquoted-in-flow-list",
        ONE(BASH.replace("commands: [x]", "commands: [echo ${{ run.args }}]")),
        [
            ".dstack/workflows.yaml:4:21: invalid YAML: did not find expected ',' or ']'; in [...] or {...} quote a string with '${{', e.g. [\"echo ${{ run.args }}\"]"
        ],
        schema=False,
    ),
]

# Found auditing "Workflow files" as a user: mistakes that loaded silently or read poorly.
CASES += [
    Case(
        "merge-key-of-a-number",
        ONE(BASH + "    <<: 5\n"),
        [
            ".dstack/workflows.yaml:5:9: workflows[0]: got 5 after '<<', expected a mapping (or a list of mappings) to merge, e.g. '<<: *base'"
        ],
        schema=False,
    ),
    Case(
        "merge-key-list-with-a-string",
        ONE(
            "workflows:\n  - &base\n    name: a\n    provider: bash\n    commands: [x]\n  - <<: [*base, oops]\n    name: b\n"
        ),
        [
            ".dstack/workflows.yaml:6:17: workflows[1]: got 'oops' after '<<', expected a mapping (or a list of mappings) to merge, e.g. '<<: *base'"
        ],
        schema=False,
    ),
]

CASES += [
    Case(
        "workflow-keys-at-the-top-level",
        ONE("name: train\nprovider: bash\ncommands: [x]\n"),
        [
            ".dstack/workflows.yaml:1:1: got a workflow's keys (name, provider, commands) at the top level, expected them in a list under 'workflows:', e.g. 'workflows:' then '  - name: train'"
        ],
        schema=True,
    ),
    Case(
        "anchor-holder-without-x-prefix",
        ONE("common: &common\n  provider: bash\n  commands: [x]\nworkflows:\n  - <<: *common\n    name: a\n"),
        [
            ".dstack/workflows.yaml:1:1: unknown key 'common', expected 'workflows' (a key for shared settings to alias starts with 'x-', e.g. 'x-common')"
        ],
        schema=True,
    ),
]

# A key at the wrong indentation names the block it belongs to.
CASES += [
    Case(
        "key-not-indented-under-resources",
        ONE(BASH + "    resources:\n    cpu: 2\n"),
        [
            ".dstack/workflows.yaml:5:15: workflows[0].resources: got null, expected a mapping of cpu, memory, gpu, shm_size, interruptible",
            ".dstack/workflows.yaml:6:5: workflows[0]: unknown key 'cpu'; it belongs under 'resources', indent it below 'resources:'",
        ],
        schema=True,
    ),
    Case(
        "key-not-indented-under-gpu",
        ONE(BASH + "    resources:\n      gpu:\n      count: 2\n"),
        [
            ".dstack/workflows.yaml:7:7: workflows[0].resources: unknown key 'count'; it belongs under 'gpu', indent it below 'gpu:'"
        ],
        schema=True,
    ),
    Case(
        "artifact-key-at-the-workflow-level",
        ONE(BASH + "    path: output\n"),
        [
            ".dstack/workflows.yaml:5:5: workflows[0]: unknown key 'path'; it belongs in an item of 'artifacts', e.g. 'artifacts: [{path: ...}]'"
        ],
        schema=True,
    ),
    Case(
        "workflow-key-indented-under-resources",
        ONE(BASH + "    resources:\n      cpu: 2\n      setup: [pip install -r requirements.txt]\n"),
        [
            ".dstack/workflows.yaml:7:7: workflows[0].resources: unknown key 'setup'; it is a key of the workflow, not of 'resources': indent it level with 'resources:'"
        ],
        schema=True,
    ),
    Case(
        "resources-key-indented-under-gpu",
        ONE(BASH + "    resources:\n      gpu:\n        count: 1\n        shm_size: 8GB\n"),
        [
            ".dstack/workflows.yaml:8:9: workflows[0].resources.gpu: unknown key 'shm_size'; it is a key of 'resources', not of 'gpu': indent it level with 'gpu:'"
        ],
        schema=True,
    ),
]

# `${{ ... }}` mistakes name the closest meant name.
CASES += [
    Case(
        "interpolation-near-misses",
        ONE(
            BASH.replace(
                "commands: [x]",
                'commands:\n      - "python x.py ${{ run.arg }}"\n      - echo ${{secret.HF_TOKEN}} ${{ run_name }}\n      - echo ${{ secrets.HF-TOKEN }} ${{ }}',
            )
        ),
        [
            ".dstack/workflows.yaml:5:22: workflows[0].commands[0]: unknown name 'run.arg' in '${{', expected run.args, run.name or secrets.NAME; did you mean 'run.args'?",
            ".dstack/workflows.yaml:6:14: workflows[0].commands[1]: unknown name 'secret.HF_TOKEN' in '${{', expected run.args, run.name or secrets.NAME; did you mean 'secrets.HF_TOKEN'?",
            ".dstack/workflows.yaml:6:35: workflows[0].commands[1]: unknown name 'run_name' in '${{', expected run.args, run.name or secrets.NAME; did you mean 'run.name'?",
            ".dstack/workflows.yaml:7:14: workflows[0].commands[2]: secret name 'HF-TOKEN' in '${{', expected letters, digits and '_', e.g. secrets.HF_TOKEN",
            ".dstack/workflows.yaml:7:38: workflows[0].commands[2]: an empty '${{ }}', expected run.args, run.name or secrets.NAME inside it",
        ],
        schema=False,
    ),
]

# One item where a list is expected says how to write the list.
CASES += [
    Case(
        "deps-one-name-not-a-list",
        ONE(BASH + "    deps: prep\n    artifacts: output\n    cache: ~/.cache/pip\n"),
        [
            ".dstack/workflows.yaml:5:11: workflows[0].deps: got 'prep', expected a list, e.g. [prep]",
            ".dstack/workflows.yaml:6:16: workflows[0].artifacts: got 'output', expected a list, e.g. [output]",
            ".dstack/workflows.yaml:7:12: workflows[0].cache: got '~/.cache/pip', expected a list, e.g. [~/.cache/pip]",
        ],
        schema=True,
    ),
    Case(
        "env-list-names-a-variable-twice",
        ONE(BASH + "    env:\n      - LR=0.1\n      - EPOCHS=3\n      - LR=0.2\n"),
        [
            ".dstack/workflows.yaml:8:9: workflows[0].env[2]: duplicate variable 'LR', first at env[0]; set each variable once"
        ],
        schema=False,
    ),
]

# YAML reads `- echo time: now` as a mapping: say so and how to quote it.
CASES += [
    Case(
        "command-with-colon-space",
        ONE(BASH.replace("commands: [x]", "commands:\n      - echo time: now\n      - python -c import os")),
        [
            ".dstack/workflows.yaml:5:9: workflows[0].commands[0]: got a mapping, expected a string; its ': ' made YAML read a mapping, quote the whole line: \"echo time: now\""
        ],
        schema=True,
    ),
]

# A workflow dep is NAME or owner/repo/NAME: one slash (or three) is neither.
CASES += [
    Case(
        "dep-with-one-slash",
        ONE(BASH + "    deps: [prep/data, {workflow: a/b/c/d}]\n"),
        [
            ".dstack/workflows.yaml:5:12: workflows[0].deps[0].workflow: got 'prep/data', expected a workflow NAME or owner/repo/NAME",
            ".dstack/workflows.yaml:5:34: workflows[0].deps[1].workflow: got 'a/b/c/d', expected a workflow NAME or owner/repo/NAME",
        ],
        schema=True,
    ),
]

CASES += [
    Case(
        "gpu-name-empty",
        ONE(BASH + "    resources:\n      gpu: {name: ''}\n"),
        [
            ".dstack/workflows.yaml:6:19: workflows[0].resources.gpu.name: got '', expected a GPU name such as 'A100'"
        ],
        schema=True,
    ),
]

# YAML syntax errors point where the mistake is and say how to fix it.
CASES += [
    Case(
        "unclosed-quote",
        ONE(BASH.replace("commands: [x]", 'commands: ["echo hi]\n    env: [A=1]')),
        [
            '.dstack/workflows.yaml:4:16: invalid YAML: a quoted string that is never closed, expected a closing " before the end of the file'
        ],
        schema=False,
    ),
    Case(
        "key-without-colon",
        ONE("workflows:\n  - name: train\n    provider bash\n    commands: [x]\n"),
        [".dstack/workflows.yaml:3:5: invalid YAML: a key with no ':' after it, expected 'provider: bash'"],
        schema=False,
    ),
    Case(
        "list-item-in-a-mapping",
        ONE("workflows:\n- name: a\n  provider: bash\n  commands: [x]\n  - name: b\n"),
        [
            ".dstack/workflows.yaml:5:3: invalid YAML: did not find expected key; expected a key at column 3 (the mapping that starts at line 2), check this line's indentation"
        ],
        schema=False,
    ),
]

# A list item under a plain line: YAML joins both into one string.
CASES += [
    Case(
        "list-item-under-a-plain-line",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands:\n      pip install -r requirements.txt\n      - python train.py\n"
        ),
        [
            ".dstack/workflows.yaml:6:7: workflows[0].commands: '- ' starts a line inside a multi-line string, so YAML read one string 'pip install -r requirements.txt - python train.py'; expected a list: start every item with '- ' at one indentation"
        ],
        schema=False,
    ),
]
CASES += [
    Case(
        "commands-as-unquoted-lines",
        ONE(
            "workflows:\n  - name: train\n    provider: bash\n    commands:\n      pip install -r requirements.txt\n      python train.py\n"
        ),
        [
            ".dstack/workflows.yaml:5:7: workflows[0].commands: 2 unquoted lines, which YAML joins into one command 'pip install -r requirements.txt python train.py'; expected one command per line: write 'commands: |' above them, or a list (for one long command, use '>')"
        ],
        schema=False,
    ),
]

# `${{ secrets.X }}` is put in only where the engine puts it in; elsewhere it stayed as written.
CASES += [
    Case(
        "secret-where-it-is-not-put-in",
        ONE(
            'workflows:\n  - name: a\n    provider: docker\n    image: "repo/app:${{ secrets.TAG }}"\n'
            '    working_dir: src\n    artifacts: ["out/${{ secrets.A }}"]\n'
            '    env: ["T=${{ secrets.T }}"]\n    commands: ["echo ${{ secrets.T }}"]\n'
        ),
        [
            ".dstack/workflows.yaml:4:22: workflows[0].image: '${{ secrets.TAG }}' is not put in here and would stay as written, expected secrets only in env, commands, setup, entrypoint and registry_auth",
            ".dstack/workflows.yaml:6:22: workflows[0].artifacts[0]: '${{ secrets.A }}' is not put in here and would stay as written, expected secrets only in env, commands, setup, entrypoint and registry_auth",
        ],
        schema=False,
    ),
]
CASES += [
    Case(
        "workflow-keys-at-the-top-level-beside-an-x-key",
        ONE("x-base: &b {provider: bash}\nname: train\n<<: *b\ncommands: [x]\n"),
        [
            ".dstack/workflows.yaml:2:1: got a workflow's keys (name, provider, commands) at the top level, expected them in a list under 'workflows:', e.g. 'workflows:' then '  - name: train'"
        ],
        schema=True,
    ),
]

# A problem inside an anchor that several workflows merge is one problem in the text: said once.
CASES += [
    Case(
        "problem-in-a-merged-anchor-said-once",
        ONE(
            'x-base: &b\n  provider: bash\n  commands: [x]\n  env: ["A=${{ bad }}"]\n  resources: {cpu: 0}\n'
            "workflows:\n  - <<: *b\n    name: a\n  - <<: *b\n    name: c\n"
        ),
        [
            ".dstack/workflows.yaml:4:12: x-base.env[0]: unknown name 'bad' in '${{', expected run.args, run.name or secrets.NAME",
            ".dstack/workflows.yaml:5:20: workflows[0].resources.cpu: got 0, expected a number >= 1",
        ],
        schema=False,
    ),
]
CASES += [
    Case(
        "env-list-item-written-as-a-mapping",
        ONE(BASH + "    env:\n      - LR: 0.1\n      - EPOCHS=3\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].env[0]: got a mapping, expected 'NAME=VALUE' or 'NAME'; write 'LR=0.1'"
        ],
        schema=True,
    ),
]
# `inputs` are paths of the repo's code: relative to the repo root, inside it.
CASES += [
    Case(
        "inputs-climbs-out",
        ONE(BASH + '    inputs: [src, "../shared/x.py"]\n'),
        [
            ".dstack/workflows.yaml:5:19: workflows[0].inputs[1]: got '../shared/x.py', which climbs out of the repo with '..', expected a path inside it, e.g. 'src'"
        ],
        schema=True,
    ),
    Case(
        "inputs-absolute",
        ONE(BASH + "    inputs:\n      - /etc/hosts\n"),
        [
            ".dstack/workflows.yaml:6:9: workflows[0].inputs[0]: got '/etc/hosts', an absolute path, expected a path relative to the repo root, e.g. 'src'"
        ],
        schema=True,
    ),
]
# Keys of other tools, other spellings and other cases name the key meant.
CASES += [
    Case(
        f"key-{key}",
        ONE(BASH + f"    {key}: {value}\n"),
        [f".dstack/workflows.yaml:5:5: workflows[0]: unknown key '{key}'; {meant}"],
        schema=True,
    )
    for key, value, meant in [
        ("environment", "[A=1]", "did you mean 'env'?"),
        ("enviroment", "[A=1]", "did you mean 'env'?"),
        ("setup_commands", "[x]", "did you mean 'setup'?"),
        ("ENV", "[A=1]", "did you mean 'env'?"),
        ("PORTS", "[8000]", "did you mean 'ports'?"),
        ("spot", "true", "it belongs under 'resources' as 'interruptible', indent it below 'resources:'"),
        ("shm-size", "1GB", "it belongs under 'resources' as 'shm_size', indent it below 'resources:'"),
        ("shmsize", "1GB", "it belongs under 'resources' as 'shm_size', indent it below 'resources:'"),
        ("GPU", "1", "it belongs under 'resources' as 'gpu', indent it below 'resources:'"),
    ]
]
CASES += [
    Case(
        "resources-key-in-upper-case",
        ONE(BASH + "    resources: {GPU: 1}\n"),
        [".dstack/workflows.yaml:5:17: workflows[0].resources: unknown key 'GPU'; did you mean 'gpu'?"],
        schema=True,
    ),
    Case(
        "resources-spot",
        ONE(BASH + "    resources:\n      spot: true\n"),
        [
            ".dstack/workflows.yaml:6:7: workflows[0].resources: unknown key 'spot'; did you mean 'interruptible'?"
        ],
        schema=True,
    ),
    Case(
        "unknown-dep-close-to-its-own-name",
        ONE(
            "workflows:\n  - name: xgboost\n    provider: bash\n    commands: [x]\n    deps: [xgboost-env]\n"
        ),
        [".dstack/workflows.yaml:5:12: workflows[0].deps[0]: unknown workflow 'xgboost-env' in deps"],
        schema=False,
    ),
]
# Artifacts and cache are sub-folders: never the whole working folder, filesystem root or home.
CASES += [
    Case(
        f"{key}-whole-{name}",
        ONE(BASH + f"    {key}: [{path}]\n"),
        [
            f".dstack/workflows.yaml:5:{len(key) + 8}: workflows[0].{key}[0].path: got {path.strip(chr(34))!r}, the whole {what}, expected a sub-folder, e.g. {example!r}"
        ],
        schema=True,
    )
    for key, example in [("artifacts", "output"), ("cache", "~/.cache/pip")]
    for name, path, what in [
        ("dot", '"."', "folder or filesystem root"),
        ("root", "/", "folder or filesystem root"),
        ("home", '"~"', "home folder"),
        ("home-slash", '"~/"', "home folder"),
    ]
    if (key, name) != ("artifacts", "dot")  # "artifact-whole-folder" above
]
CASES += [
    Case(
        "home-dir-relative",
        ONE(
            "workflows:\n  - name: a\n    provider: docker\n    image: ubuntu\n    home_dir: relative/path\n"
        ),
        [
            ".dstack/workflows.yaml:5:15: workflows[0].home_dir: got 'relative/path', expected an absolute path in the container, e.g. '/root'"
        ],
        schema=True,
    ),
    Case(
        "working-dir-under-home",
        ONE(BASH + "    working_dir: ~/x\n"),
        [
            ".dstack/workflows.yaml:5:18: workflows[0].working_dir: got '~/x', but '~' is not the home folder here, expected a folder relative to the repo root, e.g. 'src'"
        ],
        schema=True,
    ),
    Case(
        "port-mapping-without-port",
        ONE(BASH + "    ports: [{local_port: 90}, {}]\n"),
        [
            ".dstack/workflows.yaml:5:13: workflows[0].ports[0]: missing key 'port', expected the port the app listens on, e.g. {port: 8000, local_port: 3000}",
            ".dstack/workflows.yaml:5:31: workflows[0].ports[1]: missing key 'port', expected the port the app listens on, e.g. {port: 8000, local_port: 3000}",
        ],
        schema=True,
    ),
]
CASES += [
    Case(
        "image-with-a-space",
        ONE("workflows:\n  - name: a\n    provider: docker\n    image: ubuntu 22.04\n"),
        [
            ".dstack/workflows.yaml:4:12: workflows[0].image: got 'ubuntu 22.04', expected a Docker image such as 'ubuntu:22.04'"
        ],
        schema=True,
    ),
]
CASES += [
    Case(
        "dep-listed-twice-through-the-repo-prefix",
        ONE(
            "workflows:\n  - name: a\n    provider: bash\n    commands: [x]\n"
            '  - name: b\n    provider: bash\n    commands: [x]\n    deps: [a, "owner/repo/a"]\n'
        ),
        [
            ".dstack/workflows.yaml:8:15: workflows[1].deps[1]: duplicate dep 'owner/repo/a', first at deps[0] (the repo prefix is ignored: it is 'a'); list each dep once"
        ],
        schema=False,
    ),
]
CASES += [  # every problem in one pass: a key that fails does not hide the whole-workflow checks
    Case(
        "type-error-beside-duplicate-ports-and-deps",
        ONE(
            "workflows:\n  - name: a\n    provider: bash\n    commands: [echo]\n"
            '    ports: [8000, 8000]\n    deps: [":v1", {tag: v1}]\n    help: 1\n'
        ),
        [
            ".dstack/workflows.yaml:5:19: workflows[0].ports[1]: duplicate local port 8000, first at ports[0]; give each port its own local port",
            ".dstack/workflows.yaml:6:19: workflows[0].deps[1]: duplicate dep ':v1', first at deps[0]; list each dep once",
            ".dstack/workflows.yaml:7:11: workflows[0].help: got 1, expected a string",
        ],
        schema=True,
    ),
    Case(
        "bad-name-and-unknown-key-beside-duplicate-ports",
        ONE(
            "workflows:\n  - name: my train\n    provider: bash\n    commands: [echo]\n"
            "    ports: [8000, 8000]\n    comands: [x]\n"
        ),
        [
            ".dstack/workflows.yaml:2:11: workflows[0].name: got 'my train', expected a name of letters, digits, '-', '_' and '.' that starts with a letter, digit or '_'",
            ".dstack/workflows.yaml:5:19: workflows[0].ports[1]: duplicate local port 8000, first at ports[0]; give each port its own local port",
            ".dstack/workflows.yaml:6:5: workflows[0]: unknown key 'comands'; did you mean 'commands'?",
        ],
        schema=True,
    ),
    Case(
        "type-error-beside-missing-commands",
        ONE("workflows:\n  - name: a\n    provider: bash\n    help: 1\n"),
        [
            ".dstack/workflows.yaml:2:5: workflows[0]: missing 'commands', which provider 'bash' requires",
            ".dstack/workflows.yaml:4:11: workflows[0].help: got 1, expected a string",
        ],
        schema=True,
    ),
    Case(
        "bad-commands-are-not-also-missing",
        ONE("workflows:\n  - name: a\n    provider: bash\n    commands: {run: x}\n    ports: [80, 80]\n"),
        [
            ".dstack/workflows.yaml:4:15: workflows[0].commands: got a mapping, expected a list of strings or one multi-line string",
            ".dstack/workflows.yaml:5:17: workflows[0].ports[1]: duplicate local port 80, first at ports[0]; give each port its own local port",
        ],
        schema=True,
    ),
    Case(
        "bad-provider-beside-duplicate-deps",
        ONE(
            "workflows:\n  - name: a\n    provider: bsh\n    deps: [b, b]\n  - name: b\n    provider: bash\n    commands: [x]\n"
        ),
        [
            ".dstack/workflows.yaml:3:15: workflows[0].provider: unknown provider 'bsh'; did you mean 'bash'?",
            ".dstack/workflows.yaml:4:15: workflows[0].deps[1]: duplicate dep 'b', first at deps[0]; list each dep once",
        ],
        schema=True,
    ),
]
CASES += [
    Case(
        "duplicate-ports-and-duplicate-deps",
        ONE(BASH + "    ports: [8000, 8000]\n    deps: [':v1', ':v1']\n"),
        [
            ".dstack/workflows.yaml:5:19: workflows[0].ports[1]: duplicate local port 8000, first at ports[0]; give each port its own local port",
            ".dstack/workflows.yaml:6:19: workflows[0].deps[1]: duplicate dep ':v1', first at deps[0]; list each dep once",
        ],
        schema=False,
    ),
]
CASES += [  # a name of the right characters that starts with another: the message says how it starts
    Case(
        "name-starts-with-a-dash",
        ONE("workflows:\n  - name: -dash\n    provider: bash\n    commands: [x]\n"),
        [
            ".dstack/workflows.yaml:2:11: workflows[0].name: got '-dash', expected a name of letters, digits, '-', '_' and '.' that starts with a letter, digit or '_'"
        ],
        schema=True,
    ),
    Case(
        "name-starts-with-dots",
        ONE("workflows:\n  - name: ..dots\n    provider: bash\n    commands: [x]\n"),
        [
            ".dstack/workflows.yaml:2:11: workflows[0].name: got '..dots', expected a name of letters, digits, '-', '_' and '.' that starts with a letter, digit or '_'"
        ],
        schema=True,
    ),
]
