"""Settings of the control plane, read once from the environment (``CONTROLPLANE_*``).

The defaults are the embedded mode: a SQLite file and a GitOps directory target in
the data directory, so ``controlplane serve`` runs with no cluster and no database server.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from controlplane.identifiers import normalise_enterprise_number, normalise_iban

#: The Kubernetes minor version objects are validated against when nothing else says which
#: (a target records its own; this is the default for new targets and offline renders).
DEFAULT_KUBERNETES_VERSION = "1.33"


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
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
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
    #: Child processes a reconcile worker renders in, so that one process can use more than
    #: one core (rendering holds the GIL). 0 or 1: render in the worker's own process.
    #: ``CONTROLPLANE_RENDER_PROCESSES``; unset: one per CPU this process may use, none on
    #: one CPU (``resolved_render_processes``). On the 2-core reference machine 2 render
    #: processes take the cold Flemish fleet (3,420 stacks to GitOps) from 38 s to 29 s on
    #: tmpfs and to 31 s on the disk (docs/benchmarks.md).
    render_processes: int | None = Field(default=None, ge=0)
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
    #: Billing: an instance that ran less than this many hours in its whole life (a trial)
    #: takes no part in any cost pool (its plan fee stays). 0 counts every instance.
    #: ``CONTROLPLANE_BILLING_TRIAL_GRACE_HOURS``.
    billing_trial_grace_hours: float = Field(default=24.0, ge=0)

    #: The supplier on every invoice: the organisation that operates the platform
    #: (``CONTROLPLANE_SUPPLIER_NAME``, ``…_ENTERPRISE_NUMBER``, ``…_VAT_NUMBER``, ``…_STREET``,
    #: ``…_POSTAL_CODE``, ``…_CITY``, ``…_COUNTRY``, ``…_IBAN``, ``…_BIC``). The enterprise
    #: number and IBAN are checked (mod 97) at start-up: a typo stops the server, not a payment.
    supplier_name: str = ""
    supplier_enterprise_number: str = ""
    supplier_vat_number: str = ""
    supplier_street: str = ""
    supplier_postal_code: str = ""
    supplier_city: str = ""
    supplier_country: str = Field(default="BE", pattern=r"^[A-Z]{2}$")
    supplier_iban: str = ""
    supplier_bic: str = Field(default="", pattern=r"^([A-Z0-9]{8}([A-Z0-9]{3})?)?$")
    #: Days from an invoice's issue date to its due date.
    invoice_due_days: int = Field(default=30, ge=0, le=365)
    #: The VAT of a price line without its own VAT rule: a rate in percent, or, when
    #: ``vat_default_exemption`` (an EN 16931 VATEX code, e.g. ``VATEX-EU-O``) is set, that
    #: exemption with ``vat_default_exemption_reason``.
    vat_default_rate: Decimal = Field(default=Decimal("21.00"), ge=0, le=100, decimal_places=2)
    vat_default_exemption: str = ""
    vat_default_exemption_reason: str = ""

    @field_validator("supplier_enterprise_number")
    @classmethod
    def _enterprise_number(cls, value: str) -> str:
        return normalise_enterprise_number(value) if value.strip() else ""

    @field_validator("supplier_iban")
    @classmethod
    def _iban(cls, value: str) -> str:
        return normalise_iban(value) if value.strip() else ""

    def resolved_gitops_root(self) -> Path:
        # An empty variable parses as Path("."): that means "not set", not the working directory.
        root = self.gitops_root if self.gitops_root not in (None, Path()) else None
        return (root or self.data_dir / "gitops").expanduser().resolve()

    def resolved_render_processes(self) -> int:
        """Render processes of a worker: as set, else one per usable CPU (0 on one CPU)."""
        if self.render_processes is not None:
            return self.render_processes
        cpus = usable_cpus()
        return cpus if cpus > 1 else 0

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'controlplane.db').resolve()}"


#: cgroup v2's CPU limit of this process (``<quota> <period>`` or ``max <period>``).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus() -> int:
    """CPUs this process may use: its affinity, lowered to its cgroup's CPU limit.

    A container limited to 2 CPUs on a 32-core node sees 32 in its affinity; the limit is
    in ``cpu.max`` (rounded up: 1.5 CPUs can keep two processes half busy).
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text(encoding="ascii").split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
