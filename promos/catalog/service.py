"""Specials (a product on offer) and upgrade programs (from one SKU to another, discounted).

Both have an active window ``[starts_at, ends_at)``; an open end is unbounded. "Active now"
means inside the window at the clock's now.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from promos.catalog.errors import InvalidOffer, SpecialNotFound, UpgradeProgramNotFound
from promos.catalog.tables import specials, upgrade_programs
from promos.errors import NotFound
from promos.pagination import Key, Page, after, read_page

MAX_PERCENTAGE = Decimal(100)
MAX_AMOUNT = Decimal("9999999999.99")
MAX_LISTED = 100_000  # the most an unpaged list (the Promos API's "actual" programs) holds


@dataclass(frozen=True, slots=True)
class SpecialSpec:
    sku: str
    title: str
    description: str = ""
    price: Decimal | None = None
    discount_percentage: Decimal | None = None
    discount_amount: Decimal | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Special:
    id: int
    sku: str
    title: str
    description: str
    price: Decimal | None
    discount_percentage: Decimal | None
    discount_amount: Decimal | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class UpgradeProgramSpec:
    from_sku: str
    to_sku: str
    title: str
    description: str = ""
    discount_percentage: Decimal | None = None
    discount_amount: Decimal | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class UpgradeProgram:
    id: int
    from_sku: str
    to_sku: str
    title: str
    description: str
    discount_percentage: Decimal | None
    discount_amount: Decimal | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _check_money(name: str, value: Decimal | None, most: Decimal) -> None:
    if value is None:
        return
    if not value.is_finite() or not 0 < value <= most:
        raise InvalidOffer(f"{name} must be more than 0 and at most {most}")
    if value != value.quantize(Decimal("0.01")):
        raise InvalidOffer(f"{name} has at most 2 decimal places")


def _check_window(starts_at: datetime | None, ends_at: datetime | None) -> None:
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value is not None and value.tzinfo is None:
            raise InvalidOffer(f"{name} needs a timezone, e.g. 2026-03-01T00:00:00Z")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise InvalidOffer("ends_at must be after starts_at")


def check_special(spec: SpecialSpec) -> None:
    offers = [spec.price, spec.discount_percentage, spec.discount_amount]
    if sum(v is not None for v in offers) != 1:
        raise InvalidOffer("set exactly one of price, discount_percentage, discount_amount")
    _check_money("price", spec.price, MAX_AMOUNT)
    _check_money("discount_percentage", spec.discount_percentage, MAX_PERCENTAGE)
    _check_money("discount_amount", spec.discount_amount, MAX_AMOUNT)
    _check_window(spec.starts_at, spec.ends_at)


def check_upgrade_program(spec: UpgradeProgramSpec) -> None:
    if (spec.discount_percentage is None) == (spec.discount_amount is None):
        raise InvalidOffer("set discount_percentage or discount_amount, exactly one")
    _check_money("discount_percentage", spec.discount_percentage, MAX_PERCENTAGE)
    _check_money("discount_amount", spec.discount_amount, MAX_AMOUNT)
    if spec.from_sku == spec.to_sku:
        raise InvalidOffer("from_sku and to_sku must differ: an upgrade goes somewhere else")
    _check_window(spec.starts_at, spec.ends_at)


def _active(table: Table, now: datetime) -> list[ColumnElement[bool]]:
    return [
        or_(table.c.starts_at.is_(None), table.c.starts_at <= now),
        or_(table.c.ends_at.is_(None), table.c.ends_at > now),
    ]


async def _insert(
    conn: AsyncConnection, table: Table, values: dict[str, Any], now: datetime
) -> Any:
    row_id = (
        await conn.execute(
            table.insert().values(**values, created_at=now, updated_at=now).returning(table.c.id)
        )
    ).scalar_one()
    return await _get(conn, table, row_id, SpecialNotFound)


async def _get(
    conn: AsyncConnection,
    table: Table,
    row_id: int,
    missing: type[NotFound],
    *,
    for_update: bool = False,
) -> Any:
    query = select(table).where(table.c.id == row_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise missing(f"{_noun(table)} {row_id} does not exist")
    return row


async def _update(
    conn: AsyncConnection,
    table: Table,
    *,
    row_id: int,
    values: dict[str, Any],
    now: datetime,
    missing: type[NotFound],
) -> Any:
    result = await conn.execute(
        update(table).where(table.c.id == row_id).values(**values, updated_at=now)
    )
    if result.rowcount == 0:
        raise missing(f"{_noun(table)} {row_id} does not exist")
    return await _get(conn, table, row_id, missing)


async def _delete(
    conn: AsyncConnection, table: Table, row_id: int, missing: type[NotFound]
) -> None:
    result = await conn.execute(delete(table).where(table.c.id == row_id))
    if result.rowcount == 0:
        raise missing(f"{_noun(table)} {row_id} does not exist")


def _noun(table: Table) -> str:
    return "special" if table is specials else "upgrade program"


def _special(row: Any) -> Special:
    return Special(**dict(row._mapping))  # noqa: SLF001 - SQLAlchemy's public row mapping


def _program(row: Any) -> UpgradeProgram:
    return UpgradeProgram(**dict(row._mapping))  # noqa: SLF001 - SQLAlchemy's row mapping


# --- specials ----------------------------------------------------------------------------------


async def create_special(conn: AsyncConnection, *, spec: SpecialSpec, now: datetime) -> Special:
    check_special(spec)
    return _special(await _insert(conn, specials, asdict(spec), now))


async def update_special(
    conn: AsyncConnection, *, special_id: int, spec: SpecialSpec, now: datetime
) -> Special:
    """Replace every field of the special."""
    check_special(spec)
    return _special(
        await _update(
            conn, specials, row_id=special_id, values=asdict(spec), now=now, missing=SpecialNotFound
        )
    )


async def get_special(
    conn: AsyncConnection, special_id: int, *, for_update: bool = False
) -> Special:
    """The special; ``for_update`` locks its row until the transaction ends (PostgreSQL)."""
    return _special(await _get(conn, specials, special_id, SpecialNotFound, for_update=for_update))


async def list_specials(
    conn: AsyncConnection, *, sku: str | None = None, limit: int = 100, after_key: Key | None = None
) -> Page[Special]:
    """Specials, oldest first: a page after ``after_key`` (id)."""
    query = select(specials).order_by(specials.c.id).where(after((specials.c.id,), after_key))
    if sku is not None:
        query = query.where(specials.c.sku == sku)
    return await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=_special)


async def delete_special(conn: AsyncConnection, special_id: int) -> None:
    await _delete(conn, specials, special_id, SpecialNotFound)


async def active_special(conn: AsyncConnection, *, sku: str, now: datetime) -> Special:
    """The special of ``sku`` active now (the newest, if windows overlap)."""
    row = (
        await conn.execute(
            select(specials)
            .where(specials.c.sku == sku, *_active(specials, now))
            .order_by(specials.c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise SpecialNotFound(f"no special for {sku!r} now")
    return _special(row)


# --- upgrade programs --------------------------------------------------------------------------


async def create_upgrade_program(
    conn: AsyncConnection, *, spec: UpgradeProgramSpec, now: datetime
) -> UpgradeProgram:
    check_upgrade_program(spec)
    row_id = (
        await conn.execute(
            upgrade_programs.insert()
            .values(**asdict(spec), created_at=now, updated_at=now)
            .returning(upgrade_programs.c.id)
        )
    ).scalar_one()
    return await get_upgrade_program(conn, row_id)


async def update_upgrade_program(
    conn: AsyncConnection, *, program_id: int, spec: UpgradeProgramSpec, now: datetime
) -> UpgradeProgram:
    """Replace every field of the upgrade program."""
    check_upgrade_program(spec)
    return _program(
        await _update(
            conn,
            upgrade_programs,
            row_id=program_id,
            values=asdict(spec),
            now=now,
            missing=UpgradeProgramNotFound,
        )
    )


async def get_upgrade_program(
    conn: AsyncConnection, program_id: int, *, for_update: bool = False
) -> UpgradeProgram:
    """The upgrade program; ``for_update`` locks its row until the transaction ends."""
    return _program(
        await _get(
            conn, upgrade_programs, program_id, UpgradeProgramNotFound, for_update=for_update
        )
    )


async def list_upgrade_programs(
    conn: AsyncConnection, *, limit: int = 100, after_key: Key | None = None
) -> Page[UpgradeProgram]:
    """Upgrade programs, oldest first: a page after ``after_key`` (id)."""
    query = (
        select(upgrade_programs)
        .order_by(upgrade_programs.c.id)
        .where(after((upgrade_programs.c.id,), after_key))
    )
    return await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=_program)


async def delete_upgrade_program(conn: AsyncConnection, program_id: int) -> None:
    await _delete(conn, upgrade_programs, program_id, UpgradeProgramNotFound)


async def active_upgrade_programs(conn: AsyncConnection, *, now: datetime) -> list[UpgradeProgram]:
    """The upgrade programs active now ("actual", in the seed's words)."""
    page = await active_upgrade_programs_page(conn, now=now, limit=MAX_LISTED)
    return page.items


async def active_upgrade_programs_page(
    conn: AsyncConnection, *, now: datetime, limit: int, after_key: Key | None = None
) -> Page[UpgradeProgram]:
    """The upgrade programs active now, oldest first: a page after ``after_key`` (id)."""
    query = (
        select(upgrade_programs)
        .where(*_active(upgrade_programs, now), after((upgrade_programs.c.id,), after_key))
        .order_by(upgrade_programs.c.id)
    )
    return await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=_program)
