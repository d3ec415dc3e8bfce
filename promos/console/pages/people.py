"""Users and API keys (admins only): list, create, disable, revoke.

Changes go through ``promos.auth.changes``, as the API's and the command line's do, audited
with the signed-in person as actor. A new key's secret is shown in the answer to the post
that made it, and nowhere else: not in a redirect, a session or a log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from promos.auth import changes, twofactor
from promos.auth import service as auth
from promos.auth.errors import (
    InvalidExpiry,
    InvalidScope,
    InvalidUsername,
    UserExists,
    WeakPassword,
)
from promos.auth.schemas import ApiKeyCreate, ApiKeyRotate, UserCreate
from promos.auth.scopes import Scope, parse_scope
from promos.console import sessions
from promos.console.deps import PREFIX, Admin, render, see_other
from promos.console.forms import Form, parse, text_values
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.http.deps import State
from promos.http.pagination import decode_cursor

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
ROLES = (("sales", "Sales"), ("admin", "Admin"))
ROLE_HINT = "Sales: every promotion, but no users or keys. Admin: everything."
_USER_MESSAGES = {
    "username": {"string_pattern_mismatch": "No spaces or colons (HTTP Basic needs that)."},
}


@router.get("/users")
async def users(request: Request, state: State, _: Admin, after: After = None) -> Response:
    """Every user, disabled ones too, oldest first; who has two-factor sign-in; whether
    admins must."""
    async with state.database.begin() as conn:
        page = await auth.users_page(conn, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,)))
        required = await twofactor.required_for_admins(conn)
    return render(
        request,
        "people/users.html",
        {
            "title": "Users",
            "users": page.items,
            "required": required,
            **pager(request, page, after),
        },
    )


@router.post("/users/{user_id}/two-factor/reset")
async def reset_two_factor(user_id: Id, state: State, person: Admin) -> Response:
    """Turn the user's two-factor sign-in off (a lost device): audited."""
    async with state.database.begin() as conn:
        user = await changes.reset_two_factor(
            conn, actor=person.principal, user_id=user_id, now=state.clock()
        )
        await sessions.set_flash(
            conn, person.id, f"Two-factor sign-in of {user.username} turned off."
        )
    state.authenticator.forget_all()
    return see_other(f"{PREFIX}/users")


@router.post("/users/two-factor-policy")
async def two_factor_policy(request: Request, state: State, person: Admin) -> Response:
    """Require (or stop requiring) a second factor of every admin: audited. An admin must
    have it on themselves first (the page says so)."""
    required = (await request.form()).get("require") == "on"
    async with state.database.begin() as conn:
        await changes.set_two_factor_required(
            conn, actor=person.principal, required=required, now=state.clock()
        )
        message = (
            "Admins must now sign in with a second factor."
            if required
            else "Admins no longer need a second factor."
        )
        await sessions.set_flash(conn, person.id, message)
    state.authenticator.forget_all()
    return see_other(f"{PREFIX}/users")


def _user_form(request: Request, form: Form, *, status_code: int = 200) -> Response:
    return render(
        request,
        "people/user_new.html",
        {"title": "New user", "form": form, "roles": ROLES, "role_hint": ROLE_HINT},
        status_code=status_code,
    )


@router.get("/users/new")
async def new_user(request: Request, _: Admin) -> Response:
    return _user_form(request, Form())


@router.post("/users/new")
async def create_user(request: Request, state: State, person: Admin) -> Response:
    values, form = parse(UserCreate, await request.form(), messages=_USER_MESSAGES)
    if values is None:
        form.values.pop("password", None)
        return _user_form(request, form, status_code=422)
    try:
        async with state.database.begin() as conn:
            user = await changes.create_user(
                conn,
                actor=person.principal,
                username=values.username,
                password=values.password,
                role=values.role,
                now=state.clock(),
            )
            await sessions.set_flash(conn, person.id, f"User {user.username} created.")
    except (UserExists, InvalidUsername) as exc:
        form.values.pop("password", None)
        message = "That name is taken." if isinstance(exc, UserExists) else exc.message
        return _user_form(request, form.fail("username", message), status_code=422)
    except WeakPassword as exc:
        return _user_form(request, form.fail("password", exc.message), status_code=422)
    return see_other(f"{PREFIX}/users")


@router.post("/users/{user_id}/disable")
async def disable_user(user_id: Id, state: State, person: Admin) -> Response:
    """Disable the user: their sessions, tokens and password stop working."""
    async with state.database.begin() as conn:
        user = await changes.disable_user(
            conn, actor=person.principal, user_id=user_id, now=state.clock()
        )
        await sessions.set_flash(conn, person.id, f"User {user.username} disabled.")
    state.authenticator.forget_all()
    return see_other(f"{PREFIX}/users")


@router.get("/api-keys")
async def api_keys(request: Request, state: State, _: Admin, after: After = None) -> Response:
    """Every API key, revoked ones too (never their secrets), oldest first."""
    async with state.database.begin() as conn:
        page = await auth.list_api_keys(
            conn, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,))
        )
    return render(
        request,
        "people/api_keys.html",
        {"title": "API keys", "keys": page.items, **pager(request, page, after)},
    )


