"""Counts per UTC day, read through an index on a time column: what the dashboard's figures
and charts are made of.

A domain's service names its table's time column and conditions; ``per_day`` counts the rows
of each day in one statement whose only range is that column, so that an index on it (or on
``(..., time)``) serves it and no big table is scanned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
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


def _day(conn: AsyncConnection, column: ColumnElement[Any]) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        # timestamptz -> the UTC wall time -> its date
        return cast(func.timezone("UTC", column), Date)
    return func.substr(column, 1, 10)  # SQLite keeps UTC times as ISO text


async def per_day(
    conn: AsyncConnection,
    column: ColumnElement[Any],
    *where: ColumnElement[bool],
    days: Days,
    counted: ColumnElement[Any] | None = None,
) -> Daily:
    """How many rows have ``column`` on each of ``days`` (and meet ``where``); ``counted``
    counts distinct values of that expression instead of rows."""
    day = _day(conn, column).label("day")
    amount = func.count(func.distinct(counted)) if counted is not None else func.count()
    statement = (
        select(day, amount.label("n"))
        .where(column >= days.start, column < days.end, *where)
        .group_by(day)
    )
    found: dict[date, int] = {}
    for row in await conn.execute(statement):
        key = row.day if isinstance(row.day, date) else date.fromisoformat(row.day)
        found[key] = int(row.n)
    return Daily(days, tuple(found.get(d, 0) for d in days.dates()))
