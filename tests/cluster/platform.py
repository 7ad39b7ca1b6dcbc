"""The control plane's own reconciler and worker, driving the real cluster.

A :class:`ClusterPlatform` is what ``tests/provisioning`` builds for its lifecycles (a
SQLite database, the shipped catalogue published in it, one Kubernetes target named
``main``, a :class:`~controlplane.provisioning.worker.Worker`), but its target is a
:class:`KubernetesTarget` over a port to the session's real apiserver (directly, or through
the fault proxy when a test counts writes). Readiness comes from the real controllers: the
worker re-checks a stack that is not ready yet (``not_ready_seconds``) until its workloads
are, and :meth:`ClusterPlatform.converge` waits, bounded, for that verdict.

When a step does not converge, the failure names the instance's phase, its message (the
apiserver's refusal: which object and why) and its conditions.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from sqlmodel import Session, select

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.db.engine import make_engine
from controlplane.kube.client import KubeClient
from controlplane.provisioning.models import Instance, Phase, Revision, TargetKind
from controlplane.provisioning.queueing import Backoff
from controlplane.provisioning.reconciling import Reconciler, ReconcileSettings, Result
from controlplane.provisioning.targets.building import TargetRegistry
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.provisioning.worker import Worker
from tests.provisioning.conftest import SERVER_SECRET, Platform, make_platform, publish

#: How long one lifecycle step may take to become Ready (or Deleted) on the cluster.
STEP_TIMEOUT = 180.0
#: Re-check a stack that is not ready yet every second: fast enough, and gentle on an
#: apiserver that several parallel lifecycles (and other engineers' tests) share.
SETTINGS = ReconcileSettings(
    resync_seconds=3600,
    not_ready_seconds=1.0,
    retry=Backoff(base=0.5, cap=3.0),
    # A refusal (render, admission, apiserver) is final for the test: no quick retry.
    failed=Backoff(base=3600, cap=3600),
)


class ClusterPlatform:
    """A control plane (database, reconciler, worker) whose target is the real cluster."""

    def __init__(
        self,
        workdir: Path,
        api_client: kubernetes.client.ApiClient,
        *,
        releases: list[ServiceRelease] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(f"sqlite:///{workdir / 'cp.db'}")
        self.platform: Platform = make_platform(engine, kind=TargetKind.KUBERNETES, config={})
        with Session(engine) as session:
            for release in releases if releases is not None else load_catalog().releases():
                publish(session, release)
            session.commit()
        self.port = KubeClient(api_client)
        self.target = KubernetesTarget(self.port, name="main", delete_timeout=STEP_TIMEOUT)
        self.results: list[Result] = []
        reconciler = Reconciler(
            engine,
            server_secret=SERVER_SECRET,
            targets=TargetRegistry(overrides={"main": self.target}),
            settings=SETTINGS,
        )
        self.worker = Worker(
            engine,
            reconciler,
            poll_seconds=0.2,
            fleet=False,
            io_threads=1,
            on_result=self.results.append,
        )

    def close(self) -> None:
        self.worker.stop()
        self.port.close()  # stops its watches
        self.platform.engine.dispose()

    # -- driving
    def converge(
        self, instance_id: uuid.UUID, what: str, timeout: float = STEP_TIMEOUT
    ) -> Instance:
        """Run the worker until the instance's current generation is Ready (or Deleted).

        Fails at once when the reconciler failed the generation (a refusal is final), and
        after ``timeout`` seconds with the last status when it never got there.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.worker.run_once()
            instance = self.platform.get(instance_id)
            settled = instance.observed_generation == instance.generation
            if settled and instance.phase in (Phase.READY, Phase.DELETED):
                return instance
            if settled and instance.phase == Phase.FAILED:
                pytest.fail(f"{what}: the reconciler failed it. {describe(instance)}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not Ready after {timeout:.0f} s. {describe(instance)}")
            time.sleep(0.5)

    def resync(self) -> Result:
        """Make the instance's resync due now and run it once; returns its outcome."""
        self.platform.make_all_due()
        before = len(self.results)
        assert self.worker.run_once() == 1, "the resync was not claimed"
        return self.results[before]

    def revisions(self, instance_id: uuid.UUID) -> list[Revision]:
        with Session(self.platform.engine) as session:
            query = (
                select(Revision)
                .where(Revision.instance_id == instance_id)
                .order_by(Revision.number)  # type: ignore[arg-type]
            )
            return list(session.exec(query).all())


def describe(instance: Instance) -> str:
    conditions = "; ".join(
        f"{c.get('type')}={c.get('status')} ({c.get('reason')}): {c.get('message')}"
        for c in instance.conditions or []
    )
    return f"Phase {instance.phase}, message: {instance.message!r}; conditions: {conditions}"


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod template's spec of a Deployment, StatefulSet or CronJob."""
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])
