"""Sign-in and sign-out: a server-side session in an HttpOnly cookie."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from promos.auth import service as auth
from promos.auth import twofactor
from promos.auth.errors import InvalidCredentials, InvalidSecondFactor
from promos.auth.service import User
from promos.console import csrf, sessions
from promos.console.deps import (
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN,
    Person,
    delete_cookie,
    lifetime,
    local_path,
    render,
    see_other,
    session_of,
    set_cookie,
)
from promos.console.forms import Form, parse
from promos.console.routing import ConsoleRoute, SignInRoute
from promos.errors import TooManyRequests
from promos.http.deps import State
from promos.http.ratelimit import client_key

router = APIRouter(prefix=PREFIX, route_class=SignInRoute)
signed_in = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

# What the sign-in page says when it is sent to with ?m=...: fixed texts, never the query's.
NOTICES = {
    "signed-out": "You have signed out.",
    "ended": "Your session has ended. Please sign in again.",
    "code-expired": "The sign-in waited too long for its code. Please sign in again.",
}
# The cookie of a sign-in whose password was right, waiting for the second factor: a random
# secret (its digest stored, sessions.start_pending), never the password.
PENDING_COOKIE = "promos_pending"
CODE_PAGE = f"{SIGN_IN}/code"
# Whatever was wrong: the same words, whether the name is unknown, the password wrong or the
# user disabled.
WRONG = "Wrong user name or password."
WRONG_CODE = "Wrong code, or one used already. Type the current code, or a recovery code."


class SignInForm(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=255)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class CodeForm(BaseModel):
    otp: Annotated[str, Field(min_length=1, max_length=64)]


def _page(
    request: Request,
    state: State,
    form: Form,
    *,
    next_path: str,
    status_code: int = 200,
    notice: str | None = None,
    template: str = "signin.html",
) -> Response:
    cookie = request.cookies.get(csrf.SIGN_IN_COOKIE)
    fresh = cookie is None or len(cookie) > csrf.MAX_LENGTH
    token = csrf.new_token() if cookie is None or fresh else cookie
    response = render(
        request,
        template,
        {"title": "Sign in", "form": form, "next": next_path, "notice": notice},
        status_code=status_code,
        csrf_token=token,
    )
    if fresh:
        set_cookie(
            response, request, state.settings, csrf.SIGN_IN_COOKIE, token, same_site="strict"
        )
    return response


@router.get("/sign-in")
async def sign_in_page(
    request: Request,
    state: State,
    next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    m: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The sign-in form (signed-in people go on to the console)."""
    target = local_path(next_path)
    if session_of(request) is not None:
        return see_other(target)
    return _page(request, state, Form(), next_path=target, notice=NOTICES.get(m or ""))


@router.post("/sign-in")
async def sign_in(request: Request, state: State) -> Response:
    """Check the password (rate limited as every sign-in), start a new session, go on; for
    a user with two-factor sign-in, go on to the code's page instead."""
    data = await request.form()
    given_next = data.get("next")
    next_path = local_path(given_next if isinstance(given_next, str) else None)
    values, form = parse(SignInForm, data)
    if values is None:
        return _page(request, state, form, next_path=next_path, status_code=422)
    now = state.clock()
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=values.username)
    pending = None
    try:
        async with attempt, state.database.begin() as conn:
            user = await auth.verify_password(conn, values.username, values.password, lock=True)
            if user.two_factor:
                pending = await sessions.start_pending(conn, user_id=user.id, now=now)
            else:
                secret = await _start_session(request, state, conn, user)
    except InvalidCredentials:
        form.values.pop("password", None)
        form.problem = WRONG
        return _page(request, state, form, next_path=next_path, status_code=401)
    except TooManyRequests as exc:
        form.problem = f"Too many sign-in attempts. Try again in {exc.retry_after} s."
        response = _page(request, state, form, next_path=next_path, status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if pending is not None:
        response = see_other(f"{CODE_PAGE}?next={quote(next_path, safe='/')}")
        set_cookie(response, request, state.settings, PENDING_COOKIE, pending, same_site="strict")
        return response
    return _signed_in(request, state, secret, next_path)


async def _start_session(request: Request, state: State, conn: AsyncConnection, user: User) -> str:
    """A new session for ``user``: its cookie's secret. The session this browser had
    (another person's, or an old one) ends here."""
    secret, _ = await sessions.start(
        conn, user=user, now=state.clock(), lifetime=lifetime(state.settings)
    )
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await sessions.end(conn, old)
    return secret


def _signed_in(request: Request, state: State, secret: str, next_path: str) -> Response:
    response = see_other(next_path)
    set_cookie(response, request, state.settings, SESSION_COOKIE, secret)
    delete_cookie(response, request, state.settings, csrf.SIGN_IN_COOKIE)
    delete_cookie(response, request, state.settings, PENDING_COOKIE)
    return response


def _code_expired(request: Request, state: State) -> Response:
    response = see_other(f"{SIGN_IN}?m=code-expired")
    delete_cookie(response, request, state.settings, PENDING_COOKIE)
    return response


@router.get("/sign-in/code")
async def code_page(
    request: Request,
    state: State,
    next_path: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
) -> Response:
    """The second step: the code from the authenticator app, or a recovery code."""
    pending = request.cookies.get(PENDING_COOKIE)
    if not pending:
        return see_other(SIGN_IN)
    async with state.database.read() as conn:
        user = await sessions.find_pending(conn, pending, now=state.clock())
    if user is None:
        return _code_expired(request, state)
    return _page(
        request, state, Form(), next_path=local_path(next_path), template="signin_code.html"
    )


@router.post("/sign-in/code")
async def sign_in_with_code(request: Request, state: State) -> Response:
    """Check the code (wrong ones count as failed sign-ins), start the session, go on."""
    data = await request.form()
    given_next = data.get("next")
    next_path = local_path(given_next if isinstance(given_next, str) else None)
    pending = request.cookies.get(PENDING_COOKIE)
    if not pending:
        return see_other(SIGN_IN)
    values, form = parse(CodeForm, data)
    if values is None:
        return _page(
            request, state, form, next_path=next_path, status_code=422, template="signin_code.html"
        )
    now = state.clock()
    async with state.database.read() as conn:
        user = await sessions.find_pending(conn, pending, now=now)
    if user is None:
        return _code_expired(request, state)
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=user.username)
    try:
        async with attempt, state.database.begin() as conn:
            await twofactor.verify(conn, user_id=user.id, otp=values.otp, now=now)
            await sessions.end_pending(conn, pending)
            secret = await _start_session(request, state, conn, user)
    except InvalidSecondFactor:
        form.values.pop("otp", None)
        form.problem = WRONG_CODE
        return _page(
            request, state, form, next_path=next_path, status_code=401, template="signin_code.html"
        )
    except TooManyRequests as exc:
        form.problem = f"Too many sign-in attempts. Try again in {exc.retry_after} s."
        response = _page(
            request, state, form, next_path=next_path, status_code=429, template="signin_code.html"
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return _signed_in(request, state, secret, next_path)


@signed_in.post("/sign-out")
async def sign_out(request: Request, state: State, _: Person) -> Response:
    """End the session on the server, and forget its cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        async with state.database.begin() as conn:
            await sessions.end(conn, secret)
    response = see_other(f"{SIGN_IN}?m=signed-out")
    delete_cookie(response, request, state.settings, SESSION_COOKIE)
    return response
