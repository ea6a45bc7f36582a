"""`${{ ns.name }}` interpolation, dstack 0.7+ semantics made strict.

    ${{ run.args }}       leftover `dstack run` tokens, joined by spaces (quoted when needed)
    ${{ run.name }}       the run name
    ${{ secrets.NAME }}   kept as written; the executor injects the value when the step starts
    $$                    a literal `$`

Unlike old dstack (which dropped unknown names silently), an unknown name or an unclosed `${{`
is an error, found when the files are validated.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_NAME_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*$")
_SECRET_RE = re.compile(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
RUN_NAMES = ("run.args", "run.name")
KNOWN = "run.args, run.name or secrets.NAME"


@dataclass(frozen=True)
class InterpolationProblem:
    """One bad `${{ ... }}` in a string: what is wrong and at which offset."""

    offset: int
    message: str


@dataclass(frozen=True)
class _Token:
    offset: int
    literal: str | None = None  # plain text (with `$$` already turned into `$`)
    ref: str | None = None  # "run.args", "secrets.X", ...
    raw: str = ""  # the `${{ ... }}` text as written


def _tokens(text: str) -> Iterator[_Token | InterpolationProblem]:
    i, start, n = 0, 0, len(text)
    buf: list[str] = []
    while i < n:
        j = text.find("$", i)
        if j < 0:
            break
        if text.startswith("$$", j):
            buf.append(text[i:j] + "$")
            i = j + 2
            continue
        if not text.startswith("${{", j):
            buf.append(text[i : j + 1])
            i = j + 1
            continue
        buf.append(text[i:j])
        end = text.find("}}", j + 3)
        if end < 0:
            yield InterpolationProblem(j, "unclosed '${{', expected '}}' to close it")
            return
        if buf:
            yield _Token(start, literal="".join(buf))
            buf = []
        inner = text[j + 3 : end]
        match = _NAME_RE.match(inner)
        name = f"{match.group(1)}.{match.group(2)}" if match else inner.strip()
        if match is None or (name not in RUN_NAMES and match.group(1) != "secrets"):
            yield InterpolationProblem(j, _unknown(name))
        else:
            yield _Token(j, ref=name, raw=text[j : end + 2])
        i = start = end + 2
    buf.append(text[i:])
    joined = "".join(buf)
    if joined:
        yield _Token(start, literal=joined)


def _unknown(name: str) -> str:
    """The message for a name that is not run.args, run.name or secrets.NAME, with the closest."""
    if not name:
        return f"an empty '${{{{ }}}}', expected {KNOWN} inside it"
    ns, _, rest = name.partition(".")
    if ns == "secrets" and rest:
        return f"secret name {rest!r} in '${{{{', expected letters, digits and '_', e.g. secrets.HF_TOKEN"
    message = f"unknown name '{name}' in '${{{{', expected {KNOWN}"
    if ns == "env" and rest:
        return f"{message}; for the environment variable {rest} write ${rest}"
    bare = f"run.{name.lower()}"  # `${{ args }}`
    close = (
        [bare] if bare in RUN_NAMES else difflib.get_close_matches(name.lower(), RUN_NAMES, n=1, cutoff=0.75)
    )
    if close:
        return f"{message}; did you mean '{close[0]}'?"
    if rest and difflib.get_close_matches(ns.lower(), ["secrets"], n=1):
        return f"{message}; did you mean 'secrets.{rest}'?"
    return message


def check(text: str) -> list[InterpolationProblem]:
    """Every problem with the `${{ ... }}` references in ``text`` (empty when fine)."""
    if "$" not in text:
        return []
    return [t for t in _tokens(text) if isinstance(t, InterpolationProblem)]


SECRET_KEYS = (
    "env",
    "commands",
    "setup",
    "before_run",
    "requirements",
    "entrypoint",
    "registry_auth",
    "help",
)
"""The workflow keys where `${{ secrets.X }}` is put in when the step starts (`help` is never used)."""


def misplaced_secrets(text: str) -> list[InterpolationProblem]:
    """Each `${{ secrets.X }}` in ``text``, a string of a key not in SECRET_KEYS, where it would
    stay as written."""
    if "${{" not in text:
        return []
    return [
        InterpolationProblem(
            t.offset,
            f"'{t.raw}' is not put in here and would stay as written,"
            " expected secrets only in env, commands, setup, entrypoint and registry_auth",
        )
        for t in _tokens(text)
        if isinstance(t, _Token) and t.ref is not None and t.ref.startswith("secrets.")
    ]


def uses_run_args(text: str) -> bool:
    """Whether ``text`` holds a `${{ run.args }}` (`$${{ run.args }}` is a literal, not one)."""
    return "${{" in text and any(isinstance(t, _Token) and t.ref == "run.args" for t in _tokens(text))


def quote_args(args: list[str]) -> str:
    """Join run args the way old dstack did: tokens with spaces are wrapped in escaped quotes."""
    out = []
    for arg in args:
        if " " in arg:
            escaped = arg.replace('"', '\\"')
            out.append(f'"{escaped}"')
        else:
            out.append(arg)
    return " ".join(out)


def interpolate(text: str, *, run_args: list[str], run_name: str) -> str:
    """Substitute ``run.*`` names and `$$`; keep ``secrets.*`` references as written.

    Raises:
        ValueError: an unknown name or an unclosed `${{` (validation reports these first).
    """
    if "$" not in text:
        return text
    values = {"run.args": quote_args(run_args), "run.name": run_name}
    out: list[str] = []
    for tok in _tokens(text):
        if isinstance(tok, InterpolationProblem):
            raise ValueError(tok.message)
        if tok.literal is not None:
            out.append(tok.literal)
        elif tok.ref in values:
            out.append(values[tok.ref])
        else:
            out.append(tok.raw)
    return "".join(out)


def secret_names(text: str) -> set[str]:
    """The NAMEs of every `${{ secrets.NAME }}` in ``text``."""
    return set(_SECRET_RE.findall(text)) if "${{" in text else set()


def substitute_secrets(text: str, secrets: Mapping[str, str]) -> str:
    """Replace each `${{ secrets.NAME }}` with its value.

    Raises:
        KeyError: a referenced secret is not in ``secrets``.
    """
    return _SECRET_RE.sub(lambda m: secrets[m.group(1)], text) if "${{" in text else text