SCOPES_HINT = (
    "One per line, KIND:ACTION or KIND:ACTION:ID,ID, e.g. promocodes:use or games:use:galaxy "
    "(docs/operations.md lists them). Empty: every scope of the role."
)


def _key_form(request: Request, form: Form, *, status_code: int = 200) -> Response:
    return render(
        request,
        "people/api_key_new.html",
        {
            "title": "New API key",
            "form": form,
            "roles": ROLES,
            "role_hint": ROLE_HINT,
            "scopes_hint": SCOPES_HINT,
        },
        status_code=status_code,
    )


def _day_start(text: str) -> datetime | None:
    """The start (UTC) of the day typed, or None if none was; ``ValueError`` if not a day."""
    if not text.strip():
        return None
    return datetime.combine(date.fromisoformat(text.strip()), time(), tzinfo=UTC)


GRACES = (
    ("0", "Not at all: it stops now"),
    ("3600", "One more hour"),
    ("86400", "One more day"),
    ("604800", "One more week"),
    ("2592000", "30 more days"),
)


@router.get("/api-keys/{key_id}/rotate")
async def rotate_form(request: Request, key_id: Id, state: State, _: Admin) -> Response:
    async with state.database.begin() as conn:
        key = await auth.get_api_key(conn, key_id)
    return _rotate_form(request, key, Form())


def _rotate_form(
    request: Request, key: auth.ApiKey, form: Form, *, status_code: int = 200
) -> Response:
    return render(
        request,
        "people/api_key_rotate.html",
        {"title": f"Rotate {key.name}", "key": key, "form": form, "graces": GRACES},
        status_code=status_code,
    )


@router.post("/api-keys/{key_id}/rotate")
async def rotate_api_key(request: Request, key_id: Id, state: State, person: Admin) -> Response:
    """Give the key a new secret and show it, this once (as a new key's is shown)."""
    values, form = parse(ApiKeyRotate, await request.form())
    if values is None:
        async with state.database.begin() as conn:
            key = await auth.get_api_key(conn, key_id)
        return _rotate_form(request, key, form, status_code=422)
    async with state.database.begin() as conn:
        new = await changes.rotate_api_key(
            conn,
            actor=person.principal,
            key_id=key_id,
            grace=timedelta(seconds=values.grace_seconds),
            now=state.clock(),
        )
    state.authenticator.forget_all()
    return render(
        request,
        "people/api_key_created.html",
        {
            "title": "API key rotated",
            "heading": "API key rotated",
            "key": new.key,
            "secret": new.secret,
        },
        status_code=201,
    )


def _scopes(text: str) -> list[Scope] | None:
    """The scopes typed one per line (None: none typed), or ``InvalidScope``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [parse_scope(line) for line in lines] or None


@router.get("/api-keys/new")
async def new_api_key(request: Request, _: Admin) -> Response:
    return _key_form(request, Form())


@router.post("/api-keys/new")
async def create_api_key(request: Request, state: State, person: Admin) -> Response:
    """Make the key and show its secret, this once (no redirect: the secret is in no URL,
    session or flash message)."""
    posted = await request.form()
    values, form = parse(ApiKeyCreate, {k: v for k, v in posted.items() if k in ("name", "role")})
    form.values.update(text_values(posted, ("scopes", "expires_on")))
    scopes = expires_at = None
    try:
        scopes = _scopes(form.value("scopes"))
    except InvalidScope as exc:
        form.fail("scopes", exc.message)
    try:
        expires_at = _day_start(form.value("expires_on"))
    except ValueError:
        form.fail("expires_on", "A date, e.g. 2027-01-31.")
    if values is None or not form.ok:
        return _key_form(request, form, status_code=422)
    try:
        async with state.database.begin() as conn:
            new = await changes.create_api_key(
                conn,
                actor=person.principal,
                name=values.name,
                role=values.role,
                scopes=scopes,
                expires_at=expires_at,
                now=state.clock(),
            )
    except InvalidScope as exc:
        return _key_form(request, form.fail("scopes", exc.message), status_code=422)
    except InvalidExpiry:
        form.fail("expires_on", "A day after today.")
        return _key_form(request, form, status_code=422)
    return render(
        request,
        "people/api_key_created.html",
        {"title": "API key created", "key": new.key, "secret": new.secret},
        status_code=201,
    )


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: Id, state: State, person: Admin) -> Response:
    """Revoke the key: it stops working at once in this process, and within
    PROMOS_AUTH_CACHE_SECONDS in the others."""
    async with state.database.begin() as conn:
        key = await changes.revoke_api_key(
            conn, actor=person.principal, key_id=key_id, now=state.clock()
        )
        await sessions.set_flash(conn, person.id, f"API key {key.name} revoked.")
    state.authenticator.forget_all()
    return see_other(f"{PREFIX}/api-keys")
