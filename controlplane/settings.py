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
    #: Every GitOps target's path must lie under this folder (symlinks followed), so that an
    #: API call cannot point the reconciler at ``/etc/cron.d``. Empty means ``<data_dir>/gitops``
    #: (the embedded default target's tree). ``CONTROLPLANE_GITOPS_ROOT``.
    gitops_root: Path | None = None
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
    #: Largest request body in bytes (413 above it); checked before the body is read.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Largest body of the upload routes (municipality CSV import, catalogue publish).
    max_upload_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    #: Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs
    #: or CIDRs, ``*`` for any). Empty: none, the source IP is the peer of the connection.
    forwarded_allow_ips: str = ""
    #: Serve /metrics on this port only (not on the API port); None: on the API port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    #: Seconds after which the claim of an Idempotency-Key whose request never finished
    #: (a killed server) is taken over by the next request with that key.
    idempotency_claim_seconds: float = Field(default=300.0, gt=0)
    #: Hours an Idempotency-Key and its answer are kept.
    idempotency_retention_hours: float = Field(default=24.0, gt=0)

    def resolved_gitops_root(self) -> Path:
        # An empty variable parses as Path("."): that means "not set", not the working directory.
        root = self.gitops_root if self.gitops_root not in (None, Path()) else None
        return (root or self.data_dir / "gitops").expanduser().resolve()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'controlplane.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
