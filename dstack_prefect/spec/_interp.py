"""`${{ ns.name }}` interpolation, dstack 0.7+ semantics made strict.

    ${{ run.args }}       leftover `dstack run` tokens, joined by spaces (quoted when needed)
    ${{ run.name }}       the run name
    ${{ secrets.NAME }}   kept as written; the executor injects the value when the step starts
    $$                    a literal `$`

In a key whose secrets are put in when the step starts (SECRET_KEYS), the plan keeps `$$` right
before `{{` (the plan travels as JSON; the step-start code must tell `$${{ secrets.X }}`, text,
from `${{ secrets.X }}`, a reference): there a run of 2k `$` before `{{` is k `$` of text, and
2k+1 is k `$` and a reference. Everywhere else in the plan `$$` is already `$`.

Unlike old dstack (which dropped unknown names silently), an unknown name or an unclosed `${{`
is an error, found when the files are validated.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

_NAME_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*$")
_PLAN_SECRET_RE = re.compile(r"(?<!\$)(\$+)\{\{(?:\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\})?")
_DOLLARS_BEFORE_BRACES = re.compile(r"\$+(?=\{\{)")
_TRAILING_DOLLARS = re.compile(r"\$+\Z")
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


def interpolate(text: str, *, run_args: list[str], run_name: str, secrets_put_in: bool = False) -> str:
    """Substitute ``run.*`` names and `$$`; keep ``secrets.*`` references as written.

    ``secrets_put_in``: ``text`` is a value of a key in SECRET_KEYS; the result is in the plan's
    form for such keys, which `secret_names` and `substitute_secrets` read: text `$` right before
    `{{` or before a reference stays doubled. A run arg is text there too, never a reference.

    Raises:
        ValueError: an unknown name or an unclosed `${{` (validation reports these first).
    """
    if "$" not in text:
        return text
    values = {"run.args": quote_args(run_args), "run.name": run_name}
    parts = [""]  # text, reference, text, reference, ..., text
    for tok in _tokens(text):
        if isinstance(tok, InterpolationProblem):
            raise ValueError(tok.message)
        if tok.literal is not None:
            parts[-1] += tok.literal
        elif tok.ref in values:
            parts[-1] += values[tok.ref]
        else:
            parts += [tok.raw, ""]
    if not secrets_put_in:
        return "".join(parts)
    last = len(parts) - 1
    return "".join(part if i % 2 else _escape_dollars(part, i < last) for i, part in enumerate(parts))


def _escape_dollars(text: str, before_ref: bool) -> str:
    """Text in the plan's form: each run of `$` before `{{` (or before a reference) doubled."""
    text = _DOLLARS_BEFORE_BRACES.sub(lambda m: m.group() * 2, text)
    return _TRAILING_DOLLARS.sub(lambda m: m.group() * 2, text) if before_ref else text


def secret_names(text: str) -> set[str]:
    """The NAMEs of every `${{ secrets.NAME }}` in ``text``, a plan value in SECRET_KEYS' form
    (`$${{ secrets.NAME }}` is text, not one)."""
    if "${{" not in text:
        return set()
    return {m.group(2) for m in _PLAN_SECRET_RE.finditer(text) if m.group(2) and len(m.group(1)) % 2}


def substitute_secrets(text: str, secrets: Mapping[str, str]) -> str:
    """``text``, a plan value in SECRET_KEYS' form, as the step sees it: each
    `${{ secrets.NAME }}` replaced with its value, each `$$` before `{{` made one `$`.

    Raises:
        KeyError: a referenced secret is not in ``secrets``.
    """

    def put_in(match: re.Match[str]) -> str:
        dollars, name = match.group(1), match.group(2)
        text = "$" * (len(dollars) // 2)
        if len(dollars) % 2 and name:
            return text + secrets[name]
        return text + ("$" if len(dollars) % 2 else "") + match.group()[len(dollars) :]

    return _PLAN_SECRET_RE.sub(put_in, text) if "{{" in text else text
