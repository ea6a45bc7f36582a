"""`dstack run`'s own options that travel among the override tokens: --rerun, --reuse, -t; and
the parser that hands `run` and `plan` their tokens as typed (``RunArgsCommand``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from typer._click.core import Context as ClickContext
from typer.core import TyperCommand

from dstack_prefect.errors import DstackError

#: Marks a token that click must not read as options (see ``RunArgsCommand``).
_SHIELD = "\x1f"


class RunArgsCommand(TyperCommand):
    """The parser of `dstack run` and `dstack plan`: their ARGS reach them as typed.

    Click reads ``-data`` as the flags ``-d -a -t -a`` when ``-d`` is one of the command's
    options (`dstack run train -data x` detached the run and dropped "-data"), and it drops a
    ``--``, after which every token is the script's (`run train -- -e 5` took ``-e 5`` as an env
    override). A single-dash word that is not exactly one of the command's options, a ``--``
    and everything after it are shielded from click and handed over whole (``unshield``)."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        shielded: list[str] = []
        rest = False
        for arg in args:
            rest = rest or arg == "--"
            word = rest or (len(arg) > 2 and arg[0] == "-" and arg[1] not in "-0123456789")
            shielded.append(_SHIELD + arg if word else arg)
        return super().parse_args(ctx, shielded)


def unshield(args: list[str]) -> list[str]:
    """The tokens as the user typed them (``RunArgsCommand`` marked some)."""
    return [a.removeprefix(_SHIELD) for a in args]


@dataclass
class RunOptions:
    rerun: str | list[str] | None = None
    """"all" for a bare --rerun, else the workflows named after it."""
    reuse: bool = False
    tag: str | None = None
    rest: list[str] = field(default_factory=list)
    """The tokens left for build_plan (overrides and run args)."""


def split_run_options(args: list[str], workflow_names: set[str]) -> RunOptions:
    """Take --rerun [W ...], --reuse and -t/--tag TAG out of ``args`` (before any `--`)."""
    opts = RunOptions()
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            opts.rest.extend(args[i:])
            break
        if tok == "--rerun":
            named: list[str] = []
            while i + 1 < len(args) and args[i + 1] in workflow_names:
                named.append(args[i + 1])
                i += 1
            if i + 1 < len(args):
                _refuse_near_miss(args[i + 1], workflow_names)
            opts.rerun = named or "all"
        elif tok == "--reuse":
            opts.reuse = True
        elif tok in ("-t", "--tag") or tok.startswith("--tag="):
            if "=" in tok:
                opts.tag = tok.split("=", 1)[1]
            elif i + 1 < len(args):
                opts.tag = args[i + 1]
                i += 1
            else:
                msg = "-t/--tag needs a tag name"
                raise DstackError(msg, hint="dstack run train -t my-model")
            from dstack_prefect.storage import check_tag_name  # noqa: PLC0415 - fsspec only with -t

            check_tag_name(opts.tag)  # refused before anything runs, not when the run ends
        else:
            opts.rest.append(tok)
        i += 1
    if opts.reuse and opts.rerun:
        msg = "--reuse and --rerun contradict each other"
        raise DstackError(msg, hint="pass one of them")
    return opts


def check_rerun_in_plan(opts: RunOptions, steps: list[str]) -> None:
    """``--rerun W`` for a W the run does not include would be silently ignored: W does not
    run at all. Refused, naming the run's steps (``steps``)."""
    if not isinstance(opts.rerun, list):
        return
    outside = [w for w in opts.rerun if w not in steps]
    if outside:
        w = outside[0]
        msg = f"--rerun {w}: '{w}' is not a step of this run (its steps: {', '.join(steps)})"
        hint = f"to run it: dstack run {w} --rerun; a run argument that is a workflow's name goes after --"
        raise DstackError(msg, hint=hint)


def _refuse_near_miss(token: str, workflow_names: set[str]) -> None:
    """A token after --rerun that is almost a workflow name is a typo, not a run argument:
    taken as an argument it would silently rerun everything."""
    close = difflib.get_close_matches(token, sorted(workflow_names), n=1, cutoff=0.75)
    if close and not token.startswith("-"):
        msg = f"--rerun: no workflow named '{token}'; did you mean '{close[0]}'?"
        hint = f"dstack run ... --rerun {close[0]} (other tokens after --rerun become run arguments)"
        raise DstackError(msg, hint=hint)
