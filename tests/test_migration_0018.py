"""Upgrading a database that holds rewarded referrals to 0018, on both backends: a reward
granted before holds existed stays granted (at the time it was earned), and can be clawed
back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from promos import migrate
from promos.db import Database
from promos.referrals import service
from promos.referrals.tables import referral_credits, referral_programs, referrals

# The fixtures of a database of each backend without any schema.
from tests.test_migrations import _upgrade_to, empty_url, unmigrated_postgres  # noqa: F401

THEN = datetime(2026, 11, 1, tzinfo=UTC)
REWARDED = THEN + timedelta(days=2)


async def _upgraded(url: str) -> Database:
    """A database at 0014 holding one referral whose reward was granted, upgraded to every head."""
    database = Database(url)
    async with database.engine.begin() as conn:
        await conn.run_sync(_upgrade_to, "0014")
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
        await conn.execute(
            referrals.insert().values(
                id=1,
                program_id=1,
                referrer_hash="alice",
                referred_hash="bob",
                credit_value=Decimal(10),
                target_value=Decimal(100),
                total_amount_paid=Decimal(100),
                rewarded_at=REWARDED,
                first_paid_at=REWARDED,
                created_at=THEN,
            )
        )
        await conn.execute(
            referral_credits.insert(),
            [
                {"referral_id": 1, "user_hash": u, "kind": k, "amount": a, "created_at": t}
                for u, k, a, t in (
                    ("bob", "signup", Decimal(10), THEN),
                    ("alice", "potential", Decimal(100), THEN),
                    ("alice", "acquired", Decimal(100), REWARDED),
                )
            ],
        )
    await migrate.upgrade(database.engine)
    return database


async def test_a_reward_granted_before_the_upgrade_stays_granted_and_can_be_clawed_back(
    empty_url,  # noqa: F811 - the fixture imported above
):
    database = await _upgraded(empty_url)
    now = REWARDED + timedelta(days=1)
    try:
        async with database.begin() as conn:
            referral = await service.get_referral(conn, "bob")
            before = await service.statement(conn, "alice", now=now)
            refund = await service.record_refund(conn, user_hash="bob", amount=Decimal(1), now=now)
            after = await service.statement(conn, "alice", now=now)
    finally:
        await database.dispose()

    assert (referral.granted_at, referral.reward_hold_days) == (REWARDED, 0)
    assert referral.reward_state(now) == "granted"
    assert (before.acquired_credit, before.potential_credit) == (Decimal(100), Decimal(0))
    assert refund.reversal == "clawback"
    assert after.acquired_credit == Decimal(0)
