"""Sign-in, who-am-I, and the admin's users and API keys, under ``/v1``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response, status

from promos.audit import service as audit
from promos.auth import changes, service, twofactor
from promos.auth.errors import (
    InvalidCredentials,
    InvalidSecondFactor,
    WrongPassword,
    WrongSecondFactor,
)
from promos.auth.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    ApiKeyPage,
    ApiKeyRotate,
    AuthSettingsIn,
    AuthSettingsOut,
    CodeIn,
    EnrolmentOut,
    NewApiKeyOut,
    PasswordChange,
    PasswordReset,
    RecoveryCodesOut,
    SignIn,
    TokenOut,
    TwoFactorDisable,
    TwoFactorOut,
    UserCreate,
    UserOut,
    UserPage,
    WhoAmI,
)
from promos.auth.scopes import parse_scope
from promos.errors import InvalidInput
from promos.http.deps import AdminPrincipal, CurrentPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.ratelimit import client_key
from promos.http.scopes import OWN, needs
from promos.validation import PathId

router = APIRouter(
    route_class=NativeRoute, prefix="/v1", tags=["auth"], responses={401: {"model": ErrorBody}}
)


@router.post(
    "/auth/tokens",
    status_code=status.HTTP_201_CREATED,
    responses={
        401: {
            "model": ErrorBody,
            "description": "invalid_credentials, second_factor_required or invalid_second_factor",
        },
        429: {"model": ErrorBody, "description": "too many failed sign-ins"},
    },
)
async def sign_in(request: Request, body: SignIn, state: State) -> TokenOut:
    """Exchange a user name and password (and `otp`, for a user with two-factor sign-in) for a
    bearer token. Failed attempts, wrong second factors included, are rate limited."""
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=body.login)
    async with attempt, state.database.begin() as conn:
        issued = await service.sign_in(
            conn,
            username=body.login,
            password=body.password,
            otp=body.otp,
            ttl=timedelta(seconds=state.settings.token_ttl_seconds),
            now=state.clock(),
        )
    return TokenOut(
        token=issued.token, expires_at=issued.expires_at, user=UserOut.model_validate(issued.user)
    )


@router.get("/auth/me", dependencies=[OWN])
async def who_am_i(principal: CurrentPrincipal) -> WhoAmI:
    """The caller's identity and role."""
    return WhoAmI.model_validate(principal)


@router.delete("/auth/tokens/current", dependencies=[OWN], status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(request: Request, state: State, principal: CurrentPrincipal) -> Response:
    """Revoke the bearer token this request was made with."""
    token = _bearer_token(request)
    if token is not None:
        now = state.clock()
        async with state.database.begin() as conn:
            revoked = await service.revoke_token(conn, token, now=now)
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


@router.put(
    "/auth/password",
    dependencies=[OWN],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"model": ErrorBody, "description": "wrong_password or no_password"},
        429: {"model": ErrorBody, "description": "too many wrong passwords"},
    },
)
async def change_password(
    request: Request, body: PasswordChange, state: State, principal: CurrentPrincipal
) -> Response:
    """Change the signed-in user's password: the token this request was made with stays valid,
    every other token of theirs is revoked."""
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=principal.name)
    try:
        # A wrong current password counts as a failed sign-in: it is one, made with a token.
        async with attempt, state.database.begin() as conn:
            await changes.change_own_password(
                conn,
                actor=principal,
                current_password=body.current_password,
                new_password=body.new_password,
                keep_token=_bearer_token(request),
                now=state.clock(),
            )
    except InvalidCredentials:
        raise WrongPassword("current_password is not this user's password") from None
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _bearer_token(request: Request) -> str | None:
    """The sign-in token the request was made with, if it was."""
    scheme, _sep, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token.startswith(service.TOKEN_PREFIX) else None


