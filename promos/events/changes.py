"""Changes to webhook subscriptions and deliveries made by the native routes, the console and
the command line, each with its audit row in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.events import service
from promos.events.service import Delivery, Subscription


async def create_subscription(
    conn: AsyncConnection,
    *,
    actor: Principal,
    url: str,
    event_types: Sequence[str],
    secret: str,
    now: datetime,
) -> Subscription:
    """A new subscription (its URL checked by the caller), recorded without its secret."""
    created = await service.create_subscription(
        conn, url=url, event_types=event_types, secret=secret, now=now
    )
    await audit.record(
        conn,
        actor=actor,
        action="webhook.create",
        target_type="webhook",
        target_id=created.id,
        after=created,
        at=now,
    )
    return created


async def update_subscription(
    conn: AsyncConnection,
    *,
    actor: Principal,
    subscription_id: int,
    event_types: Sequence[str] | None = None,
    paused: bool | None = None,
    now: datetime,
) -> Subscription:
    """New event types, or paused or resumed; recorded as it was and became."""
    before = await service.get_subscription(conn, subscription_id, for_update=True)
    after = await service.update_subscription(
        conn, subscription_id, event_types=event_types, paused=paused
    )
    await audit.record(
        conn,
        actor=actor,
        action="webhook.update",
        target_type="webhook",
        target_id=subscription_id,
        before=before,
        after=after,
        at=now,
    )
    return after


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


def _delivery_record(delivery: Delivery) -> dict[str, Any]:
    """A delivery as the audit log keeps it: without its body (the event is in the outbox)."""
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "kind": delivery.kind,
        "subscription_id": delivery.subscription_id,
        "url": delivery.url,
        "replay_of": delivery.replay_of,
    }


async def send_test(
    conn: AsyncConnection, *, actor: Principal, subscription_id: int, now: datetime
) -> Delivery:
    """A ``webhook.test`` delivery to the subscription, recorded as ``webhook.test``."""
    delivery = await service.send_test(conn, subscription_id, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="webhook.test",
        target_type="webhook",
        target_id=subscription_id,
        after=_delivery_record(delivery),
        at=now,
    )
    return delivery


async def replay_delivery(
    conn: AsyncConnection, *, actor: Principal, delivery_id: int, now: datetime
) -> Delivery:
    """The delivery's body again, as a new delivery due now; recorded as
    ``webhook_delivery.replay``."""
    replayed = await service.replay_delivery(conn, delivery_id, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="webhook_delivery.replay",
        target_type="webhook_delivery",
        target_id=delivery_id,
        after=_delivery_record(replayed),
        at=now,
    )
    return replayed
