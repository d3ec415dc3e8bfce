"""Code pools at a glance: codes issued per day, and the pools running low.

Both are read through ``ix_codes_issued`` (a batch's issued codes by time) and the pools'
counters (``pool_counts``), never by scanning ``codes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes import counts
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

    Codes left are the pools' counters (``promos.codes.counts``), not a count of free codes:
    the cost is one short index range per batch not expired, however big a batch is.
    """
    low = await counts.fewest_left(conn, below=below, now=now, limit=limit)
    if not low:
        return []
    named = {
        row.id: row
        for row in await conn.execute(
            select(batches.c.id, batches.c.name, batches.c.client_id).where(
                batches.c.id.in_([pool.batch_id for pool in low])
            )
        )
    }
    recent = await conn.execute(
        select(codes.c.batch_id, func.count().label("n"))
        .where(
            codes.c.batch_id.in_([pool.batch_id for pool in low]),
            codes.c.issued_at >= now - RATE_WINDOW,
            codes.c.issued_at <= now,
        )
        .group_by(codes.c.batch_id)
    )
    rates = {row.batch_id: int(row.n) for row in recent}
    return [
        LowPool(
            batch_id=pool.batch_id,
            name=named[pool.batch_id].name,
            client_id=named[pool.batch_id].client_id,
            left=pool.left,
            issued_last_day=rates.get(pool.batch_id, 0),
        )
        for pool in low
    ]
