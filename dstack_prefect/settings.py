"""Typed settings, one place. Every field reads DSTACK_<NAME> from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DSTACK_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path(os.path.expanduser("~/.dstack")),
        description="Where dstack keeps the local Prefect server, run folders and the local store",
    )
    store: str | None = Field(None, description="Artifact store URL; default: <home>/store")
    remote_store: str | None = Field(None, description="Remote store URL for push/pull (s3://bucket/prefix)")
    server_port: int = Field(0, description="Port of the local Prefect server; 0 picks a free one")
    server_start_timeout: float = Field(120.0, description="Seconds to wait for the local server to be healthy")
    stop_grace: float = Field(10.0, description="Seconds between SIGTERM and SIGKILL on a graceful stop")
    keep_workdirs: bool = Field(False, description="Keep each step's working folder after it ends")
    executor: str = Field("local", description="Default executor: local or docker")

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def store_url(self) -> str:
        return self.store or str(self.home / "store")


def get_settings() -> Settings:
    return Settings()
