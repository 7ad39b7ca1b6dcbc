"""Handing over the initial administrator credentials of an instance.

The values are read from the instance's cluster when asked, through its target: the
control plane never stores, logs or audits them. A target that cannot read its cluster
(a GitOps target without ``observe_kubeconfig``) refuses and says where they are.

This module must not know about HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from controlplane.catalog.models import AdminCredentials
from controlplane.catalog.publishing import find_version
from controlplane.errors import Conflict
from controlplane.provisioning.instances import Change, rotate_credentials
from controlplane.provisioning.models import Instance, Target
from controlplane.provisioning.targets.gitops import GitOpsTarget

if TYPE_CHECKING:
    from controlplane.provisioning.targets import StackTarget


class CredentialsNotDeclared(Conflict):
    """The service declares no administrator credentials."""

    code = "credentials_not_declared"


class CredentialsNotReadable(Conflict):
    """The control plane cannot read this instance's credentials back from its cluster."""

    code = "credentials_not_readable"


class CredentialsNotYetThere(Conflict):
    """The instance's credentials are not in its cluster yet."""

    code = "credentials_not_ready"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    secret: str
    namespace: str
    note: str

    def __repr__(self) -> str:
        # Never show the values, not even in a traceback.
        return f"<credentials in Secret {self.namespace}/{self.secret}>"


def declared(session: Session, instance: Instance) -> AdminCredentials:
    """What the instance's release declares, or :class:`CredentialsNotDeclared`."""
    record = find_version(session, instance.service, instance.version)
    found = record.to_release().credentials() if record is not None else None
    if found is None:
        raise CredentialsNotDeclared(
            f"{instance.service} {instance.version} declares no administrator credentials: "
            "its stack does not bootstrap an administrator from a Secret.",
            hint="See the service's documentation for how its first administrator signs in.",
        )
    return found


def rotate(
    session: Session, instance: Instance, *, expected_generation: int | None = None
) -> Change:
    """A new administrator credential for ``instance`` (see ``admin_credentials.note``)."""
    declared(session, instance)
    return rotate_credentials(session, instance=instance, expected_generation=expected_generation)


def read_credentials(
    session: Session, instance: Instance, *, target_for: Callable[[Target], StackTarget]
) -> Credentials:
    wanted = declared(session, instance)
    where = f"the Secret `{wanted.secret}` in namespace `{instance.namespace}`"
    row = session.exec(select(Target).where(Target.name == instance.target)).first()
    target = target_for(row) if row is not None else None
    read = getattr(target, "read_secret", None)
    if read is None and isinstance(target, GitOpsTarget) and target.observer is not None:
        from controlplane.provisioning.targets.kubernetes import KubernetesTarget

        read = KubernetesTarget(target.observer, name=target.name).read_secret
    if read is None:
        key = wanted.password_key.replace(".", "\\.")
        raise CredentialsNotReadable(
            f"The target {instance.target!r} writes to a GitOps repository and cannot read its "
            f"cluster: the credentials are in the SealedSecret `{wanted.secret}` in namespace "
            f"`{instance.namespace}`; someone with access to that cluster reads them with "
            f"`kubectl get secret {wanted.secret} -n {instance.namespace} "
            f"-o jsonpath='{{.data.{key}}}' | base64 -d`.",
            hint="Ask the people who run that cluster.",
        )
    data = read(instance.namespace, wanted.secret)
    if data is None or wanted.password_key not in data or wanted.username_key not in data:
        raise CredentialsNotYetThere(
            f"{where[0].upper()}{where[1:]} has no administrator credentials yet "
            f"(the instance is {instance.phase}).",
            hint=f"Wait until it is Ready: `cityctl instance show {instance.name}`.",
        )
    return Credentials(
        username=data[wanted.username_key],
        password=data[wanted.password_key],
        secret=wanted.secret,
        namespace=instance.namespace,
        note=wanted.note,
    )
