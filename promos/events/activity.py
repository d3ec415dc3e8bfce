"""Webhooks at a glance: the deliveries failing each day, through ix_webhook_attempts_attempted."""

from __future__ import annotations

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.daily import Daily, Days, per_day
from promos.events.dispatcher import SUCCESS
from promos.events.tables import webhook_attempts


async def failing_deliveries_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many deliveries (webhooks and billing callbacks) had an attempt fail on each of
    ``days``: no answer, or an answer other than 2xx. A delivery retried three times in a
    day counts once that day."""
    attempt = webhook_attempts.c
    failed = or_(
        attempt.status_code.is_(None),
        attempt.status_code < SUCCESS.start,
        attempt.status_code >= SUCCESS.stop,
    )
    return await per_day(conn, attempt.attempted_at, failed, days=days, counted=attempt.delivery_id)
