"""The watch cache's bookkeeping, without a cluster: what it keeps and which version wins.

The watch itself (LIST, WATCH, 410 Gone, broken connections) is tested on the real cluster in
tests/cluster/test_watch_cache.py; these tests feed events by hand to pin down the rules that
keep a stale version from being served.
"""

from __future__ import annotations

from typing import Any

import kubernetes.client

from controlplane.kube.cache import KindCache, slim

LABEL = "city-platform.be/instance-id"


def deployment(rv: int, generation: int, observed: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "resourceVersion": str(rv),
            "generation": generation,
            "labels": {LABEL: "i-1"},
        },
        "status": {"observedGeneration": observed},
    }


def synced_cache() -> KindCache:
    cache = KindCache(
        kubernetes.client.ApiClient(),
        path="/apis/apps/v1/deployments",
        kind="Deployment",
        namespaced=True,
        label=LABEL,
    )
    cache._synced.set()  # as after a LIST; the thread is never started here
    return cache


def test_an_older_watch_event_does_not_replace_what_this_process_just_applied() -> None:
    cache = synced_cache()
    cache._apply({"type": "ADDED", "object": deployment(10, 1, 1)})
    cache.offer(deployment(20, 2, 1))  # the apply's answer: a new generation

    cache._apply({"type": "MODIFIED", "object": deployment(15, 1, 1)})  # the watch lags

    held = cache.get("ns", "web")
    assert held is not None
    assert held["metadata"]["generation"] == 2


def test_a_deleted_object_is_not_brought_back_by_an_older_offer() -> None:
    cache = synced_cache()
    cache._apply({"type": "ADDED", "object": deployment(10, 1, 1)})
    cache._apply({"type": "DELETED", "object": deployment(30, 1, 1)})

    cache.offer(deployment(20, 2, 1))

    assert cache.get("ns", "web") is None


def test_an_unsynced_cache_answers_nothing() -> None:
    cache = synced_cache()
    cache._apply({"type": "ADDED", "object": deployment(10, 1, 1)})
    cache._synced.clear()  # the watch broke

    assert cache.get("ns", "web") is None
    assert cache.items("ns", LABEL, "i-1") is None


def test_slim_drops_secret_values_and_keeps_only_the_owners_of_fields() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s",
            "managedFields": [
                {"manager": "city-platform", "operation": "Apply", "fieldsV1": {"f:data": {}}}
            ],
        },
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"token": "t"},
        "type": "Opaque",
    }

    kept = slim(secret)

    assert kept == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s",
            "managedFields": [{"manager": "city-platform", "operation": "Apply"}],
        },
        "type": "Opaque",
    }
    assert "data" in secret  # the caller's object is left alone
