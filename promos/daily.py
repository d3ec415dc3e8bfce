"""Counts per UTC day, read through an index on a time column: what the dashboard's figures
and charts are made of.

A domain's service names its table's time column and conditions; ``per_day`` counts the rows
of each day in one statement whose only range is that column, so that an index on it (or on
``(..., time)``) serves it and no big table is scanned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True, slots=True)
class Days:
    """The ``count`` UTC days that end with ``last`` (today, usually)."""

    last: date
    count: int = 30

    @property
    def first(self) -> date:
        return self.last - timedelta(days=self.count - 1)

    @property
    def start(self) -> datetime:
        """Midnight (UTC) at the start of the first day."""
        return datetime.combine(self.first, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Midnight (UTC) after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=UTC)

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.count)]

    def followed_by(self, later: Days) -> Days:
        """These days and ``later``, which must begin the day after the last of these."""
        if later.first != self.last + timedelta(days=1):
            raise ValueError(f"{later} does not follow {self}")
        return Days(later.last, self.count + later.count)


@dataclass(frozen=True, slots=True)
class Daily:
    """A count per day, oldest first, and the totals of the last days."""

    days: Days
    counts: tuple[int, ...]

    def total(self, days: int | None = None) -> int:
        """The sum of the last ``days`` days (all of them by default)."""
        return sum(self.counts[-days:] if days else self.counts)

    def by_date(self) -> list[tuple[date, int]]:
        return list(zip(self.days.dates(), self.counts, strict=True))

    def then(self, later: Daily) -> Daily:
        """These days followed by ``later``'s, which begin the day after the last of these."""
        return Daily(self.days.followed_by(later.days), self.counts + later.counts)


def _day(conn: AsyncConnection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        # timestamptz -> the UTC wall time -> its date
        return cast(func.timezone("UTC", column), Date)
    return func.substr(column, 1, 10)  # SQLite keeps UTC times as ISO text


@dataclass(frozen=True, slots=True)
class DailyAmounts:
    """An amount of money per day, oldest first."""

    days: Days
    amounts: tuple[Decimal, ...]

    def total(self, days: int | None = None) -> Decimal:
        """The sum of the last ``days`` days (all of them by default)."""
        return sum(self.amounts[-days:] if days else self.amounts, Decimal("0.00"))

    def by_date(self) -> list[tuple[date, Decimal]]:
        return list(zip(self.days.dates(), self.amounts, strict=True))

    def then(self, later: DailyAmounts) -> DailyAmounts:
        """These days followed by ``later``'s, which begin the day after the last of these."""
        return DailyAmounts(self.days.followed_by(later.days), self.amounts + later.amounts)


async def _by_day(
    conn: AsyncConnection,
    column: ColumnElement[Any],
    where: tuple[ColumnElement[bool], ...],
    days: Days,
    *aggregates: ColumnElement[Any],
) -> dict[date, Any]:
    """Each day's row of ``aggregates`` over the rows with ``column`` in ``days``."""
    day = _day(conn, column).label("day")
    statement = (
        select(day, *aggregates)
        .where(column >= days.start, column < days.end, *where)
        .group_by(day)
    )
    found: dict[date, Any] = {}
    for row in await conn.execute(statement):
        found[row.day if isinstance(row.day, date) else date.fromisoformat(row.day)] = row
    return found


async def per_day(
    conn: AsyncConnection,
    column: ColumnElement[Any],
    *where: ColumnElement[bool],
    days: Days,
    counted: ColumnElement[Any] | None = None,
) -> Daily:
    """How many rows have ``column`` on each of ``days`` (and meet ``where``); ``counted``
    counts distinct values of that expression instead of rows."""
    amount = func.count(func.distinct(counted)) if counted is not None else func.count()
    found = await _by_day(conn, column, where, days, amount.label("n"))
    return Daily(days, tuple(int(found[d].n) if d in found else 0 for d in days.dates()))


async def per_day_summed(
    conn: AsyncConnection,
    column: ColumnElement[Any],
    *where: ColumnElement[bool],
    days: Days,
    summed: ColumnElement[Decimal],
) -> tuple[Daily, DailyAmounts]:
    """How many rows have ``column`` on each of ``days``, and the sum of ``summed`` (an
    amount of money) over them, in one statement."""
    found = await _by_day(
        conn, column, where, days, func.count().label("n"), func.sum(summed).label("total")
    )
    zero = Decimal("0.00")
    dates = days.dates()
    counts = tuple(int(found[d].n) if d in found else 0 for d in dates)
    amounts = tuple(
        found[d].total if d in found and found[d].total is not None else zero for d in dates
    )
    return Daily(days, counts), DailyAmounts(days, amounts)
