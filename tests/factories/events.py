"""Events and deliveries, made through the events service."""

from __future__ import annotations

from datetime import datetime

from promos.db import Database
from promos.events import service


async def make_callback(database: Database, *, url: str, now: datetime) -> int:
    """A referral.signed_up event and its billing callback to ``url``, due now; its event id."""
    async with database.begin() as conn:
        event_id = await service.emit(conn, "referral.signed_up", {"referred": "bob"}, now=now)
        await service.enqueue_callback(
            conn,
            event_id=event_id,
            event_type="referral.signed_up",
            url=url,
            form={"amount": "10.00", "program_name": "Friends", "user_indicator_hash": "alice"},
            now=now,
        )
    return event_id
