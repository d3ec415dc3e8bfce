"""Promo codes at a glance: redemptions per day, through ix_promocode_redemptions_redeemed."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.daily import Daily, Days, per_day
from promos.promocodes.tables import promocode_redemptions


async def redemptions_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many redemptions were made on each of ``days``, not counting those rolled back."""
    return await per_day(
        conn,
        promocode_redemptions.c.redeemed_at,
        promocode_redemptions.c.rolled_back_at.is_(None),
        days=days,
    )
