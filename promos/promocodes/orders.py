"""Cancelling an order: its holds released, its redemptions rolled back.

An order is known by the holds taken for it (``promocode_holds.order_ref``) and the
redemptions they became (``promocode_redemptions.order_ref``); a redemption taken by redeem
has no order and is rolled back by its id. Each step is the hold's or redemption's own
conditional change, so a cancel racing a confirm, a release or another cancel changes each
thing once: a hold confirmed meanwhile is rolled back as the redemption it became.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.promocodes import holds, service
from promos.promocodes.errors import HoldConfirmed, OrderNotFound, RedemptionRolledBack
from promos.promocodes.holds import Hold
from promos.promocodes.service import Redemption
from promos.promocodes.tables import promocode_holds, promocode_redemptions


@dataclass(frozen=True, slots=True)
class Cancelled:
    order: str
    holds: list[Hold]  # released now (or found expired)
    redemptions: list[Redemption]  # rolled back now


async def cancel_order(conn: AsyncConnection, *, order: str, now: datetime) -> Cancelled:
    """Release the order's holds still held and roll back its redemptions that stand, of
    every code; what it changed (nothing, for an order cancelled before)."""
    held = (
        await conn.execute(
            select(promocode_holds.c.id)
            .where(promocode_holds.c.order_ref == order, promocode_holds.c.status == holds.HELD)
            .order_by(promocode_holds.c.id)
        )
    ).scalars()
    standing = (
        await conn.execute(
            select(promocode_redemptions.c.id)
            .where(
                promocode_redemptions.c.order_ref == order,
                promocode_redemptions.c.rolled_back_at.is_(None),
            )
            .order_by(promocode_redemptions.c.id)
        )
    ).scalars()
    released: list[Hold] = []
    to_roll_back = list(standing)
    for hold_id in held:
        try:
            released.append(await holds.release(conn, hold_id=hold_id, now=now))
        except HoldConfirmed:
            to_roll_back.append(hold_id)  # confirmed meanwhile: its redemption has its id
    rolled_back: list[Redemption] = []
    for redemption_id in sorted(set(to_roll_back)):
        try:
            rolled_back.append(await service.rollback(conn, redemption_id=redemption_id, now=now))
        except RedemptionRolledBack:
            continue  # a concurrent cancel or rollback came first
    if not released and not rolled_back and not await order_known(conn, order):
        raise OrderNotFound(f"no hold or redemption names order {order!r}")
    return Cancelled(order, released, rolled_back)


async def order_known(conn: AsyncConnection, order: str) -> bool:
    """Whether any hold or redemption names the order."""
    named = select(
        or_(
            exists().where(promocode_holds.c.order_ref == order),
            exists().where(promocode_redemptions.c.order_ref == order),
        )
    )
    return bool((await conn.execute(named)).scalar_one())
