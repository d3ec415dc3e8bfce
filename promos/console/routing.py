"""The console's route class: every page is signed-in only (but sign-in), CSRF-checked on
every state-changing request, answered with the console's headers, and its errors rendered
as pages instead of the API's JSON."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse

from promos.auth.errors import CredentialRequired, TwoFactorEnrolmentRequired
from promos.console import csrf, sessions
from promos.console.deps import (
    ACCOUNT,
    SESSION_COOKIE,
    SIGN_IN,
    delete_cookie,
    lifetime,
    render,
    see_other,
)
from promos.console.headers import secure_page
from promos.errors import PermissionDenied, PromosError, TooManyRequests, Unauthenticated
from promos.http.deps import get_state
from promos.http.errors import as_domain_error, log_unhandled, status_for

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What an admin who must enrol in two-factor sign-in is served: their account page, to enrol.
ENROL_PAGES = frozenset(
    {ACCOUNT, f"{ACCOUNT}/two-factor", f"{ACCOUNT}/two-factor/confirm", "/admin/sign-out"}
)

_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    422: "Invalid input",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


class CsrfRefused(PermissionDenied):
    """A state-changing request without this session's (or this sign-in form's) token."""

    code = "csrf_refused"


class ConsoleRoute(APIRoute):
    """A console page: not in the OpenAPI document, answered in HTML.

    ``needs_session``: served to signed-in people only; anybody else is sent to sign-in.
    """

    needs_session: ClassVar[bool] = True

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["include_in_schema"] = False
        kwargs.setdefault("response_class", HTMLResponse)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        needs_session = self.needs_session

        async def handle(request: Request) -> Response:
            try:
                response = await _admit(request, needs_session=needs_session)
                if response is None:
                    response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a page
                response = error_page(request, exc)
            return secure_page(response)

        return handle


class SignInRoute(ConsoleRoute):
    """The sign-in page: served without a session; its form's token is a cookie's."""

    needs_session = False


async def _admit(request: Request, *, needs_session: bool) -> Response | None:
    """``None`` if the request may go on to its page, else the answer instead."""
    state = get_state(request)
    secret = request.cookies.get(SESSION_COOKIE)
    session = None
    if secret:
        now = state.clock()
        # A read first: on SQLite it does not wait for a writer (a large generation).
        async with state.database.read() as conn:
            session = await sessions.find(
                conn,
                secret,
                now=now,
                lifetime=lifetime(state.settings),
                take_flash=request.method == "GET",
            )
        if session is not None and sessions.needs_visit(session, now=now):
            async with state.database.begin() as conn:
                await sessions.visit(conn, session, now=now)
    request.state.console_session = session
    if session is not None:
        request.state.principal = session.principal  # named in the access log
    elif needs_session:
        return to_sign_in(request, ended=bool(secret))
    if session is not None and session.must_enrol and request.url.path not in ENROL_PAGES:
        if request.method in SAFE_METHODS:
            return see_other(ACCOUNT)
        raise TwoFactorEnrolmentRequired(
            "admins must sign in with a second factor: set yours up on your account page first"
        )
    if request.method not in SAFE_METHODS:
        expected = (
            session.csrf_token
            if needs_session and session is not None
            else request.cookies.get(csrf.SIGN_IN_COOKIE)
        )
        form = await request.form()
        given = form.get(csrf.FIELD)
        if not isinstance(given, str):
            given = request.headers.get(csrf.HEADER)
        if not csrf.matches(expected, given):
            raise CsrfRefused(
                "This form expired or did not come from this console, so nothing was done. "
                "Go back, reload the page and try again."
            )
    return None


def to_sign_in(request: Request, *, ended: bool = False) -> Response:
    """Send the browser to sign-in, and back to this page after it (GETs only)."""
    target = SIGN_IN
    query = []
    if ended:
        query.append("m=ended")
    if request.method == "GET":
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query.append("next=" + quote(path, safe="/"))
    if query:
        target += "?" + "&".join(query)
    response = see_other(target)
    if ended:
        state = get_state(request)
        delete_cookie(response, request, state.settings, SESSION_COOKIE)
    return response


def sentence(message: str) -> str:
    """A domain error's message ("user 5 does not exist") as a sentence on a page."""
    if not message:
        return message
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "?", "!")) else ".")


def error_page(request: Request, exc: Exception) -> Response:
    """The page for a failure: a domain error's status and message, or a logged 500."""
    if isinstance(exc, Unauthenticated | CredentialRequired):
        return to_sign_in(request)
    error = as_domain_error(exc)
    if error is None:
        log_unhandled(request.scope, exc)
        error, status = PromosError("The console failed to show this page."), 500
    else:
        status = status_for(error)
    response = render(
        request,
        "error.html",
        {
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "message": sentence(error.message),
        },
        status_code=status,
    )
    if isinstance(error, TooManyRequests):
        response.headers["Retry-After"] = str(error.retry_after)
    return response
