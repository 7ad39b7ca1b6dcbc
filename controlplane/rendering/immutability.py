"""What the Kubernetes apiserver refuses to change on update, and which changes between two
renders of an instance it would refuse.

:data:`IMMUTABLE_FIELDS` is the one place that holds this knowledge. Each row names a
field of a kind, how it may change (not at all, only grow, or be set once) and quotes what
the apiserver answers (Kubernetes v1.34, ``pkg/apis/{apps,batch,core,rbac}/validation``).
A kind without a row is mutable apart from its identity: Deployment, ReplicaSet and
DaemonSet beyond their selector, CronJob (its ``jobTemplate`` applies to the next Jobs),
PodDisruptionBudget (mutable since 1.15), Ingress, NetworkPolicy, ServiceAccount, Role,
ResourceQuota, LimitRange, and ConfigMap and Secret without ``immutable: true``.

Objects are compared as rendered, before the apiserver defaults them: where leaving a
field out means the apiserver's default, the row says so (``defaults``), so that writing
the default out is no change.

This module must not know about catalogue files, the database or how objects are applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from controlplane.catalog.transitions import Objects, RefusedChange


class Rule(StrEnum):
    #: Never changes once the object exists.
    FIXED = "fixed"
    #: A quantity that may grow but never shrink.
    GROW = "grow"
    #: May be set when it was absent (the apiserver or a controller fills it in); never
    #: changed once set.
    SET_ONCE = "set-once"


#: Reads the old and the new object; the row applies only when it answers True.
Condition = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


@dataclass(frozen=True)
class ImmutableField:
    """One row of the table: a field of a kind that an update may not change (freely)."""

    group: str
    kind: str
    #: Dotted key path; ``[0]`` picks a list item. With ``except_``: all of it but those.
    path: str
    #: What the apiserver answers, in its words.
    apiserver: str
    #: How to write the templates instead.
    fix: str
    rule: Rule = Rule.FIXED
    #: Sub-paths of ``path`` that may change (``[*]`` for every item of a list).
    except_: tuple[str, ...] = ()
    #: The apiserver's default of the field itself: absent reads as this value.
    default: Any = None
    #: The apiserver's defaults for keys directly under ``path`` (absent = this value).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    when: Condition | None = None
    #: False: a plan change never changes it (the platform sees to it), only upgrades can.
    plan_changes: bool = True


def _old_is_immutable(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old.get("immutable") is True


def _service_type(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec")
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    return kind if isinstance(kind, str) else "ClusterIP"


def _headless(obj: Mapping[str, Any]) -> bool:
    spec = obj.get("spec")
    return isinstance(spec, Mapping) and spec.get("clusterIP") == "None"


def _neither_external_name(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return "ExternalName" not in (_service_type(old), _service_type(new))


def _both_with_cluster_ip(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return _neither_external_name(old, new) and not _headless(old) and not _headless(new)


def _both_load_balancers(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return _service_type(old) == _service_type(new) == "LoadBalancer"


def _not_indexed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    spec = new.get("spec")
    return not (isinstance(spec, Mapping) and spec.get("completionMode") == "Indexed")


_SELECTOR_FIX = (
    "Select pods by the labels that never change (app.kubernetes.io/component and "
    "app.kubernetes.io/instance); a different selector needs a new object name."
)
_JOB_FIX = (
    "A Job runs once: put what changes into a new Job with a new name (e.g. one per "
    "version), or use a CronJob, whose jobTemplate may change."
)
_IMMUTABLE_DATA_FIX = (
    "An immutable ConfigMap or Secret never changes: give changed content a new name "
    "(e.g. with a content hash) and point the pods at it."
)

#: What the apiserver refuses to change on update. One row per field; the comment above a
#: row says where the apiserver decides it.
IMMUTABLE_FIELDS: tuple[ImmutableField, ...] = (
    # apps ValidateStatefulSetUpdate: the whole spec is compared with replicas, template,
    # updateStrategy, minReadySeconds, ordinals, revisionHistoryLimit and
    # persistentVolumeClaimRetentionPolicy copied from the old object, so selector,
    # serviceName, podManagementPolicy and volumeClaimTemplates (labels and size of the
    # claims included) never change.
    ImmutableField(
        "apps",
        "StatefulSet",
        "spec",
        except_=(
            "replicas",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "ordinals",
            "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy",
        ),
        defaults={"podManagementPolicy": "OrderedReady"},
        apiserver="spec: Forbidden: updates to statefulset spec for fields other than "
        "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        fix="Keep selector, serviceName, podManagementPolicy and volumeClaimTemplates the same "
        "in every plan and version: size volumes with a standalone PersistentVolumeClaim "
        "(which may grow), or give the StatefulSet a new name.",
    ),
    # apps ValidateDeploymentUpdate: ValidateImmutableField(spec.selector).
    ImmutableField(
        "apps",
        "Deployment",
        "spec.selector",
        apiserver="spec.selector: Invalid value: …: field is immutable",
        fix=_SELECTOR_FIX,
    ),
    # apps ValidateReplicaSetUpdate: ValidateImmutableField(spec.selector).
    ImmutableField(
        "apps",
        "ReplicaSet",
        "spec.selector",
        apiserver="spec.selector: Invalid value: …: field is immutable",
        fix=_SELECTOR_FIX,
    ),
    # apps ValidateDaemonSetSpecUpdate: ValidateImmutableField(spec.selector).
    ImmutableField(
        "apps",
        "DaemonSet",
        "spec.selector",
        apiserver="spec.selector: Invalid value: …: field is immutable",
        fix=_SELECTOR_FIX,
    ),
    # batch ValidateJobSpecUpdate: ValidateImmutableField(spec.selector) (absent: the
    # apiserver generates it from the Job's uid, the same on both sides).
    ImmutableField(
        "batch",
        "Job",
        "spec.selector",
        apiserver="spec.selector: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # batch validatePodTemplateUpdate: ValidateImmutableField(spec.template); only a
    # suspended Job that never started may change its scheduling directives, labels and
    # annotations (the platform labels every pod template with plan and version).
    ImmutableField(
        "batch",
        "Job",
        "spec.template",
        apiserver="spec.template: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # batch validateCompletions: immutable unless completionMode is Indexed (then it may
    # change together with parallelism).
    ImmutableField(
        "batch",
        "Job",
        "spec.completions",
        when=_not_indexed,
        apiserver="spec.completions: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # batch ValidateJobSpecUpdate: ValidateImmutableField(spec.completionMode).
    ImmutableField(
        "batch",
        "Job",
        "spec.completionMode",
        default="NonIndexed",
        apiserver="spec.completionMode: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # batch ValidateJobSpecUpdate: ValidateImmutableField(spec.podFailurePolicy).
    ImmutableField(
        "batch",
        "Job",
        "spec.podFailurePolicy",
        apiserver="spec.podFailurePolicy: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # batch ValidateJobSpecUpdate: ValidateImmutableField(spec.backoffLimitPerIndex).
    ImmutableField(
        "batch",
        "Job",
        "spec.backoffLimitPerIndex",
        apiserver="spec.backoffLimitPerIndex: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # batch ValidateJobSpecUpdate: ValidateImmutableField(spec.managedBy).
    ImmutableField(
        "batch",
        "Job",
        "spec.managedBy",
        apiserver="spec.managedBy: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # batch ValidateJobSpecUpdate: ValidateImmutableField(spec.successPolicy).
    ImmutableField(
        "batch",
        "Job",
        "spec.successPolicy",
        apiserver="spec.successPolicy: Invalid value: …: field is immutable",
        fix=_JOB_FIX,
    ),
    # core ValidatePersistentVolumeClaimUpdate: the spec is compared whole, except
    # resources.requests and volumeAttributesClassName (bound claims) and volumeName and
    # storageClassName (set once, rows below): accessModes, volumeMode, selector,
    # dataSource, dataSourceRef and resources.limits never change.
    ImmutableField(
        "",
        "PersistentVolumeClaim",
        "spec",
        except_=(
            "resources.requests",
            "volumeAttributesClassName",
            "volumeName",
            "storageClassName",
        ),
        defaults={"volumeMode": "Filesystem"},
        apiserver="spec: Forbidden: spec is immutable after creation except "
        "resources.requests and volumeAttributesClassName for bound claims",
        fix="A claim with other access modes, volume mode or data source is a new claim: "
        "give it a new name (and migrate the data).",
    ),
    # core ValidatePersistentVolumeClaimUpdate: "field can not be less than previous value"
    # (growing needs a bound claim and a StorageClass with allowVolumeExpansion; the spec of
    # a Pending claim cannot change at all, which no render can tell). A plan change never
    # shrinks a claim: the renderer raises plan.storage to the instance's storage floor
    # (rendering/storage.py); an upgrade that writes a smaller size does.
    ImmutableField(
        "",
        "PersistentVolumeClaim",
        "spec.resources.requests.storage",
        rule=Rule.GROW,
        plan_changes=False,
        apiserver="spec.resources.requests.storage: Forbidden: field can not be less than "
        "previous value",
        fix="A claim can only grow: give the newer version the same size or a larger one.",
    ),
    # core ValidatePersistentVolumeClaimUpdate: storageClassName may be set on a claim that
    # has none (retroactive default StorageClass), never changed or removed.
    ImmutableField(
        "",
        "PersistentVolumeClaim",
        "spec.storageClassName",
        rule=Rule.SET_ONCE,
        apiserver="spec: Forbidden: spec is immutable after creation except "
        "resources.requests and volumeAttributesClassName for bound claims",
        fix="Keep the claim's storageClassName; another class is a new claim (new name).",
    ),
    # core ValidatePersistentVolumeClaimUpdate: "volumeName changes are allowed once"
    # (binding fills it in).
    ImmutableField(
        "",
        "PersistentVolumeClaim",
        "spec.volumeName",
        rule=Rule.SET_ONCE,
        apiserver="spec: Forbidden: spec is immutable after creation except "
        "resources.requests and volumeAttributesClassName for bound claims",
        fix="Do not change a claim's volumeName once set.",
    ),
    # core validateUpgradeDowngradeClusterIPs: "may not change once set"; absent means
    # allocated by the apiserver, so a switch between headless (None) and an allocated
    # IP is refused (or, from None to absent, silently keeps None). ExternalName excepted.
    ImmutableField(
        "",
        "Service",
        "spec.clusterIP",
        when=_neither_external_name,
        apiserver="spec.clusterIPs[0]: Invalid value: …: may not change once set",
        fix="A Service cannot switch between headless (clusterIP: None) and a cluster IP: "
        "give the other kind of Service a new name.",
    ),
    # core validateUpgradeDowngradeClusterIPs: the primary clusterIPs entry never changes.
    ImmutableField(
        "",
        "Service",
        "spec.clusterIPs[0]",
        when=_neither_external_name,
        apiserver="spec.clusterIPs[0]: Invalid value: …: may not change once set",
        fix="Do not write cluster IPs in templates; the apiserver allocates them.",
    ),
    # core validateUpgradeDowngradeIPFamilies: the primary family never changes (a
    # secondary may be added or removed); headless Services may change families.
    ImmutableField(
        "",
        "Service",
        "spec.ipFamilies[0]",
        rule=Rule.SET_ONCE,
        when=_both_with_cluster_ip,
        apiserver="spec.ipFamilies[0]: Invalid value: …: may not change once set",
        fix="Keep the first IP family; leave ipFamilies out to use the cluster's default.",
    ),
    # core validateLoadBalancerClassField: "may not change once set" between LoadBalancers.
    ImmutableField(
        "",
        "Service",
        "spec.loadBalancerClass",
        when=_both_load_balancers,
        apiserver="spec.loadBalancerClass: Invalid value: …: may not change once set",
        fix="Keep the loadBalancerClass; another class needs a new Service name.",
    ),
    # core ValidateSecretUpdate: ValidateImmutableField(type); absent means Opaque.
    ImmutableField(
        "",
        "Secret",
        "type",
        default="Opaque",
        apiserver="type: Invalid value: …: field is immutable",
        fix="A Secret of another type is a new Secret: give it a new name.",
    ),
    # core ValidateSecretUpdate: with immutable: true, data stays ("field is immutable
    # when `immutable` is set"); stringData is written into data.
    ImmutableField(
        "",
        "Secret",
        "data",
        when=_old_is_immutable,
        apiserver="data: Forbidden: field is immutable when `immutable` is set",
        fix=_IMMUTABLE_DATA_FIX,
    ),
    ImmutableField(
        "",
        "Secret",
        "stringData",
        when=_old_is_immutable,
        apiserver="data: Forbidden: field is immutable when `immutable` is set",
        fix=_IMMUTABLE_DATA_FIX,
    ),
    # core ValidateSecretUpdate: immutable: true cannot be taken back.
    ImmutableField(
        "",
        "Secret",
        "immutable",
        when=_old_is_immutable,
        apiserver="immutable: Forbidden: field is immutable when `immutable` is set",
        fix=_IMMUTABLE_DATA_FIX,
    ),
    # core ValidateConfigMapUpdate: with immutable: true, data, binaryData and immutable
    # itself stay.
    ImmutableField(
        "",
        "ConfigMap",
        "data",
        when=_old_is_immutable,
        apiserver="data: Forbidden: field is immutable when `immutable` is set",
        fix=_IMMUTABLE_DATA_FIX,
    ),
    ImmutableField(
        "",
        "ConfigMap",
        "binaryData",
        when=_old_is_immutable,
        apiserver="binaryData: Forbidden: field is immutable when `immutable` is set",
        fix=_IMMUTABLE_DATA_FIX,
    ),
    ImmutableField(
        "",
        "ConfigMap",
        "immutable",
        when=_old_is_immutable,
        apiserver="immutable: Forbidden: field is immutable when `immutable` is set",
        fix=_IMMUTABLE_DATA_FIX,
    ),
    # core ValidatePodUpdate: "pod updates may not change fields other than
    # spec.containers[*].image, spec.initContainers[*].image, spec.activeDeadlineSeconds,
    # spec.tolerations (only additions), spec.terminationGracePeriodSeconds".
    ImmutableField(
        "",
        "Pod",
        "spec",
        except_=(
            "containers[*].image",
            "initContainers[*].image",
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ),
        apiserver="spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`, `spec.initContainers[*].image`, "
        "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
        "tolerations), `spec.terminationGracePeriodSeconds`",
        fix="Run pods through a Deployment or StatefulSet, whose pod template may change.",
    ),
    # rbac ValidateRoleBindingUpdate: "cannot change roleRef".
    ImmutableField(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "roleRef",
        apiserver="roleRef: Invalid value: …: cannot change roleRef",
        fix="Bind another role with a new RoleBinding name.",
    ),
    # rbac ValidateClusterRoleBindingUpdate: "cannot change roleRef".
    ImmutableField(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "roleRef",
        apiserver="roleRef: Invalid value: …: cannot change roleRef",
        fix="Bind another role with a new ClusterRoleBinding name.",
    ),
)

_MISSING: Any = object()
#: Leaf differences shown per refused change.
_SHOWN = 3


def refused_changes(before: Objects, after: Objects, *, plan_change: bool) -> list[RefusedChange]:
    """Every change from ``before`` to ``after`` that the apiserver refuses on update.

    Objects are matched by API group, kind and name (the namespace is the instance's on
    both sides); objects only on one side are created or deleted, which is no update.
    """
    old_objects = {_identity(obj): obj for obj in before}
    found: list[RefusedChange] = []
    for new in after:
        identity = _identity(new)
        old = old_objects.get(identity)
        if old is None:
            continue
        for row in _ROWS.get(identity[:2], ()):
            if plan_change and not row.plan_changes:
                continue
            if row.when is not None and not row.when(old, new):
                continue
            found.extend(_compare(row, old, new, f"{identity[1]}/{identity[2]}"))
    return found


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    metadata = obj.get("metadata")
    name = metadata.get("name", "") if isinstance(metadata, Mapping) else ""
    return group, str(obj.get("kind", "")), str(name)


_ROWS: dict[tuple[str, str], list[ImmutableField]] = {}
for _row in IMMUTABLE_FIELDS:
    _ROWS.setdefault((_row.group, _row.kind), []).append(_row)


def _compare(
    row: ImmutableField, old: Mapping[str, Any], new: Mapping[str, Any], obj: str
) -> list[RefusedChange]:
    before, after = _value(old, row), _value(new, row)
    reason = f"the apiserver refuses to change it on update ({row.apiserver}). {row.fix}"
    if row.rule == Rule.GROW:
        if before is _MISSING or after is _MISSING or _amount(after) >= _amount(before):
            return []
        change = f"{row.path}: {_shown(before)} → {_shown(after)}"
        return [RefusedChange(obj, row.path, change, reason)]
    if row.rule == Rule.SET_ONCE and before is _MISSING:
        return []
    if before == after:
        return []
    if row.except_ and isinstance(before, dict) and isinstance(after, dict):
        # "All of spec but …": one finding per top-level field that differs.
        return [
            RefusedChange(
                obj,
                f"{row.path}.{key}",
                _differences(before.get(key, _MISSING), after.get(key, _MISSING), key, row),
                reason,
            )
            for key in sorted(set(before) | set(after))
            if before.get(key, _MISSING) != after.get(key, _MISSING)
        ]
    return [RefusedChange(obj, row.path, _differences(before, after, "", row), reason)]


def _value(obj: Mapping[str, Any], row: ImmutableField) -> Any:
    """The row's field of ``obj``: without the parts that may change, with the defaults."""
    value = _get(obj, _segments(row.path))
    if value is _MISSING and row.default is not None:
        value = row.default
    if not (row.except_ or row.defaults):
        return value
    if value is _MISSING:
        value = {}
    value = json.loads(json.dumps(value))  # a copy that can be trimmed
    for path in row.except_:
        _drop(value, _segments(path))
    if isinstance(value, dict):
        for key, default in row.defaults.items():
            if value.get(key) is None:
                value[key] = default
    return value


