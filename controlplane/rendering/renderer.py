"""The renderer: one service release + plan + tenant + instance + parameters → objects.

The steps, each with its own module: parameters (defaults, schema) → templates (Jinja2
sandbox, one JSON value per expression) → YAML (yaml-rs, duplicate keys refused) →
security policy → config digests (rollout) → namespace and labels → namespace baseline →
Kubernetes schemas → credential leak check → digest. All problems of one render are
collected and raised once; a render either returns the whole stack or nothing.

This module must not know about the database, the API or how objects are applied; it
never reads files (a release carries its template text) and never logs credentials.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml_rs

from controlplane.catalog.models import Plan, ServiceRelease, canonical_json
from controlplane.errors import ErrorItem, InvalidInput
from controlplane.rendering import baseline as baseline_module
from controlplane.rendering import policy, rollout, traits
from controlplane.rendering.errors import ManifestInvalid, PolicyViolation, TemplateInvalid
from controlplane.rendering.naming import (
    CHANGING_LABELS,
    namespace_for,
    object_id,
    standard_labels,
)
from controlplane.rendering.parameters import ParameterValidators, resolve
from controlplane.rendering.schemas import KubernetesSchemas, supported
from controlplane.rendering.secrets import SecretValues, given_values
from controlplane.rendering.storage import with_floor
from controlplane.rendering.target_ref import TargetRef
from controlplane.rendering.templates import BundleCache, CompiledBundle, SharedBytecode
from controlplane.rendering.tls import TlsIssuer, with_tls
from controlplane.settings import DEFAULT_KUBERNETES_VERSION


@dataclass(frozen=True)
class TenantRef:
    """The tenant as templates see it."""

    slug: str
    name: str
    nis_code: str


@dataclass(frozen=True)
class InstanceRef:
    """The instance as templates see it (``id`` is its UUID as a string).

    ``namespace`` and ``hostname`` are what the instance row stores (decided at admission);
    left out (offline renders) they are derived from the tenant and instance names.
    """

    name: str
    id: str
    namespace: str | None = None
    hostname: str | None = None
    #: How often the release's ``admin_credentials.rotates`` credential was rotated.
    credentials_rotation: int = 0
    #: Created from another instance's backups: ``(source namespace, time or None)``;
    #: templates see ``instance.restore.namespace`` and ``instance.restore.time``.
    restore: tuple[str, str | None] | None = None


@dataclass(frozen=True)
class RenderedStack:
    """Every object of one instance, in apply order: the baseline first, then the stack."""

    objects: tuple[dict[str, Any], ...]
    #: ``sha256:…`` over the canonical JSON of all objects (what the reconciler compares).
    digest: str
    namespace: str
    #: The storage the plan-dependent volumes were rendered with: the plan's, raised to the
    #: instance's storage floor (``controlplane.rendering.storage``).
    storage: str = ""
    #: The canonical JSON of each object, kept from the render (not part of equality).
    _texts: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def object_digests(self) -> dict[str, str]:
        """``object_id`` → ``sha256:…`` of that object's canonical JSON."""
        texts = self._texts or tuple(canonical_json(obj) for obj in self.objects)
        return {
            object_id(obj): _sha256(text) for obj, text in zip(self.objects, texts, strict=True)
        }


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def object_yaml(obj: Mapping[str, Any]) -> bytes:
    """One rendered object as deterministic YAML (no document marker): how files show it."""
    return yaml_rs.dumps(obj).removeprefix("---\n").encode()


_YAML_LINE = re.compile(r"at line (\d+)")
_WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})


