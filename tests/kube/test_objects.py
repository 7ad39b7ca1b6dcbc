"""Apply order and write waves, without a cluster."""

from __future__ import annotations

from controlplane.kube.objects import APPLY_ORDER, apply_rank, apply_wave, in_write_order


def test_waves_put_what_exposes_workloads_with_the_configuration_before_the_workloads() -> None:
    for kind in ("Service", "Ingress", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert apply_wave(kind) == apply_wave("ConfigMap")
        assert apply_wave(kind) < apply_wave("Deployment")
        assert apply_rank(kind) > apply_rank("Deployment")  # the apply order stays as it was


def test_what_others_depend_on_is_in_an_earlier_wave() -> None:
    assert apply_wave("Namespace") < apply_wave("ResourceQuota") < apply_wave("Secret")
    assert apply_wave("NetworkPolicy") < apply_wave("Service")
    assert apply_wave("PersistentVolumeClaim") < apply_wave("StatefulSet")
    assert apply_wave("Cluster") > max(apply_wave(k) for kinds in APPLY_ORDER for k in kinds)


def test_write_order_keeps_the_apply_order_within_a_wave() -> None:
    objects = [
        {"kind": "Deployment", "metadata": {"name": "web"}},
        {"kind": "Service", "metadata": {"name": "web"}},
        {"kind": "Secret", "metadata": {"name": "b"}},
        {"kind": "ConfigMap", "metadata": {"name": "a"}},
        {"kind": "Namespace", "metadata": {"name": "ns"}},
    ]

    names = [(o["kind"], o["metadata"]["name"]) for o in in_write_order(objects)]

    assert names == [
        ("Namespace", "ns"),
        ("Secret", "b"),
        ("ConfigMap", "a"),
        ("Service", "web"),
        ("Deployment", "web"),
    ]
