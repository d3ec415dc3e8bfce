"""Refuse oversized request bodies before anybody reads them."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promos.errors import PayloadTooLarge
from promos.http.errors import native_body
from promos.http.responses import JSON


class BodyLimit:
    """``max_body`` for ordinary requests, ``max_upload`` for multipart uploads."""

    def __init__(self, app: ASGIApp, *, max_body: int, max_upload: int) -> None:
        self._app = app
        self._max_body = max_body
        self._max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self._max_upload if multipart else self._max_body
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            error = PayloadTooLarge(f"the request body is larger than {limit} bytes")
            await JSON(native_body(error), status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
            return message

        await self._app(scope, limited, send)
