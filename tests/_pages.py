"""Reading a native list page by page, as an integrator would."""

from __future__ import annotations

from typing import Any

import httpx

MAX_PAGES = 100  # a list that never ends would fail the test instead of hanging it


async def all_pages(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """Every page of ``url``, following ``next_cursor`` until ``has_more`` is false."""
    pages: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        query = {**params, **({"cursor": cursor} if cursor is not None else {})}
        response = await client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return pages
        cursor = page["next_cursor"]
    raise AssertionError(f"{url} had more than {MAX_PAGES} pages")
