"""The one place where domain errors become HTTP statuses, and the native error shape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.status import HTTP_400_BAD_REQUEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promos.errors import (
    BadRequest,
    Conflict,
    Gone,
    Internal,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PromosError,
    RuleViolation,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from promos.http.paths import path_pattern
from promos.http.responses import JSON
from promos.validation import NO_SUCH_ID

log = logging.getLogger(__name__)

_STATUS: Sequence[tuple[type[PromosError], int]] = (
    (BadRequest, 400),
    (InvalidInput, 422),
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (RuleViolation, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Gone, 410),
    (PayloadTooLarge, 413),
    (TooManyRequests, 429),
    (Unavailable, 503),
    (Internal, 500),
)


def status_for(exc: PromosError) -> int:
    """The HTTP status of a domain error."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def headers_for(exc: PromosError) -> dict[str, str]:
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": 'Basic realm="promos", Bearer'}
    if isinstance(exc, Unavailable):
        return {"Retry-After": "1"}
    if isinstance(exc, TooManyRequests):
        return {"Retry-After": str(exc.retry_after)}
    return {}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    code: str
    """Stable and machine-readable, e.g. pool_exhausted."""
    message: str
    """What went wrong and what to fix, for a person."""
    details: Any = None
    """More, where the code has any (e.g. the invalid fields)."""


class ErrorBody(BaseModel):
    """The native API's one error shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "pool_exhausted",
                        "message": "batch 0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a has no codes left",
                        "details": None,
                    }
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    error: ErrorDetail
    """What went wrong."""


def invalid_input(errors: Sequence[Any]) -> InvalidInput:
    """A readable ``InvalidInput`` from pydantic's validation errors."""
    clean = jsonable_encoder(
        [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
    )
    parts = []
    for e in clean:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return InvalidInput("; ".join(parts) or "invalid input", details=clean)


def no_such_id(errors: Sequence[Any]) -> NotFound | None:
    """A ``NotFound`` if one of the errors is an id in the path that names nothing (out of
    the range of ids): such a path names no resource, whatever else the request holds."""
    for error in errors:
        loc = error.get("loc", ())
        if error.get("type") == NO_SUCH_ID and loc and loc[0] == "path":
            name = loc[-1] if len(loc) > 1 else "id"
            return NotFound(f"{name} {error.get('input')}: {error.get('msg')}")
    return None


# FastAPI's answer to a body it cannot decode (invalid UTF-8, JSON nested past Python's
# recursion limit), and Starlette's to a malformed form: a 400 raised as an HTTPException,
# which no API's route class knows. FastAPI's own message says nothing of the cause.
_FASTAPI_UNREADABLE = "There was an error parsing the body"
_UNREADABLE_BODY = (
    "the body could not be read: it must be JSON in UTF-8 (objects and lists nested a few "
    "hundred deep at most)"
)


def as_domain_error(exc: Exception) -> PromosError | None:
    """Domain errors as they are, validation errors as ``InvalidInput`` (or ``NotFound`` for
    an id in the path that names nothing), an unreadable body as ``BadRequest``; else
    ``None``."""
    if isinstance(exc, PromosError):
        return exc
    if isinstance(exc, RequestValidationError | ValidationError):
        errors = exc.errors()
        return no_such_id(errors) or invalid_input(errors)
    if isinstance(exc, StarletteHTTPException) and exc.status_code == HTTP_400_BAD_REQUEST:
        detail = str(exc.detail)
        return BadRequest(_UNREADABLE_BODY if detail == _FASTAPI_UNREADABLE else detail)
    return None


# How an API shows an error in its body (each compat API has its own).
ErrorShape = Callable[[PromosError], dict[str, Any]]


def native_body(exc: PromosError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}


# What a 500 says: nothing of the failure itself (that goes to the log).
INTERNAL = Internal("internal server error")


class ShapesByPath:
    """Which error body a path's API uses (paths may be templates); native by default."""

    def __init__(self, shapes: Mapping[str, ErrorShape]) -> None:
        self._exact = {path: s for path, s in shapes.items() if "{" not in path}
        self._templated = [(path_pattern(p), s) for p, s in shapes.items() if "{" in p]

    def get(self, path: str) -> ErrorShape:
        shape = self._exact.get(path)
        if shape is not None:
            return shape
        for pattern, templated in self._templated:
            if pattern.fullmatch(path):
                return templated
        return native_body


def native_response(status: int, exc: PromosError) -> Response:
    return JSON(native_body(exc), status_code=status, headers=headers_for(exc))


def log_unhandled(scope: Scope, exc: BaseException) -> None:
    """Log an error no handler expected, with its traceback, once. The route's template names
    it, never the path asked for (a path may hold a code, a customer id or a secret); the
    request id the log line carries ties it to its access line."""
    route = scope.get("route")
    where = route.path if route is not None else "<unmatched>"
    log.error("unhandled error on %s %s", scope.get("method"), where, exc_info=exc)


def answer_failure(scope: Scope, exc: Exception) -> tuple[int, PromosError]:
    """The status and error to answer for ``exc``: a domain error's own, else a 500 (logged)."""
    error = as_domain_error(exc)
    if error is not None:
        return status_for(error), error
    log_unhandled(scope, exc)
    return 500, INTERNAL


class ServerErrors:
    """The outermost middleware but Starlette's own: any exception nobody handled is logged
    once and answered 500 in the shape of the API that was called (``shapes``, by path).

    Not an exception handler for ``Exception``: Starlette gives that one to its
    ServerErrorMiddleware, which re-raises after the response, and uvicorn then closes the
    connection, so that a keep-alive client's next request fails with a reset.
    """

    def __init__(self, app: ASGIApp, *, shapes: Mapping[str, ErrorShape]) -> None:
        self._app = app
        self._shapes = ShapesByPath(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, watched)
        except Exception as exc:
            if started:  # half an answer is out: closing the connection is all that is left
                raise
            status, error = answer_failure(scope, exc)
            shape = self._shapes.get(scope["path"])
            response = JSON(shape(error), status_code=status, headers=headers_for(error))
            await response(scope, receive, send)


def install_handlers(app: FastAPI) -> None:
    """Native error shape for every domain error that no route class rendered itself. What
    is not a domain error goes on to ``ServerErrors``."""

    async def on_domain(_: Request, exc: Exception) -> Response:
        error = as_domain_error(exc)
        if error is None:
            raise exc
        return native_response(status_for(error), error)

    async def on_http(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise exc
        error = as_domain_error(exc)
        if error is not None:
            return native_response(status_for(error), error)
        codes = {404: "not_found", 405: "method_not_allowed"}
        body = {
            "error": {
                "code": codes.get(exc.status_code, "http_error"),
                "message": str(exc.detail),
                "details": None,
            }
        }
        return JSON(body, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(PromosError, on_domain)
    app.add_exception_handler(RequestValidationError, on_domain)
    app.add_exception_handler(StarletteHTTPException, on_http)
