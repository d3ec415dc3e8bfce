"""Refuse oversized or unauthenticated request bodies before anybody reads them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import fastapi.routing
from fastapi import params
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promos.auth.credentials import Authenticator
from promos.auth.service import Route
from promos.errors import PayloadTooLarge, PromosError
from promos.http.errors import ErrorShape, ShapesByPath, headers_for, status_for
from promos.http.fastpath import header
from promos.http.paths import RouteSet
from promos.http.ratelimit import client_key
from promos.http.responses import JSON

# FastAPI from 0.16x includes routers lazily (app.routes nests them); before, it is flat.
_every_route: Callable[[Sequence[BaseRoute]], Iterable[Any]] = getattr(
    fastapi.routing, "iter_route_contexts", iter
)


def upload_routes(routes: Sequence[BaseRoute]) -> Iterator[Route]:
    """Every route that takes a file (a ``File()`` parameter): the upload routes."""
    for context in _every_route(routes):
        route = getattr(context, "original_route", context)
        if not isinstance(route, APIRoute) or route.body_field is None:
            continue
        if isinstance(route.body_field.field_info, params.File):
            for method in route.methods or ():
                yield method, route.path


def is_multipart(scope: Scope) -> bool:
    content_type: bytes = dict(scope["headers"]).get(b"content-type", b"")
    return content_type.startswith(b"multipart/")


class BodyLimit:
    """``max_upload`` for a multipart body sent to an upload route, ``max_body`` for every
    other request whatever its content type: 413 above, in the shape of the route's API.

    A body without Content-Length is counted as it streams; whatever the app answers once it
    has gone over the limit is replaced by the 413 (FastAPI would have made it a 400).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_upload: int,
        uploads: RouteSet,
        shapes: Mapping[str, ErrorShape],
    ) -> None:
        self._app = app
        self._max_body = max_body
        self._max_upload = max_upload
        self._uploads = uploads
        self._shapes = ShapesByPath(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        upload = (
            headers.get(b"content-type", b"").startswith(b"multipart/")
            and self._uploads.match(scope["method"], scope["path"]) is not None
        )
        limit = self._max_upload if upload else self._max_body
        error = PayloadTooLarge(f"the request body is larger than {limit} bytes")
        refusal = JSON(self._shapes.get(scope["path"])(error), status_code=413)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await refusal(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit=limit, error=error, refusal=refusal)

    async def _counted(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        limit: int,
        error: PayloadTooLarge,
        refusal: JSON,
    ) -> None:
        seen = 0
        over = answered = False

        async def limited() -> Message:
            nonlocal seen, over
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                over = True
                raise error
            return message

        async def answer(message: Message) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered:
                answered = True
                await refusal(scope, receive, send)

        try:
            await self._app(scope, limited, answer)
        except Exception:
            if not over:
                raise
            if not answered:
                await refusal(scope, receive, send)


class AuthenticateUploads:
    """Uploads are authenticated before their body is read, not after.

    FastAPI reads a form before it runs the route's dependencies, which would let anybody
    push ``max_upload`` bytes to disk before hearing 401.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        uploads: RouteSet,
        shapes: Mapping[str, ErrorShape],
    ) -> None:
        self._app = app
        self._authenticator = authenticator
        self._uploads = uploads
        self._shapes = ShapesByPath(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (
            self._uploads.match(scope["method"], scope["path"])
            if scope["type"] == "http" and is_multipart(scope)
            else None
        )
        if route is not None:
            headers = dict(scope["headers"])
            try:
                await self._authenticator.authenticate(
                    header(headers, b"authorization"),
                    header(headers, b"x-api-key"),
                    route=route,
                    client=client_key(scope),
                )
            except PromosError as exc:
                shape = self._shapes.get(scope["path"])
                response = JSON(shape(exc), status_code=status_for(exc), headers=headers_for(exc))
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)
