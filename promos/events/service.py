"""The outbox: ``emit`` an event in the caller's transaction; subscriptions; the delivery log.

A domain calls ``emit(conn, "referral.rewarded", {...})`` inside the transaction of the change
it reports: the event and its deliveries commit with that change, or not at all. The hot
paths write their events inside their own statements (``promos.events.outbox``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from sqlalchemy import ColumnElement, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.clock import utc_now
from promos.events.errors import DeliveryNotFound, SubscriptionInactive, SubscriptionNotFound
from promos.events.outbox import JSON_TYPE, emit_events, event_time
from promos.events.tables import (
    FAILING,
    outbox,
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)
from promos.pagination import Key, Page, after, read_page

FORM = "application/x-www-form-urlencoded"
# Sent to one subscription when a person asks; not a type a subscription can ask for.
TEST_EVENT = "webhook.test"
TEST_MESSAGE = "A test event sent from the Promos console or API: nothing happened."


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    url: str
    event_types: list[str]
    # Receives events: not while paused, never once deleted.
    active: bool
    created_at: datetime
    deleted: bool = False

    @property
    def status(self) -> str:
        """Active, paused (resumable) or deleted (for good)."""
        if self.deleted:
            return "deleted"
        return "active" if self.active else "paused"


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    response_excerpt: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: int
    event_type: str
    kind: str
    subscription_id: int | None
    url: str
    content_type: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    replay_of: int | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: tuple[Attempt, ...] = ()


async def emit(
    conn: AsyncConnection,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> int:
    """Record an event in the outbox, with a delivery to each subscription that wants it.

    Call it inside the transaction of the change the event reports. The event is written
    even when no subscription wants it (a billing callback may name it); the hot paths use
    ``promos.events.outbox``, which writes nothing then. Returns the event id.
    """
    [event_id] = await emit_events(conn, event_type, [payload], now=now or utc_now(), always=True)
    return event_id


async def enqueue_callback(
    conn: AsyncConnection,
    *,
    event_id: int,
    event_type: str,
    url: str,
    form: Mapping[str, str],
    now: datetime,
) -> int:
    """A form POST to ``url`` for the event (the referral seed's billing callback)."""
    row = _delivery_row(
        event_id=event_id,
        event_type=event_type,
        kind="callback",
        subscription_id=None,
        url=url,
        content_type=FORM,
        body=urlencode(form),
        now=now,
    )
    delivery_id: int = (
        await conn.execute(
            webhook_deliveries.insert().values(**row).returning(webhook_deliveries.c.id)
        )
    ).scalar_one()
    return delivery_id


def _delivery_row(
    *,
    event_id: int,
    event_type: str,
    kind: str,
    subscription_id: int | None,
    url: str,
    content_type: str,
    body: str,
    now: datetime,
    replay_of: int | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "kind": kind,
        "subscription_id": subscription_id,
        "url": url,
        "content_type": content_type,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "replay_of": replay_of,
        "created_at": now,
    }


# --- subscriptions ---------------------------------------------------------------------------


def _subscription_of(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        active=row.active,
        created_at=row.created_at,
        deleted=row.deleted,
    )


_SUBSCRIPTION_COLUMNS = (
    webhook_subscriptions.c.id,
    webhook_subscriptions.c.url,
    webhook_subscriptions.c.event_types,
    webhook_subscriptions.c.active,
    webhook_subscriptions.c.created_at,
    webhook_subscriptions.c.deleted,
)


async def create_subscription(
    conn: AsyncConnection, *, url: str, event_types: Sequence[str], secret: str, now: datetime
) -> Subscription:
    types = sorted(set(event_types))
    sub_id: int = (
        await conn.execute(
            webhook_subscriptions.insert()
            .values(url=url, event_types=types, secret=secret, active=True, created_at=now)
            .returning(webhook_subscriptions.c.id)
        )
    ).scalar_one()
    return Subscription(id=sub_id, url=url, event_types=types, active=True, created_at=now)


async def list_subscriptions(
    conn: AsyncConnection, *, limit: int, after_key: Key | None = None
) -> Page[Subscription]:
    """Subscriptions (stopped ones too), oldest first: a page after ``after_key`` (id)."""
    query = (
        select(*_SUBSCRIPTION_COLUMNS)
        .order_by(webhook_subscriptions.c.id)
        .where(after((webhook_subscriptions.c.id,), after_key))
    )
    return await read_page(
        conn, query, limit=limit, key=lambda row: (row.id,), item=_subscription_of
    )


async def get_subscription(
    conn: AsyncConnection, subscription_id: int, *, for_update: bool = False
) -> Subscription:
    """The subscription; ``for_update`` locks its row until the transaction ends."""
    query = select(*_SUBSCRIPTION_COLUMNS).where(webhook_subscriptions.c.id == subscription_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise SubscriptionNotFound(f"webhook subscription {subscription_id} does not exist")
    return _subscription_of(row)


def _refuse_if_deleted(subscription: Subscription, doing: str) -> None:
    if subscription.deleted:
        raise SubscriptionInactive(
            f"webhook subscription {subscription.id} was deleted: it cannot be {doing}"
        )


async def update_subscription(
    conn: AsyncConnection,
    subscription_id: int,
    *,
    event_types: Sequence[str] | None = None,
    paused: bool | None = None,
) -> Subscription:
    """Change the event types sent (from the next event on), or pause or resume it.

    A paused subscription receives no events (none are kept for it meanwhile) and its
    pending deliveries are cancelled, as a deleted one's; they can be replayed once it is
    resumed. A deleted subscription cannot be changed.
    """
    current = await get_subscription(conn, subscription_id, for_update=True)
    _refuse_if_deleted(current, "changed")
    values: dict[str, Any] = {}
    if event_types is not None:
        values["event_types"] = sorted(set(event_types))
    if paused is not None:
        values["active"] = not paused
    if values:
        await conn.execute(
            update(webhook_subscriptions)
            .where(webhook_subscriptions.c.id == subscription_id)
            .values(**values)
        )
    if paused:
        await _cancel_pending(conn, subscription_id)
    return await get_subscription(conn, subscription_id)


async def _cancel_pending(conn: AsyncConnection, subscription_id: int) -> None:
    await _cancel(conn, webhook_deliveries.c.subscription_id == subscription_id)


async def _cancel(conn: AsyncConnection, which: ColumnElement[bool]) -> None:
    await conn.execute(
        update(webhook_deliveries)
        .where(which, webhook_deliveries.c.status == "pending")
        .values(status="cancelled")
    )


async def defer_deliveries(conn: AsyncConnection, event_id: int, *, until: datetime) -> None:
    """Make an event's deliveries (webhooks and callback) due at ``until``, not now."""
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.event_id == event_id)
        .values(next_attempt_at=until)
    )


