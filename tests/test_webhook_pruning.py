"""Pruning the delivery log: finished deliveries and their events go, nothing else does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from promos.db import Database
from promos.events import service
from promos.events.dispatcher import Dispatcher, RetryPolicy
from promos.events.tables import outbox, webhook_attempts, webhook_deliveries
from tests.conftest import FakeClock
from tests.test_cli import failed_cleanly, promos

NOBODY = "http://127.0.0.1:9/hooks"  # the discard port: nothing listens, every attempt fails
MONTH = timedelta(days=30)


@pytest.fixture
async def dispatcher(database: Database, clock: FakeClock) -> AsyncIterator[Dispatcher]:
    sending = Dispatcher(
        database,
        clock=clock,
        callback_secret="pruning-secret-0123456789",
        policy=RetryPolicy(max_attempts=5, base_seconds=1, max_seconds=60),
        timeout_seconds=2,
    )
    yield sending
    await sending.close()


async def subscribe(database: Database, clock: FakeClock) -> int:
    async with database.begin() as conn:
        subscription = await service.create_subscription(
            conn, url=NOBODY, event_types=["*"], secret="subscription-secret-0123", now=clock()
        )
    return subscription.id


async def emit(database: Database, clock: FakeClock) -> int:
    async with database.begin() as conn:
        return await service.emit(conn, "referral.signed_up", {"n": 1}, now=clock())


async def prune(database: Database, before) -> tuple[service.Pruned, int]:
    async with database.begin() as conn:
        pruned = await service.prune_deliveries(conn, before=before, limit=100)
    async with database.begin() as conn:
        events = await service.prune_events(conn, before=before, limit=100)
    return pruned, events


async def count(database: Database, table) -> int:
    async with database.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_old_cancelled_deliveries_go_with_their_attempts_and_events(
    database, clock, dispatcher
):
    subscription = await subscribe(database, clock)
    await emit(database, clock)
    assert await dispatcher.deliver_due() == 1  # one failed attempt, retried later
    async with database.begin() as conn:
        await service.deactivate_subscription(conn, subscription)  # cancels it

    pruned, events = await prune(database, before=clock() + timedelta(seconds=1))

    assert (pruned, events) == (service.Pruned(deliveries=1, attempts=1), 1)
    assert [await count(database, t) for t in (webhook_deliveries, webhook_attempts, outbox)] == [
        0,
        0,
        0,
    ]


async def test_pending_and_recent_deliveries_and_their_events_stay(database, clock):
    subscription = await subscribe(database, clock)
    await emit(database, clock)  # stays pending: the subscription is active
    clock.advance(days=40)
    await emit(database, clock)
    async with database.begin() as conn:
        await service.deactivate_subscription(conn, subscription)  # both cancelled now

    pruned, events = await prune(database, before=clock() - MONTH)

    assert (pruned, events) == (service.Pruned(deliveries=1, attempts=0), 1)
    assert await count(database, webhook_deliveries) == 1  # the recent one
    assert await count(database, outbox) == 1


async def test_a_pending_delivery_is_never_pruned(database, clock):
    await subscribe(database, clock)
    await emit(database, clock)
    clock.advance(days=40)

    pruned, events = await prune(database, before=clock() - MONTH)

    assert (pruned, events) == (service.Pruned(deliveries=0, attempts=0), 0)


async def test_a_replayed_delivery_stays_while_its_replay_does(database, clock):
    subscription = await subscribe(database, clock)
    await emit(database, clock)
    async with database.begin() as conn:
        [original] = (await service.list_deliveries(conn)).items
        await service.replay_delivery(conn, original.id, now=clock())
        await service.deactivate_subscription(conn, subscription)
    clock.advance(days=40)

    first = await prune(database, before=clock() - MONTH)
    second = await prune(database, before=clock() - MONTH)

    assert first == (service.Pruned(deliveries=1, attempts=0), 0)  # the replay; its event stays
    assert second == (service.Pruned(deliveries=1, attempts=0), 1)  # then the original, and it


def test_the_prune_command_says_what_it_deleted(database_url):
    result = promos(database_url, "webhooks", "prune", "--older-than-days", "30")

    assert result.exit_code == 0, result.output
    assert result.output.startswith("pruned 0 deliveries, 0 attempts and 0 events created before ")


def test_the_prune_command_refuses_less_than_a_day(database_url):
    result = promos(database_url, "webhooks", "prune", "--older-than-days", "0")

    assert failed_cleanly(result)
