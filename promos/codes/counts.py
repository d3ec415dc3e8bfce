"""A batch's counters for the console: codes held, issued and left, and issues per day.

Kept off the issuing path (``promos.codes.issue`` writes nothing here). ``total`` is written
where codes are added (``service.add_codes``). ``issued`` is a checkpoint: the issues stamped
before ``counted_until``, per day in ``pool_daily_issues`` and in all. A read adds the issues
since the checkpoint, counted through ``ix_codes_issued`` (batch, issued at), and brings a
checkpoint older than ``MARGIN + REFRESH_AFTER`` forward to ``now - MARGIN``, so that a read
counts at most that much recent time.

Why the margin: ``issued_at`` is the issuing node's clock, read just before its transaction;
a transaction still running when the checkpoint moves past its stamp would commit a code the
checkpoint never counts. ``MARGIN`` bounds that (and the skew between nodes' clocks): an
issue commits within it of its stamp, or the count misses it (docs/console.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Subquery, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes.tables import batches, codes, pool_counts, pool_daily_issues
from promos.db import insert_for

# Before any code was ever issued: where a batch's count starts.
NEVER = datetime(2000, 1, 1, tzinfo=UTC)
MARGIN = timedelta(minutes=2)
REFRESH_AFTER = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class PoolCounts:
    """How many codes a batch holds, how many were issued, and how many are left."""

    batch_id: UUID
    total: int
    issued: int

    @property
    def left(self) -> int:
        return self.total - self.issued


@dataclass(frozen=True, slots=True)
class DayIssues:
    day: date
    issued: int


async def start(conn: AsyncConnection, batch_id: UUID) -> None:
    """The counters of a new, empty batch."""
    await conn.execute(
        pool_counts.insert().values(batch_id=batch_id, total=0, issued=0, counted_until=NEVER)
    )


async def add_total(conn: AsyncConnection, batch_id: UUID, added: int) -> None:
    """``added`` more codes in the batch (in the transaction that adds them)."""
    await conn.execute(
        update(pool_counts)
        .where(pool_counts.c.batch_id == batch_id)
        .values(total=pool_counts.c.total + added)
    )


async def returned(conn: AsyncConnection, batch_id: UUID, *, issued_at: datetime) -> None:
    """A code stamped issued at ``issued_at`` is free again (a hold's code returned to the
    pool): taken off the checkpoint and its day if the checkpoint counted it already."""
    moved = await conn.execute(
        update(pool_counts)
        .where(pool_counts.c.batch_id == batch_id, pool_counts.c.counted_until > issued_at)
        .values(issued=pool_counts.c.issued - 1)
    )
    if moved.rowcount != 1:
        return
    await conn.execute(
        update(pool_daily_issues)
        .where(
            pool_daily_issues.c.batch_id == batch_id,
            pool_daily_issues.c.day == issued_at.astimezone(UTC).date(),
        )
        .values(issued=pool_daily_issues.c.issued - 1)
    )


def _day(conn: AsyncConnection) -> ColumnElement[Any]:
    """The UTC day of ``codes.issued_at``: SQLite stores it as naive UTC text."""
    if conn.dialect.name == "postgresql":
        return func.date(func.timezone("UTC", codes.c.issued_at))
    return func.date(codes.c.issued_at)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


async def _issues_by_day(
    conn: AsyncConnection, batch_id: UUID, since: datetime, until: datetime | None = None
) -> dict[date, int]:
    """The batch's issues stamped from ``since`` (to before ``until``), per UTC day."""
    day = _day(conn)
    query = select(day, func.count()).where(
        codes.c.batch_id == batch_id, codes.c.issued_at >= since
    )
    if until is not None:
        query = query.where(codes.c.issued_at < until)
    rows = await conn.execute(query.group_by(day))
    return {_as_date(d): int(n) for d, n in rows}


async def _checkpoint(
    conn: AsyncConnection, batch_id: UUID, *, issued: int, since: datetime, now: datetime
) -> None:
    """Count the issues from ``since`` to ``now - MARGIN`` into the checkpoint, unless another
    read moved it meanwhile (then that one counted them)."""
    until = now - MARGIN
    per_day = await _issues_by_day(conn, batch_id, since, until)
    moved = await conn.execute(
        update(pool_counts)
        .where(pool_counts.c.batch_id == batch_id, pool_counts.c.counted_until == since)
        .values(issued=issued + sum(per_day.values()), counted_until=until)
    )
    if moved.rowcount != 1 or not per_day:
        return
    insert = insert_for(conn)
    statement = insert(pool_daily_issues).values(
        [{"batch_id": batch_id, "day": d, "issued": n} for d, n in per_day.items()]
    )
    await conn.execute(
        statement.on_conflict_do_update(
            index_elements=[pool_daily_issues.c.batch_id, pool_daily_issues.c.day],
            set_={"issued": pool_daily_issues.c.issued + statement.excluded.issued},
        )
    )


def _recent(which: ColumnElement[bool]) -> Subquery:
    """Each batch's issues since its checkpoint (through ix_codes_issued), for the batches
    ``which`` picks of ``pool_counts``. A join, not a subquery per row: Citus runs no
    correlated subquery from a reference table (``pool_counts``) into a distributed one."""
    return (
        select(codes.c.batch_id, func.count().label("recent"))
        .join(pool_counts, pool_counts.c.batch_id == codes.c.batch_id)
        .where(which, codes.c.issued_at >= pool_counts.c.counted_until)
        .group_by(codes.c.batch_id)
        .subquery()
    )


