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


def as_domain_error(exc: Exception) -> PromosError | None:
    """Domain errors as they are, validation errors as ``InvalidInput``; else ``None``."""
    if isinstance(exc, PromosError):
        return exc
    if isinstance(exc, RequestValidationError | ValidationError):
        return invalid_input(exc.errors())
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


def install_handlers(app: FastAPI, shapes: Mapping[str, ErrorShape]) -> None:
    """Native error shape for everything that no route class rendered itself; a 500 in the
    shape of the API that was called (``shapes``, by path)."""
    shapes_by_path = ShapesByPath(shapes)

    async def on_domain(request: Request, exc: Exception) -> Response:
        error = as_domain_error(exc)
        if error is None:
            return await on_unexpected(request, exc)
        return native_response(status_for(error), error)

    async def on_http(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            return await on_unexpected(request, exc)
        codes = {404: "not_found", 405: "method_not_allowed"}
        body = {
            "error": {
                "code": codes.get(exc.status_code, "http_error"),
                "message": str(exc.detail),
                "details": None,
            }
        }
        return JSON(body, status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSON(shapes_by_path.get(request.url.path)(INTERNAL), status_code=500)

    app.add_exception_handler(PromosError, on_domain)
    app.add_exception_handler(RequestValidationError, on_domain)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
