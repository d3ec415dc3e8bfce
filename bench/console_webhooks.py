"""The webhook pages of the console, for bench/console_pages.py (which seeds their data:
2,000 failed billing callbacks, 100,000 deliveries over 29 days to one subscription).

``pages(dsn)`` lists each page, the first and last page of the log and of its filters.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from promos.http.pagination import encode_cursor

PAGE_SIZE = 50  # promos.console.paging.PAGE_SIZE
LOG = "/admin/webhooks/deliveries"


async def _before_last_page(conn: asyncpg.Connection, where: str) -> str:
    """``after=`` of the last page of the log filtered by ``where`` (newest first)."""
    count = await conn.fetchval(f"SELECT count(*) FROM webhook_deliveries WHERE {where}")
    skip = max((count - 1) // PAGE_SIZE * PAGE_SIZE - 1, 0)
    key = await conn.fetchval(
        f"SELECT id FROM webhook_deliveries WHERE {where} ORDER BY id DESC OFFSET $1 LIMIT 1",
        skip,
    )
    return f"after={encode_cursor((key,))}"


async def pages(dsn: str) -> list[tuple[str, str]]:
    """(name, path) of every webhook page, found in the seeded database at ``dsn``."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        subscription = await conn.fetchval("SELECT min(id) FROM webhook_subscriptions")
        delivery = await conn.fetchval("SELECT max(id) FROM webhook_deliveries")
        last = await _before_last_page(conn, "true")
        last_failing = await _before_last_page(conn, "status = 'failed'")
        last_callbacks = await _before_last_page(conn, "kind = 'callback'")
    finally:
        await conn.close()
    day = (datetime.now(UTC) - timedelta(days=15)).strftime("%Y-%m-%dT%H:%M")
    next_day = (datetime.now(UTC) - timedelta(days=14)).strftime("%Y-%m-%dT%H:%M")
    return [
        ("webhooks: subscriptions", "/admin/webhooks"),
        ("webhooks: new subscription", "/admin/webhooks/new"),
        ("webhooks: a subscription", f"/admin/webhooks/{subscription}"),
        ("webhooks: log", LOG),
        ("webhooks: log, last page", f"{LOG}?{last}"),
        ("webhooks: log, failing", f"{LOG}?status=failing"),
        ("webhooks: log, failing, last page", f"{LOG}?status=failing&{last_failing}"),
        ("webhooks: log, billing callbacks", f"{LOG}?kind=callback"),
        ("webhooks: log, billing callbacks, last", f"{LOG}?kind=callback&{last_callbacks}"),
        ("webhooks: log, one event type", f"{LOG}?event_type=referral.signed_up"),
        ("webhooks: log, one subscription", f"{LOG}?subscription_id={subscription}"),
        ("webhooks: log, one day 15 days ago", f"{LOG}?since={day}&until={next_day}"),
        ("webhooks: a delivery", f"{LOG}/{delivery}"),
    ]
