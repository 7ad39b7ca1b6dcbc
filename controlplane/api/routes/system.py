"""Health, readiness, Prometheus metrics and ``whoami``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controlplane.api import schemas
from controlplane.api.deps import PrincipalDep, SessionDep, get_engine
from controlplane.api.routes.common import PROBLEMS
from controlplane.db.sessions import database_reachable
from controlplane.errors import Unavailable
from controlplane.tenants.services import get_tenant_by_id

router = APIRouter()


@router.get("/healthz", tags=["system"], summary="The process is alive.")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["system"],
    summary="The database is reachable.",
    responses={503: PROBLEMS[503]},
)
def readyz(request: Request) -> dict[str, str]:
    if not database_reachable(get_engine(request)):
        raise Unavailable("The database is not reachable.", hint="Check CONTROLPLANE_DATABASE_URL.")
    return {"status": "ready"}


@router.get(
    "/metrics",
    tags=["system"],
    summary="Prometheus metrics.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.get(
    "/api/v1/whoami",
    tags=["system"],
    response_model=schemas.WhoAmI,
    responses={401: PROBLEMS[401]},
)
def whoami(principal: PrincipalDep, session: SessionDep) -> schemas.WhoAmI:
    tenant = get_tenant_by_id(session, principal.tenant_id).slug if principal.tenant_id else None
    return schemas.WhoAmI(
        role=schemas.RoleName(principal.role),
        tenant=tenant,
        token_name=principal.token_name,
        actor=principal.actor,
    )
