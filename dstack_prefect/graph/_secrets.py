"""`${{ secrets.NAME }}` references: which a step uses, and their values at step start.

Plans never hold secret values; the executor calls `resolve_secrets` on each string it is about
to use (env values, commands, registry credentials) just before the step starts, also when the
step uses no secret: in those keys the plan keeps `$${{` (text) apart from `${{` (a reference).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dstack_prefect.errors import PlanError
from dstack_prefect.graph._plan import Step
from dstack_prefect.spec._interp import secret_names, substitute_secrets

SECRETS_PUT_IN = ("env", "commands", "setup", "entrypoint", "registry_auth")
"""The step keys whose `${{ secrets.X }}` the step-start code puts in. The plan keeps them in
the form `resolve_secrets` reads (`$${{` stays, so escaped text is not read as a reference)."""


def strings(value: Any) -> Iterator[str]:
    """Every string in ``value``, a string or a list or dict of them (nested)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)


def secret_refs(step: Step) -> set[str]:
    """The NAMEs of every `${{ secrets.NAME }}` anywhere in ``step``."""
    names: set[str] = set()
    for text in strings(step.model_dump(include=set(SECRETS_PUT_IN))):
        names |= secret_names(text)
    return names


def resolve_secrets(text: str, secrets: Mapping[str, str]) -> str:
    """``text``, a plan value of a key whose secrets are put in (env, commands, ...), as the step
    sees it: each `${{ secrets.NAME }}` replaced by its value, and `$${{` (text) made `${{`.

    Raises:
        PlanError: a referenced secret is not in ``secrets``.
    """
    try:
        return substitute_secrets(text, secrets)
    except KeyError as exc:
        name = exc.args[0]
        msg = f"secret '{name}' is not set"
        raise PlanError(msg, hint=f"add it with `dstack secrets add {name} VALUE`") from None