class Renderer:
    """Renders releases; holds the caches (compiled templates, schema validators)."""

    def __init__(
        self,
        *,
        server_secret: bytes,
        kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
        domain: str = "apps.city-platform.local",
        ingress_namespace: str = "ingress-nginx",
        private_ranges: Sequence[str] = baseline_module.DEFAULT_PRIVATE_RANGES,
        lint_templates: bool = True,
        bytecode: SharedBytecode | None = None,
    ) -> None:
        """``lint_templates=False``: skip the publication-time template checks that do not
        change what renders (``compile_bundle``); for renderers of published releases only.
        ``bytecode``: compiled templates shared with other render processes."""
        if not supported(kubernetes_version):
            raise InvalidInput(
                f"There are no Kubernetes schemas for version {kubernetes_version!r}.",
                errors=[ErrorItem("kubernetes_version", "not a supported Kubernetes minor")],
                hint="Use a version such as 1.33.",
            )
        self._server_secret = server_secret
        self.kubernetes_version = kubernetes_version
        self.domain = domain
        self.ingress_namespace = ingress_namespace
        self.private_ranges = tuple(private_ranges)
        self._bundles = BundleCache(lint=lint_templates, bytecode=bytecode)
        self._parameters = ParameterValidators()
        self._schemas = KubernetesSchemas(kubernetes_version)

    def __repr__(self) -> str:
        # Keep the server secret out of reprs and tracebacks.
        return f"Renderer(kubernetes_version={self.kubernetes_version!r}, domain={self.domain!r})"

    def resolve_parameters(
        self, release: ServiceRelease, parameters: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The parameters with the schema's defaults applied; raises ParameterInvalid."""
        return resolve(self._parameters, release.parameters, parameters)

    def compiled(self, release: ServiceRelease) -> CompiledBundle:
        """The release's templates, compiled (once per bundle); raises TemplateInvalid."""
        return self._bundles.get(release.bundle, release.version.templates)

    def render(
        self,
        release: ServiceRelease,
        *,
        plan: str,
        tenant: TenantRef,
        instance: InstanceRef,
        parameters: Mapping[str, Any],
        storage_floor: str | None = None,
        tls: TlsIssuer | None = None,
        target: TargetRef | None = None,
    ) -> RenderedStack:
        """Render one instance; ``storage_floor`` is the largest storage it ever had.

        ``target`` (its capabilities, backup destination) is ``target.*`` in templates;
        without it templates see a target that declares nothing.

        ``tls`` (the target's cert-manager issuer) gives every Ingress ``spec.tls`` and a
        ``Certificate``; without it the stack (and its digest) is what the templates make.

        ``plan.storage`` in the template context is the plan's storage raised to the floor,
        so a plan change down never asks a volume to shrink.
        """
        # The stored namespace: existing instances keep the one they were created with.
        namespace = instance.namespace or namespace_for(tenant.slug, instance.name)
        chosen = release.plan(plan)
        if chosen is None:
            known = ", ".join(p.name for p in release.plans)
            raise InvalidInput(
                f"Service {release.name} has no plan {plan!r}.",
                errors=[ErrorItem("plan", f"is not one of {known}")],
                hint=f"Plans: {known}.",
            )
        params = self.resolve_parameters(release, parameters)
        if instance.hostname and "hostname" in params and not params["hostname"]:
            # The host decided at admission: templates frozen with an older default render
            # it too (``params.hostname or …`` takes it).
            params["hostname"] = instance.hostname
        bundle = self.compiled(release)
        credentials = release.credentials()
        rotates = credentials.rotates if credentials else None
        secrets = SecretValues(
            self._server_secret,
            instance.id,
            rotated=(rotates, instance.credentials_rotation) if rotates else None,
        )
        storage = with_floor(chosen.storage, storage_floor)
        context = {
            "tenant": {"slug": tenant.slug, "name": tenant.name, "nis_code": tenant.nis_code},
            "instance": {
                "name": instance.name,
                "namespace": namespace,
                "id": instance.id,
                "restore": (
                    {"namespace": instance.restore[0], "time": instance.restore[1]}
                    if instance.restore
                    else None
                ),
            },
            "service": {
                "name": release.name,
                "version": release.version.version,
                "app_version": release.version.app_version,
            },
            "plan": {
                "name": chosen.name,
                "replicas": chosen.replicas,
                "cpu": {"request": chosen.cpu.request, "limit": chosen.cpu.limit},
                "memory": {"request": chosen.memory.request, "limit": chosen.memory.limit},
                "storage": storage,
            },
            "params": params,
            "images": dict(release.version.images),
            "secrets": secrets,
            "platform": {"domain": self.domain},
            "target": (target or TargetRef()).context(),
        }
        try:
            return self._build(
                release, bundle, context, chosen, tenant, instance, namespace,
                tls=tls, target=target,
            )  # fmt: skip
        except InvalidInput as exc:
            # Schema and policy messages quote offending values (and keys land in
            # locations); a misplaced `secrets.*` value is a credential, and these
            # messages end up in instance status, the database and logs.
            _scrub(exc, given_values(secrets))
            raise

    def _build(
        self,
        release: ServiceRelease,
        bundle: CompiledBundle,
        context: dict[str, Any],
        chosen: Plan,
        tenant: TenantRef,
        instance: InstanceRef,
        namespace: str,
        *,
        tls: TlsIssuer | None = None,
        target: TargetRef | None = None,
    ) -> RenderedStack:
        secrets: SecretValues = context["secrets"]
        parsed = self._parse(bundle, bundle.render(context))
        stack = [obj for _, obj in parsed]
        # The platform's traits (security context, token, resources) before any check.
        conflicts = traits.apply_traits(
            parsed,
            resources=traits.resources_from(context["plan"]),
            location=bundle.location,
            source=release.bundle.files,
        )
        # A refused trait is reported once, by the template file, not again by the policy.
        refused = {traits.refused_key(item) for item in conflicts}

        where = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in stack]
        allowed_images = frozenset(release.version.images.values())
        violations: list[ErrorItem] = list(conflicts)
        for obj, at in zip(stack, where, strict=True):
            violations.extend(
                item
                for item in policy.check_object(obj, at, allowed_images)
                if traits.refused_key(item) not in refused
            )
        if tls is not None:
            stack.extend(with_tls(stack, tls))
        if target is not None:
            stack.extend(target.backup_secrets(stack))
        # Pods read ConfigMaps and Secrets when they start: a digest of what each pod
        # template reads makes a configuration change roll its pods (keyed: Secrets).
        rollout.stamp_config_digests(
            stack, key=rollout.digest_key(self._server_secret, instance.id)
        )

        labels = standard_labels(
            service=release.name,
            app_version=release.version.app_version,
            instance_name=instance.name,
            instance_id=instance.id,
            tenant_slug=tenant.slug,
            namespace=namespace,
            plan=chosen.name,
        )
        base = baseline_module.baseline(
            namespace=namespace,
            plan=chosen,
            network=release.network,
            instance_name=instance.name,
            stack=stack,
            ingress_namespace=self.ingress_namespace,
            private_ranges=self.private_ranges,
        )
        if target is not None:
            base.extend(baseline_module.cloudnative_pg_policies(stack, **target.network()))
        objects = [*base, *stack]
        for obj in objects:
            _stamp(obj, namespace, labels)

        invalid: list[ErrorItem] = []
        seen: set[str] = set()
        given = given_values(secrets)
        for obj in objects:
            oid = object_id(obj)
            at = f"{obj['kind']}/{obj['metadata']['name']}"
            if oid in seen:
                invalid.append(
                    ErrorItem(at, f"{oid} is rendered twice (or clashes with the baseline)")
                )
            seen.add(oid)
            invalid.extend(self._schemas.validate(obj, at))
        # One canonical JSON per object serves the leak check, the digest of the stack
        # (the JSON of the list is these joined) and the per-object digests.
        texts = tuple(canonical_json(obj) for obj in objects)
        if given:
            for obj, text in zip(objects, texts, strict=True):
                if any(value in text for value in given):
                    at = f"{obj['kind']}/{obj['metadata']['name']}"
                    violations.extend(policy.leaked_secrets(obj, at, given))
        if invalid:
            raise ManifestInvalid(
                f"The stack of {release.name} {release.version.version} is not valid for "
                f"Kubernetes {self.kubernetes_version}.",
                errors=invalid + violations,
                hint="Fix the templates: the locations name the object and field.",
            )
        if violations:
            raise PolicyViolation(
                f"The stack of {release.name} {release.version.version} breaks the platform "
                "security policy.",
                errors=violations,
                hint="docs/rendering.md lists the rules and how to meet them.",
            )
        body = "[" + ",".join(texts) + "]"
        return RenderedStack(
            objects=tuple(objects),
            digest=_sha256(body),
            namespace=namespace,
            storage=str(context["plan"]["storage"]),
            _texts=texts,
        )

    def _parse(
        self, bundle: CompiledBundle, files: list[tuple[str, str]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(file, object)`` of every rendered file; every problem reported at once."""
        objects: list[tuple[str, dict[str, Any]]] = []
        errors: list[ErrorItem] = []
        for name, text in files:
            try:
                # The trailing empty document makes yaml-rs always return a list of
                # documents, so that a single document that is a list is not mistaken
                # for several documents.
                loaded = yaml_rs.loads(
                    text + "\n---\n",
                    parse_datetime=False,
                    duplicate_key_policy=yaml_rs.DuplicateKeyPolicy.Error,
                )
            except yaml_rs.YAMLDecodeError as exc:
                message = str(exc)
                match = _YAML_LINE.search(message)
                line = int(match.group(1)) if match else None
                first = message.splitlines()[0] if message else "invalid YAML"
                rest = message.strip().splitlines()[-1] if message else ""
                detail = first if first == rest else f"{first}: {rest}"
                errors.append(
                    ErrorItem(
                        bundle.location(name, line),
                        f"the rendered YAML is invalid ({detail})"
                        + ("; the line counts lines of the rendered output" if line else ""),
                    )
                )
                continue
            documents = loaded if isinstance(loaded, list) else [loaded]
            for index, document in enumerate(documents):
                if document is None:
                    continue
                if not _is_object(document):
                    errors.append(
                        ErrorItem(
                            bundle.location(name),
                            f"document {index + 1} is not a Kubernetes object: each YAML "
                            "document must be a mapping with apiVersion, kind and metadata.name",
                        )
                    )
                    continue
                objects.append((name, document))
        if errors:
            raise TemplateInvalid(
                "The templates of this service do not render to Kubernetes objects.",
                errors=errors,
                hint="Fix the template at the named file.",
            )
        return objects


def _scrub(exc: InvalidInput, given: frozenset[str]) -> None:
    """Replace every generated credential in the error's texts by ``[redacted]``."""
    if not given:
        return

    def clean(text: str) -> str:
        for value in given:
            text = text.replace(value, "[redacted]")
        return text

    exc.detail = clean(exc.detail)
    exc.hint = clean(exc.hint) if exc.hint else exc.hint
    exc.errors = [ErrorItem(clean(e.location), clean(e.message)) for e in exc.errors]
    exc.args = (exc.detail,)


def _is_object(document: Any) -> bool:
    if not isinstance(document, dict):
        return False
    metadata = document.get("metadata")
    return (
        isinstance(document.get("apiVersion"), str)
        and isinstance(document.get("kind"), str)
        and isinstance(metadata, dict)
        and isinstance(metadata.get("name"), str)
        and bool(metadata["name"])
    )


def _stamp(obj: dict[str, Any], namespace: str, labels: Mapping[str, str]) -> None:
    """Namespace (when namespaced) and the platform's labels, on the object and its pods."""
    metadata = obj["metadata"]
    if obj["kind"] not in policy.CLUSTER_SCOPED_KINDS:
        metadata["namespace"] = namespace
    _label(metadata, labels)
    for _, template in policy.pod_templates(obj):
        if template is obj:
            continue
        meta = template.get("metadata")
        if meta is None:
            meta = template["metadata"] = {}  # type: ignore[index]
        if isinstance(meta, dict):
            _label(meta, labels)
    spec = obj.get("spec")
    if obj["kind"] == "CronJob" and isinstance(spec, dict):
        job = spec.get("jobTemplate")
        if isinstance(job, dict):
            _label(job.setdefault("metadata", {}), labels)
    if obj["kind"] == "StatefulSet" and isinstance(spec, dict):
        # The API server never updates volumeClaimTemplates: only labels that stay the same
        # across plan changes and upgrades may go there.
        stable = {k: v for k, v in labels.items() if k not in CHANGING_LABELS}
        for claim in spec.get("volumeClaimTemplates") or []:
            if isinstance(claim, dict):
                _label(claim.setdefault("metadata", {}), stable)


def _label(metadata: Any, labels: Mapping[str, str]) -> None:
    if not isinstance(metadata, dict):
        return
    current = metadata.get("labels")
    if current is None:
        metadata["labels"] = dict(labels)
    elif isinstance(current, dict):
        current.update(labels)
