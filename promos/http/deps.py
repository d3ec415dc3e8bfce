"""FastAPI dependencies: the app's state, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBasic, HTTPBasicCredentials, HTTPBearer
from fastapi.security.http import HTTPAuthorizationCredentials
from starlette.types import Scope

from promos.auth.errors import AdminRequired, ScopeMissing
from promos.auth.service import Principal, Route
from promos.http.ratelimit import client_key
from promos.state import AppState

# Declared for OpenAPI's sake; the header itself is read by the Authenticator.
_bearer = HTTPBearer(auto_error=False, description="A sign-in token or an API key")
_basic = HTTPBasic(auto_error=False, description="A user's name and password")


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.promos
    return state


State = Annotated[AppState, Depends(get_state)]


def route_of(scope: Scope) -> Route:
    """The route being called: its method and path template (set once the router matched)."""
    return scope["method"], scope["route"].path


async def current_principal(
    request: Request,
    state: State,
    _bearer_doc: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    _basic_doc: Annotated[HTTPBasicCredentials | None, Security(_basic)] = None,
) -> Principal:
    """The authenticated caller; 401 without a valid credential."""
    principal = await authenticate(request, state)
    if principal.scopes is not None and getattr(request.scope["route"], "need", None) is None:
        # Secure by default: a route that declares no scope (promos.http.scopes) is closed to
        # every scoped key, whatever it holds.
        raise ScopeMissing(
            "this route declares no scope, so no scoped API key opens it: use a key without scopes"
        )
    return principal


async def authenticate(request: Request, state: AppState) -> Principal:
    """The caller of this request, by its credential; 401 without a valid one."""
    principal = await state.authenticator.authenticate(
        request.headers.get("authorization"),
        request.headers.get("x-api-key"),
        route=route_of(request.scope),
        client=client_key(request.scope),
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def admin_principal(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be an admin; 403 otherwise."""
    if not principal.is_admin:
        raise AdminRequired("only an admin may do this")
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
