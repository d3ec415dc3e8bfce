"""Code pools at a glance: codes issued per day, and the pools running low.

Both are read through ``ix_codes_issued`` (a batch's issued codes by time) and
``ix_codes_free`` (a batch's free codes), never by scanning ``codes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes.tables import batches, codes
from promos.daily import Daily, Days, per_day

# "At today's rate": the codes issued in the last 24 hours, not since midnight, so that the
# estimate does not jump to "never" just after midnight.
RATE_WINDOW = timedelta(hours=24)


async def issued_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many codes were issued on each of ``days``, in every batch."""
    # Naming the batches makes the statement walk ix_codes_issued once per batch, a
    # range of issue times each: an index made for per-batch charts serves the total too.
    return await per_day(
        conn,
        codes.c.issued_at,
        codes.c.batch_id.in_(select(batches.c.id).scalar_subquery()),
        days=days,
    )


@dataclass(frozen=True, slots=True)
class LowPool:
    batch_id: UUID
    name: str
    client_id: UUID
    left: int
    # Codes issued in the last 24 hours.
    issued_last_day: int

    @property
    def empty_in_days(self) -> int | None:
        """Days until no code is left at the last day's rate: 0 if empty, None if none were
        issued in the last day."""
        if self.left == 0:
            return 0
        if self.issued_last_day == 0:
            return None
        return math.ceil(self.left / self.issued_last_day)


async def pools_running_low(
    conn: AsyncConnection, *, below: int, now: datetime, limit: int = 20
) -> list[LowPool]:
    """The batches not expired with fewer than ``below`` free codes, fewest first (at most
    ``limit``), each with its rate of issue over the last 24 hours.

    Each batch's free codes are counted up to ``below`` only, so the cost is bounded by
    the number of batches times ``below`` index entries, however big a batch is.
    """
    capped = (
        select(literal(1))
        .where(codes.c.batch_id == batches.c.id, codes.c.issued_at.is_(None))
        .limit(below)
        .correlate(batches)
        .subquery()
    )
    left = select(func.count()).select_from(capped).scalar_subquery().label("left")
    counted = (
        select(batches.c.id, batches.c.name, batches.c.client_id, left)
        .where(batches.c.expired.is_(False))
        .subquery()
    )
    rows = (
        await conn.execute(
            select(counted)
            .where(counted.c.left < below)
            .order_by(counted.c.left, counted.c.name, counted.c.id)
            .limit(limit)
        )
    ).all()
    if not rows:
        return []
    recent = await conn.execute(
        select(codes.c.batch_id, func.count().label("n"))
        .where(
            codes.c.batch_id.in_([row.id for row in rows]),
            codes.c.issued_at >= now - RATE_WINDOW,
            codes.c.issued_at <= now,
        )
        .group_by(codes.c.batch_id)
    )
    rates = {row.batch_id: int(row.n) for row in recent}
    return [
        LowPool(
            batch_id=row.id,
            name=row.name,
            client_id=row.client_id,
            left=int(row.left),
            issued_last_day=rates.get(row.id, 0),
        )
        for row in rows
    ]
