"""`cityctl target list | show | create`: where instances go (clusters or GitOps directories)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cli.commands._shared import API, seg
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
    """Show one target.

    Example: cityctl target show embedded -o json
    """
    with state.client() as client:
        emit(client.get_json(f"{API}/targets/{seg(name)}"), output, COLUMNS)


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
        str | None, typer.Option(help="gitops: directory on the server to write stacks into.")
    ] = None,
    git_commit: Annotated[
        bool, typer.Option("--git-commit", help="gitops: commit each reconcile batch.")
    ] = False,
    kubernetes_version: Annotated[
        str | None,
        typer.Option("--kubernetes-version", help="Minor version to validate against, e.g. 1.33."),
    ] = None,
    service: Annotated[
        list[str] | None,
        typer.Option("--service", help="Only for these services (repeatable; default: all)."),
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default target.")] = False,
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
    body: dict[str, Any] = {
        "name": name,
        "config": config,
        "services": service or [],
        "is_default": default,
    }
    if kubernetes_version is not None:
        body["kubernetes_version"] = kubernetes_version
    with state.client() as client:
        target = client.call("POST", f"{API}/targets", json=body, create=True).json()
    stderr.print(f"Target {target['name']} ({target['kind']}) created.")
    emit(target, output, COLUMNS)