async def cancel_deliveries(conn: AsyncConnection, event_id: int) -> None:
    """Cancel an event's deliveries not made yet (what it announced did not happen)."""
    await _cancel(conn, webhook_deliveries.c.event_id == event_id)


def _refuse_if_inactive(subscription: Subscription, doing: str) -> None:
    _refuse_if_deleted(subscription, doing)
    if not subscription.active:
        raise SubscriptionInactive(
            f"webhook subscription {subscription.id} is paused: resume it before it can be {doing}"
        )


async def send_test(conn: AsyncConnection, subscription_id: int, *, now: datetime) -> Delivery:
    """A ``webhook.test`` event for this subscription alone, due now (only to an active one)."""
    subscription = await get_subscription(conn, subscription_id)
    _refuse_if_inactive(subscription, "sent a test event")
    payload = {"subscription_id": str(subscription.id), "message": TEST_MESSAGE}
    event_id: int = (
        await conn.execute(
            outbox.insert()
            .values(event_type=TEST_EVENT, payload=payload, created_at=now)
            .returning(outbox.c.id)
        )
    ).scalar_one()
    envelope = {"id": event_id, "type": TEST_EVENT, "created_at": event_time(now), "data": payload}
    row = _delivery_row(
        event_id=event_id,
        event_type=TEST_EVENT,
        kind="webhook",
        subscription_id=subscription.id,
        url=subscription.url,
        content_type=JSON_TYPE,
        body=orjson.dumps(envelope).decode(),
        now=now,
    )
    delivery_id: int = (
        await conn.execute(
            webhook_deliveries.insert().values(**row).returning(webhook_deliveries.c.id)
        )
    ).scalar_one()
    return await get_delivery(conn, delivery_id)


async def deactivate_subscription(conn: AsyncConnection, subscription_id: int) -> Subscription:
    """Stop a subscription: no new deliveries, and its pending ones are cancelled."""
    result = await conn.execute(
        update(webhook_subscriptions)
        .where(webhook_subscriptions.c.id == subscription_id)
        .values(active=False, deleted=True)
    )
    if result.rowcount == 0:
        raise SubscriptionNotFound(f"webhook subscription {subscription_id} does not exist")
    await _cancel_pending(conn, subscription_id)
    return await get_subscription(conn, subscription_id)


# --- the delivery log ------------------------------------------------------------------------

_DELIVERY_COLUMNS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.event_id,
    webhook_deliveries.c.event_type,
    webhook_deliveries.c.kind,
    webhook_deliveries.c.subscription_id,
    webhook_deliveries.c.url,
    webhook_deliveries.c.content_type,
    webhook_deliveries.c.body,
    webhook_deliveries.c.status,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.next_attempt_at,
    webhook_deliveries.c.last_status_code,
    webhook_deliveries.c.last_error,
    webhook_deliveries.c.replay_of,
    webhook_deliveries.c.created_at,
    webhook_deliveries.c.delivered_at,
)


