"""`dstack run WORKFLOW [ARGS...]`: the provider options that override the YAML.

Parsed like old dstack (`parse_known_args`): known options override the target workflow, every
other token becomes ``${{ run.args }}``. Provider mode (`dstack run bash -c CMD`, `dstack run
docker IMAGE`) adds `-c/--command`, and for docker the IMAGE and `--entrypoint`.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from dstack_prefect.errors import PlanError


class _Parser(argparse.ArgumentParser):
    argv: list[str]

    def error(self, message: str) -> NoReturn:
        missing = re.fullmatch(r"argument (\S+): expected one argument", message)
        msg = f"{missing.group(1)}: expected a value after it" if missing else f"dstack run: {message}"
        if missing:
            msg += self._dashed_value(missing.group(1).split("/"))
        raise PlanError(msg, hint="see docs/workflows.md, section `dstack run` options")

    def _dashed_value(self, names: list[str]) -> str:
        """``, got '-1GB', ...`` when the token after the option starts with '-' (argparse takes
        it for an option, and says the value is missing)."""
        for i, token in enumerate(self.argv[:-1]):
            after = self.argv[i + 1]
            if token in names and after.startswith("-") and after != "--":
                return f", got '{after}', which starts with '-' (write {token}={after} if that is the value)"
        return ""


def _count(option: str, example: str) -> Callable[[str], int]:
    """An argparse type for a whole-number option, whose error reads like the other options'
    (argparse's own says "invalid int value")."""

    def parse(value: str) -> int:
        try:
            return int(value)
        except ValueError:
            msg = f"{option}: got {value!r}, expected a whole number such as {example}"
            raise PlanError(msg, hint=f"e.g. dstack run WORKFLOW {option} {example}") from None

    return parse


@dataclass
class RunOptions:
    """The parsed override options and the leftover run args."""

    env: list[str] = field(default_factory=list)
    artifacts: list[str] | None = None
    deps: list[str] | None = None
    working_dir: str | None = None
    interruptible: bool = False
    cpu: int | None = None
    memory: str | None = None
    gpu: int | None = None
    gpu_name: str | None = None
    gpu_memory: str | None = None
    shm_size: str | None = None
    ports: list[str] = field(default_factory=list)
    requirements: str | None = None
    ssh: bool = False
    commands: list[str] = field(default_factory=list)
    image: str | None = None
    entrypoint: str | None = None
    run_args: list[str] = field(default_factory=list)


def _parser(provider_mode: str | None) -> _Parser:
    p = _Parser(prog="dstack run", add_help=False, allow_abbrev=False)
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("-a", "--artifact", action="append", dest="artifacts")
    p.add_argument("--dep", action="append", dest="deps")
    p.add_argument("-w", "--working-dir")
    p.add_argument("-i", "--interruptible", action="store_true")
    p.add_argument("--cpu", type=_count("--cpu", "4"))
    p.add_argument("--memory")
    p.add_argument("--gpu", type=_count("--gpu", "1"))
    p.add_argument("--gpu-name")
    p.add_argument("--gpu-memory")
    p.add_argument("--shm-size")
    p.add_argument("-p", "--port", action="append", dest="ports", default=[])
    p.add_argument("-r", "--requirements")
    p.add_argument("--ssh", action="store_true")
    if provider_mode in ("bash", "docker"):
        p.add_argument("-c", "--command", action="append", dest="commands", default=[])
    if provider_mode == "docker":
        p.add_argument("image", nargs="?")
        p.add_argument("--entrypoint")
    return p


def option_names(provider_mode: str | None = None) -> list[str]:
    """Every override option `dstack run` takes (in provider mode ``provider_mode``'s too)."""
    return sorted(_parser(provider_mode)._option_string_actions)


def parse_run_args(argv: list[str], *, provider_mode: str | None = None) -> RunOptions:
    """Split ``argv`` into override options and leftover run args.

    Raises:
        PlanError: an option is malformed (e.g. `--cpu many`).
    """
    parser = _parser(provider_mode)
    parser.argv = list(argv)
    namespace, rest = parser.parse_known_args(list(argv))
    if "--" in rest:  # the separator itself is not the script's: `-- --lr 0.1` gives `--lr 0.1`
        rest.remove("--")
    return RunOptions(**vars(namespace), run_args=rest)
