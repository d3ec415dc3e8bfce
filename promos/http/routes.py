"""Route classes that render each API's errors in its own shape, and document them.

Every API (the native one, and each compatible one) declares once how it answers errors: its
body's schema and the status of each error category (``ApiErrors``). Its routes then document
the errors that every route of that kind can answer, derived from what the route takes: bad
values (if it takes any), a body too large (if it takes a body), a missing credential, a
missing role, too many requests, an unavailable database. What only one route can answer
(a 404, a 409) it declares itself, with the same schema.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant, get_parameterless_sub_dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from promos.auth.errors import ScopeMissing
from promos.errors import (
    BadRequest,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PromosError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from promos.http.deps import admin_principal, current_principal
from promos.http.errors import as_domain_error
from promos.http.ratelimit import limit_offers, limit_public
from promos.http.scopes import KeyWhenSet, Need

Responses = dict[int | str, dict[str, Any]]
JSON_MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class ApiErrors:
    """How one API answers errors: the schema of its error body, and the status of each."""

    model: type[BaseModel]
    status: Callable[[PromosError], int]


def _probe(kind: type[PromosError]) -> PromosError:
    if kind is TooManyRequests:
        return TooManyRequests("", retry_after=1)
    return kind("")


def walk(dependant: Dependant) -> Iterator[Dependant]:
    """A route's dependant and every dependency below it."""
    yield dependant
    for sub in dependant.dependencies:
        yield from walk(sub)


def documented_errors(
    api: ApiErrors,
    *,
    path: str,
    endpoint: Callable[..., Any],
    dependencies: Sequence[params.Depends],
    declared: Responses,
    reads_body: bool = False,
) -> Responses:
    """The error responses a route of ``api`` can answer, beside those it ``declared``.

    ``reads_body``: the route reads a body itself (documented in its ``openapi_extra``).
    """
    dependant = get_dependant(path=path, call=endpoint)
    dependant.dependencies.extend(
        get_parameterless_sub_dependant(depends=d, path=path) for d in dependencies
    )
    calls = {d.call for d in walk(dependant)}
    takes_body = reads_body or bool(dependant.body_params)
    takes_values = takes_body or any(
        d.path_params or d.query_params or d.header_params for d in walk(dependant)
    )
    wanted: list[tuple[int, str]] = []

    def want(kind: type[PromosError], description: str) -> None:
        wanted.append((api.status(_probe(kind)), description))

    if takes_values:
        want(InvalidInput, "A parameter or the body is not valid: the message says which.")
    if takes_body:
        want(BadRequest, "The body could not be read (not UTF-8, or nested too deep).")
        # The body limit is answered before any route runs, always as a 413 (promos.http.limits).
        wanted.append((413, "The body is larger than the limit (PROMOS_MAX_BODY_BYTES)."))
    if current_principal in calls:
        want(Unauthenticated, "No credential, or one that is wrong, expired or revoked.")
        want(TooManyRequests, "Too many failed passwords from this client: see Retry-After.")
    for kind, description in _permission_errors(calls, need_of(dependant)):
        want(kind, description)
    if calls & {limit_public, limit_offers}:
        want(TooManyRequests, "Too many requests from this client: see Retry-After.")
    want(Unavailable, "The database is unavailable: retry after Retry-After.")
    found: Responses = {}
    for status, description in wanted:
        if status in declared or str(status) in declared:
            continue
        if status in found:
            found[status]["description"] += " Or: " + description
        else:
            found[status] = {"model": api.model, "description": description}
    return found


def need_of(dependant: Dependant) -> Need | None:
    """The scope a route declared (``promos.http.scopes.needs``), if it declared one."""
    for sub in walk(dependant):
        if isinstance(sub.call, Need):
            return sub.call
        if isinstance(sub.call, KeyWhenSet):
            return sub.call.need
    return None


def _permission_errors(calls: set[Any], need: Need | None) -> list[tuple[type[PromosError], str]]:
    found: list[tuple[type[PromosError], str]] = []
    keyed = [c for c in calls if isinstance(c, KeyWhenSet)]
    if keyed:
        setting = f"PROMOS_{keyed[0].setting.upper()}"
        found.append((Unauthenticated, f"With {setting}=true only: no key, or a wrong one."))
    if admin_principal in calls:
        found.append((PermissionDenied, "The credential is not an admin's."))
    if need is None or need.kind is None:
        return found
    found.append((ScopeMissing, f"The API key lacks the scope {need} (the message names it)."))
    if need.at is not None and need.at.unknown is not None:
        found.append((NotFound, "Unknown, or outside the API key's scope."))
    return found


def scope_text(need: Need) -> str:
    """The scope as the OpenAPI document shows it (``x-scope``): with where its id is."""
    if need.at is not None:
        return f"{need}, on the resource of {need.at.describe()}"
    return f"{need}, listing the key's resources" if need.listed else str(need)


class DocumentedRoute(APIRoute):
    """A route of the API ``api``: its errors are rendered and documented in that API's shape.

    Subclasses set ``api``; ``render`` turns a domain error into that API's response (the
    native API leaves it to the app's exception handlers).
    """

    api: ApiErrors

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        responses: Responses | None = None,
        dependencies: Sequence[params.Depends] | None = None,
        **kwargs: Any,
    ) -> None:
        declared = dict(responses or {})
        declared.update(
            documented_errors(
                self.api,
                path=path,
                endpoint=endpoint,
                dependencies=dependencies or (),
                declared=declared,
                reads_body="requestBody" in (kwargs.get("openapi_extra") or {}),
            )
        )
        media_type = getattr(kwargs.get("response_class"), "media_type", None)
        if media_type not in {None, JSON_MEDIA_TYPE}:
            declared = {status: _as_json(r) for status, r in declared.items()}
        super().__init__(path, endpoint, responses=declared, dependencies=dependencies, **kwargs)
        # What current_principal and the tests read: the scope this route declared, if any.
        self.need = need_of(self.dependant)
        if self.need is not None:
            self.openapi_extra = {**(self.openapi_extra or {}), "x-scope": scope_text(self.need)}


def _as_json(response: dict[str, Any]) -> dict[str, Any]:
    """An error response whose body stays JSON on a route whose answer is not (a CSV export):
    FastAPI would document a ``model`` in the route's own media type."""
    model = response.get("model")
    if model is None:
        return response
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "description": response.get("description", "Error"),
        "content": {JSON_MEDIA_TYPE: {"schema": schema}},
    }


Renderer = Callable[[int, PromosError], Response]


def error_route_class(render: Renderer, api: ApiErrors) -> type[DocumentedRoute]:
    """A route class whose errors are rendered by ``render`` and documented as ``api``'s."""

    class ErrorRenderingRoute(DocumentedRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    error = as_domain_error(exc)
                    if error is None:
                        raise
                    return render(api.status(error), error)

            return handle

    ErrorRenderingRoute.api = api
    return ErrorRenderingRoute
