"""Refuse oversized or unauthenticated request bodies before anybody reads them."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promos.auth.credentials import Authenticator
from promos.errors import PayloadTooLarge, PromosError
from promos.http.errors import ErrorShape, ShapesByPath, headers_for, status_for
from promos.http.fastpath import header
from promos.http.ratelimit import client_key
from promos.http.responses import JSON


class BodyLimit:
    """``max_body`` for ordinary requests, ``max_upload`` for multipart uploads: 413 above.

    A body without Content-Length is counted as it streams; whatever the app answers once it
    has gone over the limit is replaced by the 413 (FastAPI would have made it a 400).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_upload: int,
        shapes: Mapping[str, ErrorShape],
    ) -> None:
        self._app = app
        self._max_body = max_body
        self._max_upload = max_upload
        self._shapes = ShapesByPath(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self._max_upload if multipart else self._max_body
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
    """Multipart uploads are authenticated before their body is read, not after.

    FastAPI reads a form before it runs the route's dependencies, which would let anybody
    push ``max_upload`` bytes to disk before hearing 401.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        shapes: Mapping[str, ErrorShape],
    ) -> None:
        self._app = app
        self._authenticator = authenticator
        self._shapes = ShapesByPath(shapes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"content-type", b"").startswith(b"multipart/"):
                try:
                    await self._authenticator.authenticate(
                        header(headers, b"authorization"),
                        header(headers, b"x-api-key"),
                        client=client_key(scope),
                    )
                except PromosError as exc:
                    shape = self._shapes.get(scope["path"])
                    response = JSON(
                        shape(exc), status_code=status_for(exc), headers=headers_for(exc)
                    )
                    await response(scope, receive, send)
                    return
        await self._app(scope, receive, send)