@router.post(
    "/users",
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_201_CREATED,
    responses={403: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def create_user(body: UserCreate, state: State, principal: AdminPrincipal) -> UserOut:
    now = state.clock()
    async with state.database.begin() as conn:
        user = await changes.create_user(
            conn,
            actor=principal,
            username=body.username,
            password=body.password,
            role=body.role,
            now=now,
        )
    return UserOut.model_validate(user)


@router.get("/users", dependencies=[needs("people", "read")])
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
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"model": ErrorBody, "description": "admin_required, or cannot_disable_self"},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "last_admin: no other admin is enabled"},
    },
)
async def disable_user(user_id: PathId, state: State, principal: AdminPrincipal) -> Response:
    """Disable a user: their tokens and password stop working. An admin cannot disable their
    own user, nor the last enabled admin."""
    async with state.database.begin() as conn:
        await changes.disable_user(conn, actor=principal, user_id=user_id, now=state.clock())
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/users/{user_id}/password",
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def reset_password(
    user_id: PathId,
    body: PasswordReset,
    state: State,
    principal: AdminPrincipal,
) -> Response:
    """Set a user's password (an admin's reset): every sign-in token of theirs is revoked."""
    async with state.database.begin() as conn:
        await changes.reset_password(
            conn, actor=principal, user_id=user_id, password=body.password, now=state.clock()
        )
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api-keys",
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_201_CREATED,
    responses={403: {"model": ErrorBody}},
)
async def create_api_key(
    body: ApiKeyCreate, state: State, principal: AdminPrincipal
) -> NewApiKeyOut:
    """A key for a service; its secret is in this response and nowhere else."""
    async with state.database.begin() as conn:
        new = await changes.create_api_key(
            conn,
            actor=principal,
            name=body.name,
            role=body.role,
            scopes=None if body.scopes is None else [parse_scope(s) for s in body.scopes],
            expires_at=body.expires_at,
            now=state.clock(),
        )
    return NewApiKeyOut(**ApiKeyOut.model_validate(new.key).model_dump(), key=new.secret)


@router.get("/api-keys", dependencies=[needs("people", "read")])
async def list_api_keys(
    state: State, _: AdminPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> ApiKeyPage:
    """API keys (revoked ones too, never their secrets), oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_api_keys(conn, limit=limit, after_key=after_key)
    return ApiKeyPage(items=[ApiKeyOut.model_validate(k) for k in page.items], **page_fields(page))


@router.post(
    "/api-keys/{key_id}/rotate",
    dependencies=[needs("people", "manage")],
    responses={
        403: {"model": ErrorBody},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "api_key_revoked"},
    },
)
async def rotate_api_key(
    key_id: PathId, body: ApiKeyRotate, state: State, principal: AdminPrincipal
) -> NewApiKeyOut:
    """A new secret for the key (in this response and nowhere else); the one it replaces
    works `grace_seconds` longer. Its scopes, expiry and usage stay."""
    async with state.database.begin() as conn:
        new = await changes.rotate_api_key(
            conn,
            actor=principal,
            key_id=key_id,
            grace=timedelta(seconds=body.grace_seconds),
            now=state.clock(),
        )
    # This process stops trusting the old secret at once if there is no grace.
    state.authenticator.forget_all()
    return NewApiKeyOut(**ApiKeyOut.model_validate(new.key).model_dump(), key=new.secret)


@router.delete(
    "/api-keys/{key_id}",
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def revoke_api_key(key_id: PathId, state: State, principal: AdminPrincipal) -> Response:
    async with state.database.begin() as conn:
        await changes.revoke_api_key(conn, actor=principal, key_id=key_id, now=state.clock())
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- two-factor sign-in --------------------------------------------------------------------------

_OWN_2FA: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "two_factor_for_people: an API key has none"},
    409: {"model": ErrorBody, "description": "two_factor_enabled or two_factor_not_started"},
}
_CODES_LIMITED: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorBody,
        "description": "wrong_second_factor, wrong_password or two_factor_for_people",
    },
    409: {"model": ErrorBody, "description": "two_factor_not_started"},
    429: {"model": ErrorBody, "description": "too many wrong codes (they count as sign-ins)"},
}


@router.get("/auth/two-factor", dependencies=[OWN])
async def two_factor_status(state: State, principal: CurrentPrincipal) -> TwoFactorOut:
    """The caller's two-factor sign-in: on, pending, recovery codes left."""
    person = principal.kind == "user" and principal.id != 0
    async with state.database.read() as conn:
        found = await twofactor.status(conn, principal.id if person else 0)
        # Only people are held to it: an admin API key is not.
        required = person and principal.is_admin and await twofactor.required_for_admins(conn)
    return TwoFactorOut(
        enabled=found.enabled,
        pending=found.pending,
        recovery_codes_left=found.recovery_codes_left,
        required=required,
    )


@router.post(
    "/auth/two-factor",
    dependencies=[OWN],
    status_code=status.HTTP_201_CREATED,
    responses=_OWN_2FA,
)
async def start_two_factor(state: State, principal: CurrentPrincipal) -> EnrolmentOut:
    """Start enrolling: a new TOTP secret and its otpauth:// URI, not asked for at sign-in
    until confirmed (starting again replaces a pending one)."""
    async with state.database.begin() as conn:
        enrolment = await changes.start_two_factor(conn, actor=principal, now=state.clock())
    return EnrolmentOut(secret=enrolment.secret, uri=enrolment.uri)


@router.post("/auth/two-factor/confirm", dependencies=[OWN], responses=_CODES_LIMITED)
async def confirm_two_factor(
    request: Request, body: CodeIn, state: State, principal: CurrentPrincipal
) -> RecoveryCodesOut:
    """Turn two-factor sign-in on with a current code: the recovery codes, shown this once."""
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=principal.name)
    try:
        async with attempt, state.database.begin() as conn:
            codes = await changes.confirm_two_factor(
                conn, actor=principal, otp=body.otp, now=state.clock()
            )
    except InvalidSecondFactor as exc:
        raise WrongSecondFactor(exc.message) from None
    # A credential that could only enrol opens everything from now on.
    state.authenticator.forget_all()
    return RecoveryCodesOut(recovery_codes=codes)


