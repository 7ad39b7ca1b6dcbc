"""`cityctl target list | show | create | grant | revoke`: where instances go (clusters or
GitOps directories), and which tenants may place instances there."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.commands._shared import API, YesOpt, confirm, seg
from cli.errors import CliError, ExitCode
from cli.output import Format, OutputOpt, emit, stderr
from cli.state import state

app = typer.Typer(help="Targets: Kubernetes clusters or GitOps directories.", no_args_is_help=True)

COLUMNS = [
    ("name", "NAME"),
    ("kind", "KIND"),
    ("kubernetes_version", "KUBERNETES"),
    ("is_default", "DEFAULT"),
    ("services", "SERVICES"),
    ("capabilities", "CAPABILITIES"),
    ("config", "CONFIG"),
]


@app.command("list")
def list_(output: OutputOpt = Format.TABLE) -> None:
    """List the targets.

    Example: cityctl target list -o json
    """
    with state.client() as client:
        emit(client.list_all(f"{API}/targets"), output, COLUMNS)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Target name.")], output: OutputOpt = Format.YAML
) -> None:
    """Show one target and the tenants it is granted to.

    Example: cityctl target show local -o json
    """
    with state.client() as client:
        target = client.get_json(f"{API}/targets/{seg(name)}")
        grants = client.list_all(f"{API}/targets/{seg(name)}/tenants")
    target["granted_to"] = [g["tenant"] for g in grants]
    if target.get("is_default"):
        stderr.print("The default target: every tenant may use it, granted or not.")
    emit(target, output, [*COLUMNS, ("granted_to", "GRANTED TO")])


GRANT_COLUMNS = [
    ("target", "TARGET"),
    ("tenant", "TENANT"),
    ("granted_by", "GRANTED BY"),
    ("granted_at", "GRANTED AT"),
]


@app.command()
def grant(
    name: Annotated[str, typer.Argument(help="Target name.")],
    tenant: Annotated[str, typer.Argument(help="Tenant slug.")],
    output: OutputOpt = Format.TABLE,
) -> None:
    """Allow a tenant to place instances on a target (operators; idempotent).

    Example: cityctl target grant prod-gent gent
    """
    with state.client() as client:
        answer = client.call("POST", f"{API}/targets/{seg(name)}/tenants/{seg(tenant)}")
    granted = answer.json()
    already = answer.status_code == 200
    stderr.print(
        f"Tenant {granted['tenant']} {'already had' if already else 'now has'} "
        f"target {granted['target']}."
    )
    emit(granted, output, GRANT_COLUMNS)


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="Target name.")],
    tenant: Annotated[str, typer.Argument(help="Tenant slug.")],
    yes: YesOpt = False,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Take a target away from a tenant (refused while its instances use the target).

    Example: cityctl target revoke prod-gent gent --yes
    """
    confirm(f"revoke target {name} from tenant {tenant}", yes=yes)
    with state.client() as client:
        client.call("DELETE", f"{API}/targets/{seg(name)}/tenants/{seg(tenant)}")
    stderr.print(f"Tenant {tenant} can no longer place instances on target {name}.")
    emit({"target": name, "tenant": tenant, "granted": False}, output)


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Target name (a DNS label), e.g. prod-gent.")],
    kind: Annotated[str, typer.Option(help="kubernetes or gitops.")],
    kubeconfig: Annotated[
        str | None, typer.Option(help="kubernetes: path of the kubeconfig on the server.")
    ] = None,
    kube_context: Annotated[
        str | None, typer.Option("--kube-context", help="kubernetes: context in the kubeconfig.")
    ] = None,
    in_cluster: Annotated[
        bool, typer.Option("--in-cluster", help="kubernetes: use the server's service account.")
    ] = False,
    path: Annotated[
        str | None,
        typer.Option(
            help="gitops: directory on the server to write stacks into; it must lie under the "
            "server's GitOps root (a relative path is taken under it)."
        ),
    ] = None,
    git_commit: Annotated[
        bool, typer.Option("--git-commit", help="gitops: commit each reconcile batch.")
    ] = False,
    observe_kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--observe-kubeconfig",
            help="gitops: kubeconfig on the server with read access to the cluster the GitOps "
            "controller applies to; instances then become Ready from observation instead of "
            "settling at Committed.",
        ),
    ] = None,
    observe_context: Annotated[
        str | None,
        typer.Option("--observe-context", help="gitops: context in --observe-kubeconfig."),
    ] = None,
    tls_cluster_issuer: Annotated[
        str | None,
        typer.Option(
            "--tls-cluster-issuer",
            help="cert-manager ClusterIssuer (it must exist in the cluster) that signs a "
            "Certificate for every Ingress of the instances on this target.",
        ),
    ] = None,
    kubernetes_version: Annotated[
        str | None,
        typer.Option("--kubernetes-version", help="Minor version to validate against, e.g. 1.33."),
    ] = None,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", help="Only for these services (repeatable; default: all)."),
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default target.")] = False,
    capability: Annotated[
        list[str] | None,
        typer.Option(
            "--capability",
            help="What runs on the target for instances to use (repeatable): cloudnative-pg "
            "(the CloudNativePG operator; databases become CloudNativePG Clusters).",
        ),
    ] = None,
    backup_destination: Annotated[
        str | None,
        typer.Option(
            "--backup-destination",
            help="cloudnative-pg: object store for database backups, s3://BUCKET/PREFIX.",
        ),
    ] = None,
    backup_endpoint: Annotated[
        str | None,
        typer.Option(
            "--backup-endpoint", help="cloudnative-pg: https URL of a non-AWS object store."
        ),
    ] = None,
    backup_credentials_file: Annotated[
        str | None,
        typer.Option(
            "--backup-credentials-file",
            help="cloudnative-pg: file on the server with ACCESS_KEY_ID=… and "
            "SECRET_ACCESS_KEY=… lines for the object store.",
        ),
    ] = None,
    cnpg_operator_namespace: Annotated[
        str | None,
        typer.Option(
            "--cnpg-operator-namespace",
            help="cloudnative-pg: the namespace the operator runs in (default cnpg-system).",
        ),
    ] = None,
    apiserver_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--apiserver-cidr",
            help="cloudnative-pg: an address range of the Kubernetes API, for the database "
            "pods' egress (repeatable; default: anywhere on ports 443 and 6443).",
        ),
    ] = None,
    output: OutputOpt = Format.TABLE,
) -> None:
    """Register a target (operators).

    Example: cityctl target create gitops-main --kind gitops --path /srv/gitops --default
    """
    config: dict[str, Any]
    if kind == "gitops":
        if path is None:
            raise CliError(
                "A gitops target needs --path.",
                exit_code=ExitCode.USAGE,
                hint="Write e.g. --kind gitops --path /srv/gitops.",
            )
        config = {"kind": "gitops", "path": path, "git_commit": git_commit}
        if observe_kubeconfig is not None:
            config["observe_kubeconfig"] = observe_kubeconfig
        if observe_context is not None:
            config["observe_context"] = observe_context
    elif observe_kubeconfig is not None or observe_context is not None:
        raise CliError(
            "--observe-kubeconfig and --observe-context are for gitops targets.",
            exit_code=ExitCode.USAGE,
            hint="A kubernetes target observes its cluster through --kubeconfig already.",
        )
    elif kind == "kubernetes":
        config = {"kind": "kubernetes", "in_cluster": in_cluster}
        if kubeconfig is not None:
            config["kubeconfig"] = kubeconfig
        if kube_context is not None:
            config["context"] = kube_context
    else:
        raise CliError(
            f"--kind {kind!r} is not a target kind.",
            exit_code=ExitCode.USAGE,
            hint="Use --kind kubernetes or --kind gitops.",
        )
    if tls_cluster_issuer is not None:
        config["tls_issuer"] = {"kind": "ClusterIssuer", "name": tls_cluster_issuer}
    for key, value in (
        ("backup_destination", backup_destination),
        ("backup_endpoint", backup_endpoint),
        ("backup_credentials_file", backup_credentials_file),
        ("cnpg_operator_namespace", cnpg_operator_namespace),
        ("apiserver_cidrs", apiserver_cidr or None),
    ):
        if value is not None:
            config[key] = value
    body: dict[str, Any] = {
        "name": name,
        "config": config,
        "services": service or [],
        "capabilities": capability or [],
        "is_default": default,
    }
    if kubernetes_version is not None:
        body["kubernetes_version"] = kubernetes_version
    with state.client() as client:
        target = client.call("POST", f"{API}/targets", json=body, create=True).json()
    stderr.print(f"Target {target['name']} ({target['kind']}) created.")
    emit(target, output, COLUMNS)
