"""Lapsed holds give their uses back, when the next taker of the code finds them.

No job has to run: a hold past its ``expires_at`` that is still ``held`` is given back by
whoever needs its use first (a redemption or a hold finding no free use, a release or a
confirm of that hold, its order asking again), in that one's transaction; readers count it
as free meanwhile (``promos.promocodes.service.get_promocode`` with ``now``). Each lapsed
hold is marked ``expired`` under its row lock, so that it is given back once, and emits
``promocode.hold_expired`` then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.events.outbox import emit_events
from promos.events.types import PROMOCODE_HOLD_EXPIRED
from promos.promocodes.tables import promocode_holds as holds
from promos.promocodes.tables import promocodes

HELD = "held"


def lapsed(now: datetime, table: Any = holds) -> ColumnElement[bool]:
    """SQL: the hold still holds a use that it should have given back by ``now``."""
    return and_(table.c.status == HELD, table.c.expires_at <= now)


_OTHERS = holds.alias("lapsed_holds")
_LAPSING = holds.alias("lapsing")


def lapsed_uses(now: datetime) -> Any:
    """SQL: how many uses the lapsed holds of the ``promocodes`` row at hand still hold."""
    return (
        select(func.count())
        .select_from(_OTHERS)
        .where(_OTHERS.c.promocode_id == promocodes.c.id, lapsed(now, _OTHERS))
        .correlate(promocodes)
        .scalar_subquery()
    )


async def give_back_lapsed(
    conn: AsyncConnection, *, now: datetime, code: str | None = None, hold_id: int | None = None
) -> int:
    """Mark the lapsed holds of the code (or the one hold) ``expired`` and give their uses
    back; how many there were."""
    where = [lapsed(now, _LAPSING)]
    if code is not None:
        where.append(
            _LAPSING.c.promocode_id.in_(select(promocodes.c.id).where(promocodes.c.code == code))
        )
    if hold_id is not None:
        where.append(_LAPSING.c.id == hold_id)
    # Locked in the order of their ids, as the lean path's grouped confirms and an order's
    # cancel lock holds, so that none of them waits on another in a cycle.
    locked = select(_LAPSING.c.id).where(*where).order_by(_LAPSING.c.id).with_for_update()
    ended = (
        await conn.execute(
            update(holds)
            .where(holds.c.id.in_(locked), lapsed(now))
            .values(status="expired", ended_at=now)
            .returning(
                holds.c.id,
                holds.c.promocode_id,
                holds.c.customer,
                holds.c.order_ref,
                holds.c.expires_at,
            )
        )
    ).all()
    if not ended:
        return 0
    by_code: dict[int, int] = {}
    for row in ended:
        by_code[row.promocode_id] = by_code.get(row.promocode_id, 0) + 1
    left: dict[int, tuple[str, int]] = {}
    for promocode_id, count in sorted(by_code.items()):
        given = (
            await conn.execute(
                update(promocodes)
                .where(promocodes.c.id == promocode_id)
                .values(usage_count=promocodes.c.usage_count + count)
                .returning(promocodes.c.code, promocodes.c.usage_count)
            )
        ).one()
        left[promocode_id] = (given.code, given.usage_count)
    await emit_events(
        conn,
        PROMOCODE_HOLD_EXPIRED,
        [
            {
                "hold_id": row.id,
                "code": left[row.promocode_id][0],
                "customer": row.customer,
                "order": row.order_ref,
                "expires_at": row.expires_at,
                "uses_left": left[row.promocode_id][1],
                "found_at": now,
            }
            for row in sorted(ended, key=lambda r: r.id)
        ],
        now=now,
    )
    return len(ended)
