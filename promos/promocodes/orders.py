"""Cancelling an order: its holds released, its redemptions rolled back.

An order is known by the holds taken for it (``promocode_holds.order_ref``) and the
redemptions they became (``promocode_redemptions.order_ref``); a redemption taken by redeem
has no order and is rolled back by its id. Each step is the hold's or redemption's own
conditional change, so a cancel racing a confirm, a release or another cancel changes each
thing once: a hold confirmed meanwhile is rolled back as the redemption it became.

A cancel (and an order's return) changes rows of several codes: it locks them all first
(``lock_rows``), in the order every writer of several follows, so that none waits on another
in a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, or_, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.promocodes import holds, service
from promos.promocodes.errors import HoldConfirmed, OrderNotFound, RedemptionRolledBack
from promos.promocodes.holds import Hold
from promos.promocodes.service import Redemption
from promos.promocodes.tables import promocode_holds, promocode_redemptions, promocodes


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
    hold_ids = list(held)
    to_roll_back = list(standing)
    await lock_rows(conn, hold_ids=hold_ids, redemption_ids=to_roll_back)
    released: list[Hold] = []
    for hold_id in hold_ids:
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


async def lock_rows(
    conn: AsyncConnection, *, hold_ids: Sequence[int], redemption_ids: Sequence[int]
) -> None:
    """Lock the holds, then the redemptions, then their codes, each in the order of their ids,
    until the transaction ends.

    The order every writer of several of them follows: a release or an expiry locks its hold
    before its code, a rollback its redemption before its code, a grouped confirm its holds in
    id order (``lean``), and a group of redeems or holds its codes in id order.
    """
    if not hold_ids and not redemption_ids:
        return
    for table, ids in ((promocode_holds, hold_ids), (promocode_redemptions, redemption_ids)):
        if ids:
            await conn.execute(
                select(table.c.id)
                .where(table.c.id.in_(ids))
                .order_by(table.c.id)
                .with_for_update(key_share=True)
            )
    codes = union(
        select(promocode_holds.c.promocode_id).where(promocode_holds.c.id.in_(hold_ids)),
        select(promocode_redemptions.c.promocode_id).where(
            promocode_redemptions.c.id.in_(redemption_ids)
        ),
    )
    await conn.execute(
        select(promocodes.c.id)
        .where(promocodes.c.id.in_(codes))
        .order_by(promocodes.c.id)
        .with_for_update(key_share=True)
    )
