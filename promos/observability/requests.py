"""Every HTTP request, fast route or FastAPI route: timed, counted, logged, given an id.

``PromosAPI.__call__`` hands each request to ``RequestObserver`` before anything else runs, so
that the lean hot routes are covered as well as FastAPI's. Its cost is kept small (measured
in docs/operations.md): no regular expression, no copy of the headers, request times added up
in memory (``metrics.RequestTimes``), the access line written directly.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable

from starlette.types import Message, Receive, Scope, Send

from promos.auth.service import Principal
from promos.observability import metrics
from promos.observability.logs import REQUEST_ID, Access, AccessLog

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The label of a request that no route matched: never its raw path (unbounded, and a path
# may hold a secret).
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID_HEADER = b"x-request-id"
# An X-Request-ID is taken as given when it is at most this long and made of these characters;
# any other gets a fresh id (so that the log cannot be forged through it).
MAX_REQUEST_ID = 128
_ID_CHARACTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=@"


def set_principal(scope: Scope, principal: Principal) -> None:
    """Name the caller of a lean route in its access line (FastAPI routes do it in deps)."""
    scope.setdefault("state", {})["principal"] = principal


class RequestObserver:
    """Wraps the app: ``X-Request-ID`` taken or made and echoed, metrics, one access line."""

    def __init__(self, *, access_log: AccessLog | None, record_metrics: bool) -> None:
        self._access_log = access_log
        self._record_metrics = record_metrics
        # Unique across processes and restarts without a random draw per request.
        self._prefix = secrets.token_hex(6).encode() + b"-"
        self._sequence = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        started = time.perf_counter()
        request_id = self._request_id(scope["headers"])
        echo = (REQUEST_ID_HEADER, request_id)
        status = 500  # what the server answers if the app fails before it starts a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            self._done(scope, status, time.perf_counter() - started, request_id)

    def _request_id(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        for name, value in headers:
            if name == REQUEST_ID_HEADER:
                # bytes.translate deletes the allowed characters: anything left is not allowed.
                if 0 < len(value) <= MAX_REQUEST_ID and not value.translate(None, _ID_CHARACTERS):
                    return value
                break
        return b"%b%x" % (self._prefix, next(self._sequence))

    def _done(self, scope: Scope, status: int, seconds: float, request_id: bytes) -> None:
        method = scope["method"]
        if method not in METHODS:
            method = "OTHER"
        route_object = scope.get("route")
        route: str = route_object.path if route_object is not None else UNMATCHED
        if self._record_metrics:
            metrics.REQUEST_TIMES.observe(method, route, status, seconds)
        if self._access_log is not None:
            state = scope.get("state")
            principal: Principal | None = state.get("principal") if state else None
            credential = principal.credential_id if principal is not None else None
            access: Access = (
                method,
                route,
                status,
                round(seconds * 1000, 3),
                request_id,
                credential,
            )
            self._access_log.write(access)
