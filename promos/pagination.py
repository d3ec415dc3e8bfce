"""Keyset pagination: the rows after a key, in a fixed order, and the key of the last one.

A page never skips rows with OFFSET: it starts strictly after the key of the previous page's
last row, so reading page 1,000 costs what reading page 1 does, and rows inserted or deleted
meanwhile neither repeat nor go missing from the pages still to come.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_, true
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")
Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Up to ``limit`` items; ``next_key`` is what to read after for the next page (``None``
    when there is no more)."""

    items: list[T]
    next_key: Key | None

    @property
    def has_more(self) -> bool:
        return self.next_key is not None


def after(
    columns: Sequence[ColumnElement[Any]], key: Key | None, *, descending: bool = False
) -> ColumnElement[bool]:
    """Rows strictly after ``key`` in the order of ``columns`` (all ascending or all
    descending): ``(a, b) > (x, y)`` spelled out, which every database reads alike. Every
    row for no key (the first page)."""
    if key is None:
        return true()
    if len(key) != len(columns):
        raise ValueError("a key has one value per column of the order")
    alternatives = []
    for n, column in enumerate(columns):
        earlier = [c == value for c, value in zip(columns[:n], key[:n], strict=True)]
        beyond = column < key[n] if descending else column > key[n]
        alternatives.append(and_(*earlier, beyond))
    return or_(*alternatives)


async def read_page(
    conn: AsyncConnection,
    query: Select[Any],
    *,
    limit: int,
    key: Callable[[Any], Key],
    item: Callable[[Any], T],
) -> Page[T]:
    """``query`` (ordered, filtered from the key on) read as a page of ``limit`` items."""
    rows = (await conn.execute(query.limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([item(row) for row in rows], key(rows[-1]) if more else None)
