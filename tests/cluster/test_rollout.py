"""A configuration-only change rolls the pods that read it, on the real cluster.

Nextcloud's ``mail_domain`` parameter changes only ConfigMap ``nextcloud``; the renderer's
config digest (``controlplane.rendering.rollout``) on the web Deployment's pod template
makes that a template change, so the real apiserver bumps the Deployment's generation and
the real deployment controller starts a rollout: a second ReplicaSet with the new template.
The database StatefulSet, which does not read that ConfigMap, is not touched.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.catalog.loading import load_catalog
from controlplane.kube.client import KubeClient
from controlplane.provisioning.targets import Stack
from controlplane.provisioning.targets.kubernetes import KubernetesTarget
from controlplane.rendering import InstanceRef, Renderer, TenantRef
from controlplane.rendering.rollout import ANNOTATION
from tests.cluster.fixtures import Cluster

SERVER_SECRET = b"cluster-tier-secret"


@pytest.fixture
def target(cluster: Cluster) -> Iterator[KubernetesTarget]:
    port = KubeClient.from_kubeconfig(str(cluster.kubeconfig))
    yield KubernetesTarget(port, name="cluster-tier", delete_timeout=180)
    port.close()


def _replica_sets(cluster: Cluster, namespace: str, owner: str) -> list[dict[str, Any]]:
    return [
        rs
        for rs in cluster.objects("ReplicaSet", namespace, api_version="apps/v1")
        if any(ref["name"] == owner for ref in rs["metadata"].get("ownerReferences") or [])
    ]


def test_a_config_map_change_rolls_the_deployment_that_reads_it(
    cluster: Cluster, target: KubernetesTarget
) -> None:
    release = load_catalog().release("nextcloud", "30.0.2")
    renderer = Renderer(server_secret=SERVER_SECRET, kubernetes_version="1.33")
    tenant = TenantRef(slug=f"r{secrets.token_hex(3)}", name="Rollout", nis_code="44021")
    instance = InstanceRef(name="cloud", id=f"00000000-0000-4000-8000-{secrets.token_hex(6)}")

    def stack(parameters: dict[str, Any]) -> Stack:
        rendered = renderer.render(
            release, plan="small", tenant=tenant, instance=instance, parameters=parameters
        )
        return Stack(
            tenant=tenant.slug,
            instance=instance.name,
            instance_id=instance.id,
            namespace=rendered.namespace,
            objects=rendered.objects,
            digests=rendered.object_digests(),
            digest=rendered.digest,
        )

    first = stack({})
    namespace = first.namespace
    try:
        target.apply(first)
        web = cluster.wait_for(
            "the web Deployment's first ReplicaSet",
            lambda: _replica_sets(cluster, namespace, "web"),
        )
        assert len(web) == 1
        before = cluster.get("Deployment", "web", namespace, api_version="apps/v1")
        database = cluster.get("StatefulSet", "postgres", namespace, api_version="apps/v1")
        assert before is not None
        assert database is not None
        old_digest = before["spec"]["template"]["metadata"]["annotations"][ANNOTATION]

        second = stack({"mail_domain": "gent.be"})
        changed = {oid for oid, d in second.digests.items() if first.digests.get(oid) != d}
        assert "v1/ConfigMap/nextcloud" in changed
        target.apply(second)

        after = cluster.get("Deployment", "web", namespace, api_version="apps/v1")
        assert after is not None
        new_digest = after["spec"]["template"]["metadata"]["annotations"][ANNOTATION]
        assert new_digest != old_digest
        assert after["metadata"]["generation"] > before["metadata"]["generation"]
        live = cluster.get("ConfigMap", "nextcloud", namespace, api_version="v1")
        assert live is not None
        assert live["data"]["SMTP_NAME"] == "noreply@gent.be"
        # The deployment controller rolls: a new ReplicaSet with the new template.
        rolled = cluster.wait_for(
            "a second ReplicaSet of the web Deployment",
            lambda: [
                rs
                for rs in _replica_sets(cluster, namespace, "web")
                if (rs["spec"]["template"]["metadata"].get("annotations") or {}).get(ANNOTATION)
                == new_digest
            ],
            timeout=120,
        )
        assert len(rolled) == 1
        assert len(_replica_sets(cluster, namespace, "web")) == 2
        # The database does not read ConfigMap nextcloud: it does not roll.
        untouched = cluster.get("StatefulSet", "postgres", namespace, api_version="apps/v1")
        assert untouched is not None
        assert untouched["metadata"]["generation"] == database["metadata"]["generation"]
        assert target.drifted(second) == set()
    finally:
        target.delete(tenant=tenant.slug, instance=instance.name, namespace=namespace)
