"""Upgrading a database that holds referrals and webhooks to 0014, on both backends: the
referrals that had paid get a first payment's time, the subscriptions that were stopped are
deleted ones (as tests/test_migrations.py does for 0009)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from promos import migrate
from promos.db import Database
from promos.events.tables import webhook_subscriptions
from promos.referrals.tables import referral_programs, referrals

# The fixtures of a database of each backend without any schema.
from tests.test_migrations import _upgrade_to, empty_url, unmigrated_postgres  # noqa: F401

THEN = datetime(2026, 11, 1, tzinfo=UTC)
REWARDED = THEN + timedelta(days=2)


async def _upgraded(url: str) -> Database:
    """A database at 0012 holding three referrals (unpaid, paid, rewarded) and two
    subscriptions (active, stopped), then upgraded to every head."""
    database = Database(url)
    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade_to, "0012")
        await conn.execute(
            referral_programs.insert().values(
                id=1,
                name="Friends",
                credit_value=Decimal(10),
                target_value=Decimal(100),
                created_at=THEN,
                updated_at=THEN,
            )
        )
        common = {
            "program_id": 1,
            "referrer_hash": "alice",
            "created_at": THEN,
            "rewarded_at": None,
        }
        terms = {"credit_value": Decimal(10), "target_value": Decimal(100)}
        await conn.execute(
            referrals.insert(),
            [
                {**common, **terms, "referred_hash": "unpaid", "total_amount_paid": Decimal(0)},
                {**common, **terms, "referred_hash": "paid", "total_amount_paid": Decimal(5)},
                {
                    **common,
                    **terms,
                    "referred_hash": "rewarded",
                    "total_amount_paid": Decimal(100),
                    "rewarded_at": REWARDED,
                },
            ],
        )
        await conn.execute(
            webhook_subscriptions.insert(),
            [
                {
                    "url": "https://a.example",
                    "event_types": ["*"],
                    "secret": "s" * 16,
                    "active": active,
                    "created_at": THEN,
                }
                for active in (True, False)
            ],
        )
    await migrate.upgrade(database.engine)
    return database


async def test_referrals_that_had_paid_get_the_closest_time_known_as_their_first_payment(
    empty_url,  # noqa: F811 - the fixture imported above
):
    database = await _upgraded(empty_url)
    try:
        async with database.begin() as conn:
            rows = await conn.execute(
                select(referrals.c.referred_hash, referrals.c.first_paid_at).order_by(
                    referrals.c.id
                )
            )
            found = dict(rows.all())
    finally:
        await database.dispose()

    assert found == {"unpaid": None, "paid": THEN, "rewarded": REWARDED}


async def test_stopped_subscriptions_are_deleted_ones_after_the_upgrade(
    empty_url,  # noqa: F811 - the fixture imported above
):
    database = await _upgraded(empty_url)
    try:
        async with database.begin() as conn:
            rows = await conn.execute(
                select(webhook_subscriptions.c.active, webhook_subscriptions.c.deleted).order_by(
                    webhook_subscriptions.c.id
                )
            )
            found = [tuple(row) for row in rows]
    finally:
        await database.dispose()

    assert found == [(True, False), (False, True)]
