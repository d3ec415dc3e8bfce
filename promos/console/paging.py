"""Listings paged by key (``promos.pagination``): the ``after`` query parameter and the
links to the first and the next page, the other query parameters (filters) kept."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request

from promos.http.pagination import MAX_CURSOR_LENGTH, encode_cursor
from promos.pagination import Page

PAGE_SIZE = 50

After = Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR_LENGTH)]


def pager(request: Request, page: Page[Any], after: str | None) -> dict[str, Any]:
    """What the templates' ``pager`` macro takes: ``first_url``, ``next_url``, ``is_first``."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "after" and v]
    path = request.url.path
    first = f"{path}?{urlencode(kept)}" if kept else path
    cursor = encode_cursor(page.next_key)
    following = f"{path}?{urlencode([*kept, ('after', cursor)])}" if cursor else None
    return {"first_url": first, "next_url": following, "is_first": after is None}