@router.post(
    "/auth/two-factor/disable",
    dependencies=[OWN],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_CODES_LIMITED,
)
async def disable_two_factor(
    request: Request, body: TwoFactorDisable, state: State, principal: CurrentPrincipal
) -> Response:
    """Turn the caller's two-factor sign-in off, proven with `otp` (a current code or a
    recovery code) or `password`."""
    if not body.otp and not body.password:
        raise InvalidInput("send otp (a current code or a recovery code) or password")
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=principal.name)
    try:
        async with attempt, state.database.begin() as conn:
            await changes.disable_own_two_factor(
                conn, actor=principal, otp=body.otp, password=body.password, now=state.clock()
            )
    except InvalidSecondFactor as exc:
        raise WrongSecondFactor(exc.message) from None
    except InvalidCredentials:
        raise WrongPassword("password is not this user's password") from None
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{user_id}/two-factor",
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
)
async def reset_two_factor(user_id: PathId, state: State, principal: AdminPrincipal) -> Response:
    """Turn a user's two-factor sign-in off (a lost device): they sign in with their password
    alone until they enrol again."""
    async with state.database.begin() as conn:
        await changes.reset_two_factor(conn, actor=principal, user_id=user_id, now=state.clock())
    state.authenticator.forget_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/settings", dependencies=[needs("people", "read")])
async def auth_settings(state: State, _: AdminPrincipal) -> AuthSettingsOut:
    """The sign-in policies: whether admins must sign in with a second factor."""
    async with state.database.read() as conn:
        required = await twofactor.required_for_admins(conn)
    return AuthSettingsOut(require_two_factor_for_admins=required)


@router.put(
    "/auth/settings",
    dependencies=[needs("people", "manage")],
    responses={403: {"model": ErrorBody}},
)
async def change_auth_settings(
    body: AuthSettingsIn, state: State, principal: AdminPrincipal
) -> AuthSettingsOut:
    """Require (or stop requiring) a second factor of every admin. An admin without one is
    then limited to enrolling (docs/operations.md, "Two-factor sign-in")."""
    async with state.database.begin() as conn:
        await changes.set_two_factor_required(
            conn,
            actor=principal,
            required=body.require_two_factor_for_admins,
            now=state.clock(),
        )
    state.authenticator.forget_all()
    return AuthSettingsOut(require_two_factor_for_admins=body.require_two_factor_for_admins)
