"""What every route of the native API (``/v1``) shares: its route class."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response

from promos.errors import BadRequest
from promos.http.errors import ErrorBody, status_for
from promos.http.routes import ApiErrors, DocumentedRoute, Responses, walk

NATIVE = ApiErrors(model=ErrorBody, status=status_for)


class UnknownParameter(BadRequest):
    code = "unknown_parameter"


class NativeRoute(DocumentedRoute):
    """A native route refuses query parameters it does not take (400, naming them).

    A misspelt filter (``?clientid=`` for ``?client_id=``) would otherwise be ignored, and
    the answer would hold everything the filter was meant to leave out. The compat routers
    keep their systems' behaviour (the Offers player routes take any attribute as a query
    parameter), so this is the native routers' class only.
    """

    api = NATIVE

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        responses: Responses | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = {"model": ErrorBody, "description": "A query parameter the route does not take."}
        super().__init__(path, endpoint, responses={400: unknown, **(responses or {})}, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        # The query parameters the route reads, its dependencies' included.
        known = frozenset(p.alias for d in walk(self.dependant) for p in d.query_params)

        async def handle(request: Request) -> Response:
            unknown = sorted(set(request.query_params) - known)
            if unknown:
                takes = ", ".join(sorted(known)) or "no query parameter"
                raise UnknownParameter(
                    f"unknown query parameter {', '.join(unknown)}: this route takes {takes}",
                    details={"unknown": unknown, "known": sorted(known)},
                )
            return await handler(request)

        return handle
