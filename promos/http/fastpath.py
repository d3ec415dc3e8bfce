"""Lean ASGI endpoints for the hot routes, answered before FastAPI's own stack.

The same routes are declared in FastAPI too (for OpenAPI, and as the path taken when
``PROMOS_FAST_PATH=false``); both call the same function with the same pydantic models.
What the fast path skips is only the framework's per-request dependency machinery.

An endpoint may raise ``PassOn`` for a request it does not take (a query string, a body that
does not validate): FastAPI then serves it, the body read replayed, and answers as it would
have, so that only well-formed requests need the lean path's own checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promos.errors import PayloadTooLarge
from promos.http.errors import ErrorShape, ShapesByPath, answer_failure, headers_for
from promos.http.paths import path_pattern

# (method, path) -> endpoint(scope, body, headers) -> (status, json-able body, extra headers)
FastEndpoint = Callable[
    [Scope, bytes, Mapping[bytes, bytes]],
    Awaitable[tuple[int, Any, list[tuple[bytes, bytes]]]],
]


class PassOn(Exception):
    """Raised by an endpoint: this request is FastAPI's to serve (and to refuse)."""


@dataclass(frozen=True, slots=True)
class FastRoute:
    """What ``scope["route"]`` holds for a fast route, as it does for FastAPI's: its template."""

    path: str


class FastRoutes:
    """The hot routes, answered without the framework (see ``promos.app.PromosAPI``)."""

    def __init__(
        self,
        routes: Mapping[tuple[str, str], FastEndpoint],
        *,
        max_body: int,
        shapes: Mapping[str, ErrorShape],
    ) -> None:
        # Paths like "/offers/{offer_id}/impressions" match by pattern, into scope["path_params"].
        self._routes = {
            key: (e, FastRoute(key[1])) for key, e in routes.items() if "{" not in key[1]
        }
        self._templated = [
            (method, path_pattern(path), FastRoute(path), endpoint)
            for (method, path), endpoint in routes.items()
            if "{" in path
        ]
        self._max_body = max_body
        self._shapes = ShapesByPath(shapes)  # the error body of a 413 or 500, by path

    def routes(self) -> list[tuple[str, str]]:
        """The (method, path template) of every fast route."""
        return [*self._routes, *((method, route.path) for method, _, route, _ in self._templated)]

    def match(self, scope: Scope) -> FastEndpoint | None:
        """The endpoint of this request, if it is a fast route (then ``scope["route"]`` too)."""
        if scope["type"] != "http":
            return None
        exact = self._routes.get((scope["method"], scope["path"]))
        if exact is not None:
            scope["route"] = exact[1]
            return exact[0]
        for method, pattern, route, templated in self._templated:
            found = pattern.fullmatch(scope["path"]) if method == scope["method"] else None
            if found is not None:
                scope["path_params"] = found.groupdict()
                scope["route"] = route
                return templated
        return None

    async def serve(
        self,
        endpoint: FastEndpoint,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        fallback: ASGIApp | None = None,
    ) -> None:
        """Answer the request by ``endpoint``; by ``fallback`` (the app's own stack) if the
        endpoint passes it on."""
        headers = dict(scope["headers"])
        try:
            body = await read_body(receive, self._max_body)
        except PayloadTooLarge as exc:
            status, payload = 413, self._shapes.get(scope["path"])(exc)
            extra: list[tuple[bytes, bytes]] = []
        else:
            try:
                status, payload, extra = await endpoint(scope, body, headers)
            except PassOn:
                if fallback is None:
                    raise
                # As the request came: the router sets its own route and path parameters.
                scope.pop("route", None)
                scope.pop("path_params", None)
                await fallback(scope, _replay(body, receive), send)
                return
            except Exception as exc:  # noqa: BLE001 - every failure is answered, as ServerErrors does
                # What FastAPI's routes answer too (ServerErrors): the API's shape, a domain
                # error's status (an endpoint may leave one to this), else a logged 500.
                status, error = answer_failure(scope, exc)
                payload = self._shapes.get(scope["path"])(error)
                extra = [(k.lower().encode(), v.encode()) for k, v in headers_for(error).items()]
        data = orjson.dumps(payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` as it was before the body was read: the body first, then what comes."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def header(headers: Mapping[bytes, bytes], name: bytes) -> str | None:
    """A raw ASGI header's value as text (HTTP headers are Latin-1)."""
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None