def _segments(path: str) -> list[str | int]:
    """``spec.containers[*].image`` → ``["spec", "containers", "*", "image"]``."""
    out: list[str | int] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        if name:
            out.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            out.append("*" if index == "*" else int(index))
            rest = rest.removeprefix("[")
    return out


def _get(value: Any, segments: list[str | int]) -> Any:
    for segment in segments:
        if isinstance(segment, int):
            if not isinstance(value, list) or segment >= len(value):
                return _MISSING
            value = value[segment]
        elif isinstance(value, Mapping) and value.get(segment) is not None:
            value = value[segment]
        else:
            return _MISSING
    return value


def _drop(value: Any, segments: list[str | int]) -> None:
    head, rest = segments[0], segments[1:]
    if head == "*":
        for item in value if isinstance(value, list) else []:
            if rest:
                _drop(item, rest)
        return
    if isinstance(head, int) or not isinstance(value, dict) or head not in value:
        return
    if rest:
        _drop(value[head], rest)
    else:
        del value[head]


def _amount(quantity: Any) -> Decimal:
    try:
        return Decimal(parse_quantity(quantity))  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return Decimal(0)


def _differences(before: Any, after: Any, path: str, row: ImmutableField) -> str:
    """A few leaf differences, ``a.b: "x" → "y"`` joined by ", ", paths from the row's field."""
    prefix = row.path if not path else f"{row.path}.{path}"
    leaves = list(_leaves(before, after, prefix))
    shown = ", ".join(
        f"{where}: {_shown(old)} → {_shown(new)}" for where, old, new in leaves[:_SHOWN]
    )
    more = len(leaves) - _SHOWN
    return shown + (f", and {more} more" if more > 0 else "")


def _leaves(before: Any, after: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key, _MISSING), after.get(key, _MISSING)
            if old != new:
                out.extend(_leaves(old, new, f"{path}.{key}"))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            if old != new:
                out.extend(_leaves(old, new, f"{path}[{index}]"))
        return out
    return [(path, before, after)]


def _shown(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "…"
