"""The console's reads of promo codes: a listing in code order with filters, each served by
an index, and a code's redemptions, newest first. Both are paged by key, never by offset.

Codes are ordered bytewise (``COLLATE "C"`` on PostgreSQL, whose default collation may
not be; SQLite compares bytewise already), so that the codes of a prefix are one range of
the index ``ix_promocodes_code_c``. The used-up filter reads the partial index
``ix_promocodes_used_up``; a bound user, a product and "expired" are conditions on the
generation, read first from the small generations table (indexed by ``usage_by``,
``promocode_products.sku`` and ``expires_in``), then the codes of those generations from
``ix_promocodes_generation_code``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import exists, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from promos.pagination import Key, Page, after
from promos.promocodes.service import (
    _COLUMNS,
    _JOINED,
    _REDEMPTION_COLUMNS,
    _REDEMPTIONS,
    Promocode,
    Redemption,
    _promocodes,
    normalize_email,
)
from promos.promocodes.tables import promocode_generations as generations
from promos.promocodes.tables import promocode_products as products_table
from promos.promocodes.tables import promocode_redemptions as redemptions
from promos.promocodes.tables import promocodes


@dataclass(frozen=True, slots=True)
class CodeQuery:
    """The console's filters; each one set narrows the list (all of them together)."""

    prefix: str | None = None
    usage_by: str | None = None
    product: str | None = None
    # Only codes whose last day is before ``today``.
    expired: bool = False
    # Only codes with no uses left.
    used_up: bool = False
    generation_id: int | None = None

    @property
    def narrows_generations(self) -> bool:
        return self.usage_by is not None or self.product is not None or self.expired


def code_order(conn: AsyncConnection) -> ColumnElement[str]:
    """``promocodes.code`` compared bytewise, as the console's indexes hold it."""
    if conn.dialect.name == "postgresql":
        return promocodes.c.code.collate("C")
    return promocodes.c.code


def _after_prefix(prefix: str) -> str:
    """The least string after every string that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _conditions(
    conn: AsyncConnection, query: CodeQuery, *, today: date
) -> list[ColumnElement[bool]]:
    code = code_order(conn)
    where: list[ColumnElement[bool]] = []
    if query.prefix:
        where += [code >= query.prefix, code < _after_prefix(query.prefix)]
    if query.used_up:
        # A literal, not a parameter: PostgreSQL proves a partial index's predicate only
        # from the statement's own text (a prepared statement's generic plan has none).
        where.append(literal_column("promocodes.usage_count") == literal_column("0"))
    if query.generation_id is not None:
        where.append(promocodes.c.generation_id == query.generation_id)
    if query.narrows_generations:
        chosen = select(generations.c.id)
        if query.usage_by is not None:
            chosen = chosen.where(generations.c.usage_by == normalize_email(query.usage_by))
        if query.product is not None:
            chosen = chosen.where(
                exists().where(
                    products_table.c.generation_id == generations.c.id,
                    products_table.c.sku == query.product,
                )
            )
        if query.expired:
            chosen = chosen.where(generations.c.expires_in < today)
        where.append(promocodes.c.generation_id.in_(chosen))
    return where


async def codes_page(
    conn: AsyncConnection,
    *,
    query: CodeQuery,
    today: date,
    limit: int,
    after_key: Key | None = None,
) -> Page[Promocode]:
    """Promo codes in code order (bytewise), filtered: a page after ``after_key`` (code)."""
    code = code_order(conn)
    statement = (
        select(*_COLUMNS)
        .select_from(_JOINED)
        .where(*_conditions(conn, query, today=today), after((code,), after_key))
        .order_by(code)
        .limit(limit + 1)
    )
    rows: list[Any] = list((await conn.execute(statement)).all())
    found = await _promocodes(conn, rows[:limit])
    return Page(found, (found[-1].code,) if len(rows) > limit else None)


async def redemptions_of(
    conn: AsyncConnection, *, promocode_id: int, limit: int, after_key: Key | None = None
) -> Page[Redemption]:
    """A code's redemptions, rolled-back ones too, newest first: a page after ``after_key``
    (id)."""
    statement = (
        select(*_REDEMPTION_COLUMNS)
        .select_from(_REDEMPTIONS)
        .where(
            redemptions.c.promocode_id == promocode_id,
            after((redemptions.c.id,), after_key, descending=True),
        )
        .order_by(redemptions.c.id.desc())
        .limit(limit + 1)
    )
    rows = (await conn.execute(statement)).all()
    found = [Redemption(*row) for row in rows[:limit]]
    return Page(found, (found[-1].id,) if len(rows) > limit else None)