def _delivery_of(row: Any, attempts: Sequence[Attempt] = ()) -> Delivery:
    return Delivery(
        **{c.name: getattr(row, c.name) for c in _DELIVERY_COLUMNS}, attempt_log=tuple(attempts)
    )


async def list_deliveries(
    conn: AsyncConnection,
    *,
    subscription_id: int | None = None,
    kind: str | None = None,
    status: str | None = None,
    event_type: str | None = None,
    failing: bool = False,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    after_key: Key | None = None,
) -> Page[Delivery]:
    """Deliveries, newest first: a page after ``after_key`` (id). ``failing``: those whose
    last attempt failed and that are not delivered (given up, or to be tried again);
    ``since`` (included) and ``until`` (excluded) bound when they were made."""
    query = (
        select(*_DELIVERY_COLUMNS)
        .order_by(webhook_deliveries.c.id.desc())
        .where(after((webhook_deliveries.c.id,), after_key, descending=True))
    )
    if failing:
        # The predicate of ix_webhook_deliveries_failing, word for word, so that it serves.
        query = query.where(text(f"({FAILING})"))
    if since is not None:
        query = query.where(webhook_deliveries.c.created_at >= since)
    if until is not None:
        query = query.where(webhook_deliveries.c.created_at < until)
    for column, value in (
        (webhook_deliveries.c.subscription_id, subscription_id),
        (webhook_deliveries.c.kind, kind),
        (webhook_deliveries.c.status, status),
        (webhook_deliveries.c.event_type, event_type),
    ):
        if value is not None:
            query = query.where(column == value)
    return await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=_delivery_of)


async def get_delivery(conn: AsyncConnection, delivery_id: int) -> Delivery:
    """A delivery with every attempt made at it, oldest first."""
    row = (
        await conn.execute(select(*_DELIVERY_COLUMNS).where(webhook_deliveries.c.id == delivery_id))
    ).first()
    if row is None:
        raise DeliveryNotFound(f"delivery {delivery_id} does not exist")
    attempts = await conn.execute(
        select(
            webhook_attempts.c.number,
            webhook_attempts.c.attempted_at,
            webhook_attempts.c.status_code,
            webhook_attempts.c.error,
            webhook_attempts.c.duration_ms,
            webhook_attempts.c.response_excerpt,
        )
        .where(webhook_attempts.c.delivery_id == delivery_id)
        .order_by(webhook_attempts.c.number, webhook_attempts.c.id)
    )
    return _delivery_of(row, [Attempt(*a) for a in attempts])


async def replay_delivery(conn: AsyncConnection, delivery_id: int, *, now: datetime) -> Delivery:
    """Send a delivery's body again, as a new delivery (due now) that names the one replayed."""
    original = await get_delivery(conn, delivery_id)
    if original.subscription_id is not None:
        subscription = await get_subscription(conn, original.subscription_id)
        _refuse_if_inactive(subscription, "sent its deliveries again")
    row = _delivery_row(
        event_id=original.event_id,
        event_type=original.event_type,
        kind=original.kind,
        subscription_id=original.subscription_id,
        url=original.url,
        content_type=original.content_type,
        body=original.body,
        now=now,
        replay_of=original.id,
    )
    new_id: int = (
        await conn.execute(
            webhook_deliveries.insert().values(**row).returning(webhook_deliveries.c.id)
        )
    ).scalar_one()
    return await get_delivery(conn, new_id)


@dataclass(frozen=True, slots=True)
class Pruned:
    deliveries: int
    attempts: int


FINISHED = ("delivered", "cancelled")


async def prune_deliveries(conn: AsyncConnection, *, before: datetime, limit: int) -> Pruned:
    """Delete up to ``limit`` delivered or cancelled deliveries created before ``before``, with
    their attempts; a delivery that a replay repeats is kept (the replay points at it)."""
    d = webhook_deliveries
    replayed = select(d.c.replay_of).where(d.c.replay_of.is_not(None))
    chosen = (
        select(d.c.id)
        .where(d.c.status.in_(FINISHED), d.c.created_at < before, d.c.id.not_in(replayed))
        .order_by(d.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL: never wait on a replay of one of them
    )
    ids = list((await conn.execute(chosen)).scalars())
    if not ids:
        return Pruned(0, 0)
    attempts = await conn.execute(
        delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids))
    )
    deliveries = await conn.execute(delete(d).where(d.c.id.in_(ids)))
    return Pruned(deliveries.rowcount, attempts.rowcount)


async def prune_events(conn: AsyncConnection, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` events created before ``before`` that no delivery refers to."""
    delivered = select(webhook_deliveries.c.id).where(webhook_deliveries.c.event_id == outbox.c.id)
    chosen = (
        select(outbox.c.id)
        .where(outbox.c.created_at < before, ~delivered.exists())
        .order_by(outbox.c.id)
        .limit(limit)
    )
    done = await conn.execute(delete(outbox).where(outbox.c.id.in_(chosen.scalar_subquery())))
    return int(done.rowcount)
