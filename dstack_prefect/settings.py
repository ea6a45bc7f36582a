"""Typed settings, one place. Every field reads DSTACK_<NAME> from the environment.

A plain pydantic model read by hand, not pydantic-settings: importing that costs every CLI
command ~0.1 s."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dstack_prefect.errors import DstackError


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path(os.path.expanduser("~/.dstack")),
        description="Where dstack keeps the local Prefect server, run folders and the local store",
    )
    store: str | None = Field(None, description="Artifact store URL; default: <home>/store")
    remote_store: str | None = Field(None, description="Remote store URL for push/pull (s3://bucket/prefix)")
    server_port: int = Field(0, description="Port of the local Prefect server; 0 picks a free one")
    server_start_timeout: float = Field(
        120.0, description="Seconds to wait for the local server to be healthy"
    )
    stop_grace: float = Field(
        10.0, ge=0, description="Seconds between SIGTERM and SIGKILL on a graceful stop"
    )
    mount_sync_interval: float = Field(
        10.0, gt=0, description="Seconds between two syncs of a running step's `mount: true` artifacts"
    )
    keep_workdirs: bool = Field(False, description="Keep each step's working folder after it ends")
    executor: str = Field("local", description="Default executor: local or docker")

    @classmethod
    def from_env(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """DSTACK_<FIELD> variables of ``environ`` (os.environ by default), then ``overrides``. An
        empty variable counts as unset (``DSTACK_HOME= dstack ...`` keeps ~/.dstack, not the
        current folder)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            key = f"DSTACK_{name.upper()}"
            if env.get(key):
                values[name] = env[key]
        try:
            return cls(**{**values, **(overrides or {})})
        except ValidationError as exc:
            raise _settings_error(exc, values) from None

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def store_url(self) -> str:
        return self.store or str(self.home / "store")


def _settings_error(exc: ValidationError, from_env: Mapping[str, Any]) -> DstackError:
    """The first bad setting, named as the user wrote it (DSTACK_X or config.json)."""
    first = exc.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    field = Settings.model_fields.get(name)
    about = field.description if field and field.description else ""
    what = f" ({about[:1].lower()}{about[1:]})" if about else ""
    where = f"DSTACK_{name.upper()}" if name in from_env else f"'{name}' in config.json"
    msg = f"{where}={first.get('input')!r} is not valid: {first['msg'].lower()}{what}"
    return DstackError(msg, hint=f"fix or unset {where}")


CONFIG_KEYS = ("store", "remote_store", "executor")
"""Settings `dstack config` may write to <home>/config.json; the environment wins over them."""


def config_path(home: Path | None = None) -> Path:
    return (home or Settings.from_env().home) / "config.json"


def read_config(home: Path | None = None) -> dict[str, str]:
    try:
        data = json.loads(config_path(home).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if k in CONFIG_KEYS}


def write_config(updates: dict[str, str | None], home: Path | None = None) -> dict[str, str]:
    """Set (or, with None, unset) keys of <home>/config.json; returns the new config."""
    unknown = set(updates) - set(CONFIG_KEYS)
    if unknown:
        msg = f"unknown setting(s): {', '.join(sorted(unknown))}"
        raise ValueError(msg)
    config = read_config(home)
    for key, value in updates.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path = config_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)
    return config


def get_settings() -> Settings:
    """Settings from the environment (DSTACK_*), then <home>/config.json, then defaults."""
    base = Settings.from_env()
    from_file = {k: v for k, v in read_config(base.home).items() if not os.environ.get(f"DSTACK_{k.upper()}")}
    return Settings.from_env(from_file) if from_file else base
