"""Settings of the control plane, read once from the environment (``CONTROLPLANE_*``).

The defaults are the embedded mode: a SQLite file and a GitOps directory target in
the data directory, so ``controlplane serve`` runs with no cluster and no database server.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTROLPLANE_", extra="ignore")

    #: Where the embedded defaults keep their state.
    data_dir: Path = Path(".data")
    #: SQLAlchemy URL; empty means a SQLite file in the data directory.
    database_url: str = ""
    #: Secret from which per-instance credentials are derived (HMAC). Never logged.
    #: Empty means: generate one on first start and keep it in the data directory.
    server_secret: SecretStr = SecretStr("")
    #: Kubernetes minor version the rendered objects are validated against.
    kubernetes_version: str = "1.33"
    #: Folders of the service catalogue and its templates; empty means the shipped ones.
    catalog_dir: Path | None = None
    templates_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: Run a reconcile worker inside ``controlplane serve``.
    embedded_worker: bool = True
    #: Seconds an idle worker waits before looking at the queue again (the API wakes the
    #: embedded worker at once on every change; the tick finds resyncs and retries).
    worker_poll_seconds: float = Field(default=2.0, gt=0)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'controlplane.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
