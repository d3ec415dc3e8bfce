"""Referrals at a glance: sign-ups and rewards per day, each through an index on its time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.daily import Daily, Days, per_day
from promos.referrals.tables import referrals


async def signups_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many referred users signed up on each of ``days``."""
    return await per_day(conn, referrals.c.created_at, days=days)


async def rewards_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many referrers earned their reward (a referred user reached the target) on each
    of ``days``."""
    return await per_day(conn, referrals.c.rewarded_at, days=days)