async def _read(
    conn: AsyncConnection, batch_ids: Sequence[UUID], *, now: datetime
) -> dict[UUID, PoolCounts]:
    """The batches' counters in one statement: each checkpoint, plus the issues since it
    (through ix_codes_issued). Then each checkpoint that is due, and has issues to take in,
    is brought forward; a batch without recent issues is not written to."""
    recent = _recent(pool_counts.c.batch_id.in_(batch_ids))
    query = (
        select(
            pool_counts.c.batch_id,
            pool_counts.c.total,
            pool_counts.c.issued,
            pool_counts.c.counted_until,
            func.coalesce(recent.c.recent, 0).label("recent"),
        )
        .outerjoin(recent, recent.c.batch_id == pool_counts.c.batch_id)
        .where(pool_counts.c.batch_id.in_(batch_ids))
    )
    found: dict[UUID, PoolCounts] = {}
    # Checkpoints are moved in the order of batch ids (see ``fewest_left``).
    query = query.order_by(pool_counts.c.batch_id)
    for row in (await conn.execute(query)).all():
        found[row.batch_id] = PoolCounts(row.batch_id, int(row.total), row.issued + row.recent)
        if row.recent and row.counted_until < now - MARGIN - REFRESH_AFTER:
            await _checkpoint(
                conn, row.batch_id, issued=row.issued, since=row.counted_until, now=now
            )
    return found


async def fewest_left(
    conn: AsyncConnection, *, below: int, now: datetime, limit: int
) -> list[PoolCounts]:
    """The counters of the batches not expired with fewer than ``below`` codes left, fewest
    first (then by name), at most ``limit``: one statement over every such batch's counters,
    each adding its issues since its checkpoint (through ix_codes_issued). Like a page's
    read, it brings forward every due checkpoint of those batches, so that the issues
    counted since one stay few however long no page shows the batch."""
    recent = _recent(pool_counts.c.batch_id.in_(select(batches.c.id).where(~batches.c.expired)))
    live = (
        select(
            pool_counts.c.batch_id,
            pool_counts.c.total,
            pool_counts.c.issued,
            pool_counts.c.counted_until,
            func.coalesce(recent.c.recent, 0).label("recent"),
            batches.c.name,
        )
        .join(batches, batches.c.id == pool_counts.c.batch_id)
        .outerjoin(recent, recent.c.batch_id == pool_counts.c.batch_id)
        .where(batches.c.expired.is_(False))
        .subquery()
    )
    left = live.c.total - live.c.issued - live.c.recent
    due = and_(live.c.recent > 0, live.c.counted_until < now - MARGIN - REFRESH_AFTER)
    rows = (
        await conn.execute(
            select(live, (left < below).label("low"))
            .where(or_(left < below, due))
            .order_by(left, live.c.name, live.c.batch_id)
        )
    ).all()
    # In the order of batch ids, as every read takes them, so that two reads moving the same
    # checkpoints lock their rows in one order and never wait on each other in a circle.
    for row in sorted(rows, key=lambda row: row.batch_id):
        if row.recent and row.counted_until < now - MARGIN - REFRESH_AFTER:
            await _checkpoint(
                conn, row.batch_id, issued=row.issued, since=row.counted_until, now=now
            )
    low = [row for row in rows if row.low][:limit]
    return [PoolCounts(row.batch_id, int(row.total), int(row.issued + row.recent)) for row in low]


async def counts_of(
    conn: AsyncConnection, batch_ids: Iterable[UUID], *, now: datetime
) -> dict[UUID, PoolCounts]:
    """The counters of these batches, exact (see the module's note on ``MARGIN``)."""
    wanted = list(dict.fromkeys(batch_ids))
    return await _read(conn, wanted, now=now) if wanted else {}


async def counts(conn: AsyncConnection, batch_id: UUID, *, now: datetime) -> PoolCounts:
    """The counters of one batch (zero for a batch that has none)."""
    found = await counts_of(conn, [batch_id], now=now)
    return found.get(batch_id, PoolCounts(batch_id, 0, 0))


async def issues_per_day(
    conn: AsyncConnection, batch_id: UUID, *, days: int, now: datetime
) -> list[DayIssues]:
    """The batch's issues on each of the last ``days`` UTC days, today last (zero days too)."""
    await _read(conn, [batch_id], now=now)
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    per_day: dict[date, int] = {}
    query = select(pool_daily_issues.c.day, pool_daily_issues.c.issued).where(
        pool_daily_issues.c.batch_id == batch_id, pool_daily_issues.c.day >= first
    )
    for day, issued in await conn.execute(query):
        per_day[_as_date(day)] = int(issued)
    since = (
        await conn.execute(
            select(pool_counts.c.counted_until).where(pool_counts.c.batch_id == batch_id)
        )
    ).scalar_one_or_none()
    if since is not None:
        for day, issued in (await _issues_by_day(conn, batch_id, since)).items():
            per_day[day] = per_day.get(day, 0) + issued
    return [
        DayIssues(first + timedelta(days=n), per_day.get(first + timedelta(days=n), 0))
        for n in range(days)
    ]
