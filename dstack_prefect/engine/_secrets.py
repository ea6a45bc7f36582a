"""`dstack secrets`: secret values kept on the Prefect server as Secret blocks.

A secret NAME (an environment-variable name) is the Secret block ``dstack-secret-<name>`` (lower
case, ``_`` as ``-``): Prefect stores block data encrypted and shows the block in its UI, and a
run started by a worker through the Prefect API reads it as a run started by `dstack run` does.
At step start a ``${{ secrets.NAME }}`` reference takes ``DSTACK_SECRET_NAME`` from the
environment that started the run first, then the block. Scope: the Prefect server (old dstack
kept them per repo). Values never enter a plan, a log line (they are masked) or the store.

REST only (no prefect import): the CLI stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from dstack_prefect.engine._api import PrefectAPI
from dstack_prefect.errors import DstackError, ServerError
from dstack_prefect.graph import Step, resolve_secrets, secret_refs

PREFIX = "dstack-secret-"
BLOCK_TYPE = "secret"
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class SecretRow:
    name: str
    updated: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "updated": self.updated.isoformat() if self.updated else None}


def secret_env_name(name: str) -> str:
    """The variable that carries secret ``name``: read from the environment that starts a run
    (before the block), and set for a step whose commands reference the secret."""
    return f"DSTACK_SECRET_{name}"


def block_name(name: str) -> str:
    """The Secret block that holds secret ``name``."""
    if not NAME_RE.match(name):
        msg = f"'{name}' is not a valid secret name: use letters, digits and _, not starting with a digit"
        raise DstackError(msg, hint="for example: dstack secrets add HF_TOKEN")
    return PREFIX + name.lower().replace("_", "-")


def secret_name(block: str) -> str:
    return block.removeprefix(PREFIX).replace("-", "_").upper()


class Secrets:
    """Secrets on one Prefect server."""

    def __init__(self, api: PrefectAPI) -> None:
        self.api = api

    def _block(self, name: str, *, values: bool = False) -> dict[str, Any] | None:
        path = f"/block_types/slug/{BLOCK_TYPE}/block_documents/name/{quote(block_name(name))}"
        doc: dict[str, Any] | None = self.api.call("GET", path + ("?include_secrets=true" if values else ""))
        return doc

    def list(self) -> list[SecretRow]:
        body = {
            "block_types": {"slug": {"any_": [BLOCK_TYPE]}},
            "block_documents": {"name": {"like_": f"{PREFIX}%"}},
            "limit": 200,
        }
        docs: list[dict[str, Any]] = self.api.call("POST", "/block_documents/filter", body) or []
        return sorted(
            (SecretRow(secret_name(d["name"]), _time(d.get("updated"))) for d in docs), key=lambda r: r.name
        )

    def exists(self, name: str) -> bool:
        return self._block(name) is not None

    def get(self, name: str) -> str | None:
        """The value of secret ``name``; None when there is no such secret."""
        doc = self._block(name, values=True)
        if doc is None:
            return None
        value = (doc.get("data") or {}).get("value")
        return value if isinstance(value, str) else None

    def put(self, name: str, value: str) -> bool:
        """Set secret ``name`` to ``value``; True when it was created, False when replaced."""
        doc = self._block(name)
        if doc is not None:
            self.api.call(
                "PATCH",
                f"/block_documents/{doc['id']}",
                {"data": {"value": value}, "merge_existing_data": False},
            )
            return False
        block_type = self.api.call("GET", f"/block_types/slug/{BLOCK_TYPE}")
        schemas = block_type and self.api.call(
            "POST",
            "/block_schemas/filter",
            {"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}},
        )
        if not schemas:
            msg = f"the Prefect server at {self.api.url} has no Secret block type"
            raise ServerError(msg, hint="a Prefect 3 server registers it at start: restart it")
        self.api.call(
            "POST",
            "/block_documents/",
            {
                "name": block_name(name),
                "data": {"value": value},
                "block_schema_id": schemas[0]["id"],
                "block_type_id": block_type["id"],
            },
        )
        return True

    def delete(self, name: str) -> bool:
        """Delete secret ``name``; False when there was none."""
        doc = self._block(name)
        if doc is None:
            return False
        self.api.call("DELETE", f"/block_documents/{doc['id']}")
        return True


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def resolve_step_secrets(step: Step, lookup: Callable[[str], str | None]) -> tuple[Step, list[str]]:
    """Put secret values in place of ``${{ secrets.X }}``: in env, registry_auth and entrypoint
    the value itself; in commands and setup the shell expansion ``${DSTACK_SECRET_X}``, with
    that variable in the step's environment, so a value never shows in a process's command line.
    Escaped text (`$${{ secrets.X }}` in the plan) becomes `${{ secrets.X }}`, secret or not.

    ``lookup(NAME)``: the value, None when unset. Values exist only in this process and the
    step; logs mask them, the plan never holds them.
    """
    names: set[str] = set(secret_refs(step))
    values: dict[str, str] = {}
    for name in sorted(names):
        value = lookup(name)
        if value is None:
            msg = f"step '{step.name}': secret '{name}' is not set"
            hint = f"add it with `dstack secrets add {name}`, or set {secret_env_name(name)} for the run"
            raise DstackError(msg, hint=hint)
        values[name] = value
    env = {k: resolve_secrets(v, values) for k, v in step.env.items()}
    shell_refs = {name: "${" + secret_env_name(name) + "}" for name in values}
    scripts = {
        field: [resolve_secrets(line, shell_refs) for line in getattr(step, field)]
        for field in ("commands", "setup")
    }
    for name, ref in shell_refs.items():
        if any(ref in line for lines in scripts.values() for line in lines):
            env[secret_env_name(name)] = values[name]
    entrypoint = [resolve_secrets(part, values) for part in step.entrypoint] if step.entrypoint else None
    auth = step.registry_auth
    if auth is not None:
        auth = auth.model_copy(
            update={
                "username": resolve_secrets(auth.username, values) if auth.username else None,
                "password": resolve_secrets(auth.password, values) if auth.password else None,
            }
        )
    update = {"env": env, "registry_auth": auth, "entrypoint": entrypoint, **scripts}
    return step.model_copy(update=update), list(values.values())
