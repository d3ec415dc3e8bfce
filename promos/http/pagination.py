"""The native API's one pagination convention: ``limit`` and an opaque ``cursor`` in,
``{"items", "has_more", "next_cursor"}`` out (docs/api.md)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import Query
from pydantic import BaseModel, Field

from promos.errors import InvalidInput
from promos.pagination import Key, Page
from promos.validation import is_storable

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_LENGTH = 512

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, at most {MAX_LIMIT}")
]
Cursor = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="`next_cursor` of the previous page; leave out for the first page",
    ),
]


class PageOut(BaseModel):
    """What every page of a native list says besides its items."""

    has_more: Annotated[bool, Field(description="whether another page follows this one")]
    next_cursor: Annotated[
        str | None,
        Field(description="pass as `cursor` for the next page; null on the last page"),
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def encode_cursor(key: Key | None) -> str | None:
    """An opaque cursor for the key of a page's last item (``None`` for none)."""
    if key is None:
        return None
    return base64.urlsafe_b64encode(orjson.dumps([_plain(v) for v in key])).decode().rstrip("=")


def decode_cursor(cursor: str | None, kinds: tuple[type, ...]) -> Key | None:
    """The key a cursor of this route holds, its parts of ``kinds``; 422 for any other."""
    if cursor is None:
        return None
    wrong = InvalidInput("cursor: not a cursor this list gave; start again without one")
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise wrong from None
    if not isinstance(parts, list) or len(parts) != len(kinds):
        raise wrong
    try:
        return tuple(_typed(part, kind) for part, kind in zip(parts, kinds, strict=True))
    except (TypeError, ValueError):
        raise wrong from None


def _typed(part: Any, kind: type) -> Any:
    if kind is datetime:
        value = datetime.fromisoformat(part)
        if value.tzinfo is None:
            raise ValueError("a cursor's time has its offset")
        return value
    if kind is UUID:
        return UUID(part)
    if kind is int and (isinstance(part, bool) or not isinstance(part, int)):
        raise TypeError("an integer")
    if kind is int and not -(2**63) <= part < 2**63:
        raise ValueError("a 64-bit integer")
    if kind is str and not isinstance(part, str):
        raise TypeError("a string")
    if kind is str and not is_storable(part):  # made by hand: no stored key holds one
        raise ValueError("a key's text")
    return part


def page_fields(page: Page[Any]) -> dict[str, Any]:
    """``has_more`` and ``next_cursor`` of a service's page."""
    return {"has_more": page.has_more, "next_cursor": encode_cursor(page.next_key)}
