"""The one place where domain errors become HTTP statuses, and the native error shape."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from promos.errors import (
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
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The native API's one error shape."""

    error: ErrorDetail


def json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The native error body at these statuses, for OpenAPI, on a route whose own responses
    are not JSON (a CSV export): FastAPI would give a ``model`` the route's media type."""
    schema = {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {JSON.media_type: {"schema": schema}},
        }
        for status in statuses
    }


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


Renderer = Callable[[int, PromosError], Response]


def native_response(status: int, exc: PromosError) -> Response:
    return JSON(native_body(exc), status_code=status, headers=headers_for(exc))


def error_route_class(render: Renderer) -> type[APIRoute]:
    """A route class whose errors are rendered by ``render`` (the compat routers' own shapes)."""

    class ErrorRenderingRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    error = as_domain_error(exc)
                    if error is None:
                        raise
                    return render(status_for(error), error)

            return handle

    return ErrorRenderingRoute


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
