"""``GET /metrics``: Prometheus' text format, for the metrics token or an admin credential."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPBearer

# The classic text format (0.0.4), which every Prometheus reads: the names are plain ASCII.
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from promos.auth.errors import AdminRequired
from promos.http.deps import State, route_of
from promos.http.errors import ErrorBody
from promos.observability.scrape import exposition

router = APIRouter(tags=["operations"])

# Declared for OpenAPI's sake; the header itself is read below.
_bearer = HTTPBearer(
    auto_error=False, description="PROMOS_METRICS_TOKEN, or an admin's token or API key"
)


async def scraper(request: Request, state: State) -> None:
    """Let in the bearer of ``PROMOS_METRICS_TOKEN``, or an admin; 401 or 403 otherwise."""
    authorization = request.headers.get("authorization")
    token = state.settings.metrics_token
    if token is not None and authorization is not None:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.get_secret_value().encode()
        ):
            return
    principal = await state.authenticator.authenticate(
        authorization, request.headers.get("x-api-key"), route=route_of(request.scope)
    )
    request.state.principal = principal
    if not principal.is_admin:
        raise AdminRequired("metrics need PROMOS_METRICS_TOKEN or an admin credential")


@router.get(
    "/metrics",
    dependencies=[Depends(scraper), Depends(_bearer)],
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_PLAIN_0_0_4: {"schema": {"type": "string"}}},
            "description": "Prometheus text format",
        },
        401: {"model": ErrorBody, "description": "No credential, or a wrong one."},
        403: {"model": ErrorBody, "description": "The credential is not an admin's."},
        429: {"model": ErrorBody, "description": "Too many failed passwords: see Retry-After."},
        503: {"model": ErrorBody, "description": "The database is unavailable."},
    },
)
async def metrics(state: State) -> Response:
    """Every worker's counters and histograms, and the codes left and outbox backlog now."""
    body = await exposition(state.database, now=state.clock())
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
