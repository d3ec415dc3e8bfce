"""Promo codes and their redemptions as CSV, filtered as the list route filters them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.db import Database
from promos.export import CHUNK_ROWS, CsvTable, chunks, iso, words
from promos.promocodes import listing, service
from promos.promocodes.listing import CodeQuery
from promos.promocodes.service import Promocode, PromocodeFilter, Redemption

PROMOCODES: CsvTable[Promocode] = CsvTable(
    header=(
        "code",
        "generation_id",
        "uses_left",
        "discount_percentage",
        "discount_amount",
        "expires_in",
        "products",
        "usage_by",
        "created_at",
    ),
    values=lambda p: (
        p.code,
        p.generation.id,
        p.usage_count,
        p.discount_percentage,
        p.discount_amount,
        iso(p.expires_in),
        words(p.products),
        p.usage_by,
        iso(p.created_at),
    ),
)

REDEMPTIONS: CsvTable[Redemption] = CsvTable(
    header=("id", "code", "customer", "idempotency_key", "redeemed_at", "rolled_back_at"),
    values=lambda r: (
        r.id,
        r.code,
        r.customer,
        r.idempotency_key,
        iso(r.redeemed_at),
        iso(r.rolled_back_at),
    ),
)


def promocodes(
    database: Database, filters: PromocodeFilter, *, chunk_rows: int = CHUNK_ROWS
) -> AsyncIterator[Sequence[Promocode]]:
    """Every promo code the filters let through, in the order they were made."""
    return chunks(
        database,
        lambda conn, after, limit: _promocodes_after(conn, filters, after, limit),
        key=lambda p: p.id,
        chunk_rows=chunk_rows,
    )


async def _promocodes_after(
    conn: AsyncConnection, filters: PromocodeFilter, after: int | None, limit: int
) -> list[Promocode]:
    page = await service.promocodes_page(
        conn, filters=filters, limit=limit, after_key=None if after is None else (after,)
    )
    return page.items


def redemptions(
    database: Database,
    filters: PromocodeFilter,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> AsyncIterator[Sequence[Redemption]]:
    """Every redemption of those promo codes in ``[since, until)``, in the order made."""
    return chunks(
        database,
        lambda conn, after, limit: service.redemptions_after(
            conn, filters=filters, since=since, until=until, after=after, limit=limit
        ),
        key=lambda r: r.id,
        chunk_rows=chunk_rows,
    )


def listed_codes(
    database: Database, query: CodeQuery, *, today: date, chunk_rows: int = CHUNK_ROWS
) -> AsyncIterator[Sequence[Promocode]]:
    """Every promo code the console's filters let through, in code order (its listing's)."""
    return chunks(
        database,
        lambda conn, after, limit: _listed_after(conn, query, today, after, limit),
        key=lambda p: p.code,
        chunk_rows=chunk_rows,
    )


async def _listed_after(
    conn: AsyncConnection, query: CodeQuery, today: date, after: str | None, limit: int
) -> list[Promocode]:
    page = await listing.codes_page(
        conn, query=query, today=today, limit=limit, after_key=None if after is None else (after,)
    )
    return page.items
