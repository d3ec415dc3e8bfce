"""Changes to webhook subscriptions made by both the native routes and the command line,
each with its audit row in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.events import service
from promos.events.service import Subscription


async def delete_subscription(
    conn: AsyncConnection, *, actor: Principal, subscription_id: int, now: datetime
) -> Subscription:
    """Stop the subscription: its pending deliveries are cancelled, its log stays."""
    before = await service.get_subscription(conn, subscription_id, for_update=True)
    stopped = await service.deactivate_subscription(conn, subscription_id)
    await audit.record(
        conn,
        actor=actor,
        action="webhook.delete",
        target_type="webhook",
        target_id=subscription_id,
        before=before,
        after=stopped,
        at=now,
    )
    return stopped
