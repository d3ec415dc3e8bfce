"""Sign-in, who-am-I, and the admin's users and API keys, under ``/v1``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response, status

from promos.audit import service as audit
from promos.auth import service
from promos.auth.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    ApiKeyPage,
    NewApiKeyOut,
    SignIn,
    TokenOut,
    UserCreate,
    UserOut,
    UserPage,
    WhoAmI,
)
from promos.http.deps import AdminPrincipal, CurrentPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.ratelimit import client_key

router = APIRouter(
    route_class=NativeRoute, prefix="/v1", tags=["auth"], responses={401: {"model": ErrorBody}}
)


@router.post(
    "/auth/tokens",
    status_code=status.HTTP_201_CREATED,
    responses={429: {"model": ErrorBody, "description": "too many failed sign-ins"}},
)
async def sign_in(request: Request, body: SignIn, state: State) -> TokenOut:
    """Exchange a user name and password for a bearer token (failed attempts are rate limited)."""
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=body.login)
    async with attempt, state.database.begin() as conn:
        issued = await service.sign_in(
            conn,
            username=body.login,
            password=body.password,
            ttl=timedelta(seconds=state.settings.token_ttl_seconds),
            now=state.clock(),
        )
    return TokenOut(
        token=issued.token, expires_at=issued.expires_at, user=UserOut.model_validate(issued.user)
    )


@router.get("/auth/me")
async def who_am_i(principal: CurrentPrincipal) -> WhoAmI:
    """The caller's identity and role."""
    return WhoAmI.model_validate(principal)


@router.delete("/auth/tokens/current", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(request: Request, state: State, principal: CurrentPrincipal) -> Response:
    """Revoke the bearer token this request was made with."""
    scheme, _sep, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.startswith(service.TOKEN_PREFIX):
        now = state.clock()
        async with state.database.begin() as conn:
            revoked = await service.revoke_token(conn, token.strip(), now=now)
            if revoked is not None:
                await audit.record(
                    conn,
                    actor=principal,
                    action="token.revoke",
                    target_type="token",
                    target_id=revoked,
                    at=now,
                )
        state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def create_user(body: UserCreate, state: State, principal: AdminPrincipal) -> UserOut:
    now = state.clock()
    async with state.database.begin() as conn:
        user = await service.create_user(
            conn, username=body.username, password=body.password, role=body.role, now=now
        )
        await audit.record(
            conn,
            actor=principal,
            action="user.create",
            target_type="user",
            target_id=user.id,
            after=user,
            at=now,
        )
    return UserOut.model_validate(user)


@router.get("/users")
async def list_users(
    state: State, _: AdminPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> UserPage:
    """Users (disabled ones too), oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.users_page(conn, limit=limit, after_key=after_key)
    return UserPage(items=[UserOut.model_validate(u) for u in page.items], **page_fields(page))


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def disable_user(user_id: int, state: State, principal: AdminPrincipal) -> Response:
    """Disable a user: their tokens and password stop working."""
    now = state.clock()
    async with state.database.begin() as conn:
        before = await service.get_user(conn, user_id, for_update=True)
        await service.disable_user(conn, user_id, now=now)
        await audit.record(
            conn,
            actor=principal,
            action="user.disable",
            target_type="user",
            target_id=user_id,
            before=before,
            after=await service.get_user(conn, user_id),
            at=now,
        )
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    responses={403: {"model": ErrorBody}},
)
async def create_api_key(
    body: ApiKeyCreate, state: State, principal: AdminPrincipal
) -> NewApiKeyOut:
    """A key for a service; its secret is in this response and nowhere else."""
    now = state.clock()
    async with state.database.begin() as conn:
        new = await service.create_api_key(conn, name=body.name, role=body.role, now=now)
        await audit.record(
            conn,
            actor=principal,
            action="api_key.create",
            target_type="api_key",
            target_id=new.key.id,
            after=new.key,
            at=now,
        )
    return NewApiKeyOut(**ApiKeyOut.model_validate(new.key).model_dump(), key=new.secret)


@router.get("/api-keys")
async def list_api_keys(
    state: State, _: AdminPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> ApiKeyPage:
    """API keys (revoked ones too, never their secrets), oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_api_keys(conn, limit=limit, after_key=after_key)
    return ApiKeyPage(items=[ApiKeyOut.model_validate(k) for k in page.items], **page_fields(page))


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def revoke_api_key(key_id: int, state: State, principal: AdminPrincipal) -> Response:
    now = state.clock()
    async with state.database.begin() as conn:
        before = await service.get_api_key(conn, key_id, for_update=True)
        await service.revoke_api_key(conn, key_id, now=now)
        await audit.record(
            conn,
            actor=principal,
            action="api_key.revoke",
            target_type="api_key",
            target_id=key_id,
            before=before,
            after=await service.get_api_key(conn, key_id),
            at=now,
        )
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
