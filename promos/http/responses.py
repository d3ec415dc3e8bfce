"""JSON responses rendered with orjson; CSV exports streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from promos.export import MEDIA_TYPE


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class CsvDownload(StreamingResponse):
    """An export streamed as it is read, to be saved as ``filename``; never cached."""

    media_type = MEDIA_TYPE

    def __init__(
        self, body: AsyncIterator[bytes], *, filename: str, status_code: int = 200
    ) -> None:
        super().__init__(
            body,
            status_code=status_code,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )


# How OpenAPI shows a CSV export's 200 (its errors: promos.http.errors.json_errors).
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "CSV (RFC 4180, UTF-8, a header row), streamed",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
    }
}
