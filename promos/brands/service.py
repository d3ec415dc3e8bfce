"""Brands of the discount generator, on top of the code pools.

A brand is a code-pool client whose UUID is derived from the brand's number (uuid5), with
one batch that every generation adds to. A brand user asking for a brand's code is issued
one through the code pool's issuer with the Idempotency-Key ``brand-user:<id>``, so asking
again returns the same code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.brands.errors import (
    BrandHasNoCodes,
    BrandUserExists,
    BrandUserNotFound,
    BrandUserUnknown,
    InvalidBrandUser,
)
from promos.brands.tables import brand_users
from promos.codes import service as codes
from promos.codes.errors import DuplicateCode
from promos.codes.service import BATCH_COLUMNS, Batch, IssueRequest, Rules, batch_of
from promos.codes.tables import batches
from promos.pagination import Key, Page, after, read_page
from promos.promocodes.generate import DEFAULT_CHARSET, Drawer, code_shape

BRAND_NAMESPACE = UUID("6f1d2c3b-9a8e-5f47-b0c1-d2e3f4a5b6c7")
CODE_PATTERN = "########"
MAX_CODES_PER_REQUEST = 100_000
MIN_SECRET_LENGTH = 16
USER_ID = re.compile(r"[A-Za-z0-9._~-]{1,255}")
_ATTEMPTS = 3
# Checking a wrong user id costs the same as a wrong secret.
_DUMMY_DIGEST = hashlib.sha256(b"no such brand user").hexdigest()


@dataclass(frozen=True, slots=True)
class BrandUser:
    user_id: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Brand:
    """A brand of the discount generator and its batch (the codes generated for it)."""

    brand_id: int
    batch: Batch


_BRAND_NAME = re.compile(r"brand ([0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class NewBrandUser:
    """A brand user and its secret, shown this once; only a digest of it is stored."""

    user: BrandUser
    secret: str


def brand_client(brand_id: int) -> UUID:
    """The code-pool client of a brand: the same UUID for the same brand, everywhere."""
    return uuid5(BRAND_NAMESPACE, f"brand:{brand_id}")


def batch_name(brand_id: int) -> str:
    return f"brand {brand_id}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_brand_user(
    conn: AsyncConnection, *, user_id: str, secret: str | None, now: datetime
) -> NewBrandUser:
    """A brand user with the given secret (e.g. carried over) or a new random one."""
    if not USER_ID.fullmatch(user_id):
        raise InvalidBrandUser("user_id is 1 to 255 letters, digits or . _ ~ -")
    if secret is None:
        secret = secrets.token_urlsafe(24)
    elif len(secret) < MIN_SECRET_LENGTH or not USER_ID.fullmatch(secret):
        raise InvalidBrandUser(
            f"a secret is at least {MIN_SECRET_LENGTH} letters, digits or . _ ~ - "
            "(it travels in a URL path)"
        )
    try:
        async with conn.begin_nested():
            await conn.execute(
                brand_users.insert().values(
                    user_id=user_id, secret_digest=_digest(secret), created_at=now
                )
            )
    except IntegrityError:
        raise BrandUserExists(f"brand user {user_id!r} already exists") from None
    return NewBrandUser(BrandUser(user_id, now), secret)


async def get_brand_user(
    conn: AsyncConnection, user_id: str, *, for_update: bool = False
) -> BrandUser:
    """The brand user (never the secret); ``for_update`` locks the row until the end."""
    query = select(brand_users.c.user_id, brand_users.c.created_at).where(
        brand_users.c.user_id == user_id
    )
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise BrandUserNotFound(f"brand user {user_id!r} does not exist")
    return BrandUser(row.user_id, row.created_at)


def brand_of(batch: Batch) -> Brand | None:
    """The brand whose batch this is, or ``None`` for a batch of the code pools' own."""
    named = _BRAND_NAME.fullmatch(batch.name)
    if named is None:
        return None
    brand_id = int(named.group(1))
    return Brand(brand_id, batch) if brand_client(brand_id) == batch.client_id else None


async def brands_page(conn: AsyncConnection, *, limit: int, after_key: Key | None) -> Page[Brand]:
    """Brands, in the order their first codes were generated: a page after ``after_key``
    (created at, batch id). A batch merely named like a brand's is left out, so a page may
    hold fewer than ``limit``."""
    order = (batches.c.created_at, batches.c.id)
    query = (
        select(*BATCH_COLUMNS)
        .where(batches.c.name.like("brand %"), after(order, after_key))
        .order_by(*order)
    )
    page = await read_page(
        conn, query, limit=limit, key=lambda row: (row.created_at, row.id), item=batch_of
    )
    found = [brand for brand in map(brand_of, page.items) if brand is not None]
    return Page(found, page.next_key)


async def brand_users_page(
    conn: AsyncConnection, *, limit: int, after_key: Key | None
) -> Page[BrandUser]:
    """Brand users (never a secret) by id: a page after ``after_key`` (user id)."""
    order = (brand_users.c.user_id,)
    query = (
        select(brand_users.c.user_id, brand_users.c.created_at)
        .where(after(order, after_key))
        .order_by(*order)
    )
    return await read_page(
        conn,
        query,
        limit=limit,
        key=lambda row: (row.user_id,),
        item=lambda row: BrandUser(row.user_id, row.created_at),
    )


async def list_brand_users(conn: AsyncConnection) -> list[BrandUser]:
    """Every brand user (never a secret), in the order of their ids."""
    rows = await conn.execute(
        select(brand_users.c.user_id, brand_users.c.created_at).order_by(brand_users.c.user_id)
    )
    return [BrandUser(row.user_id, row.created_at) for row in rows]


async def delete_brand_user(conn: AsyncConnection, user_id: str) -> None:
    result = await conn.execute(delete(brand_users).where(brand_users.c.user_id == user_id))
    if result.rowcount == 0:
        raise BrandUserNotFound(f"brand user {user_id!r} does not exist")


async def verify_brand_user(conn: AsyncConnection, *, user_id: str, secret: str) -> None:
    """Accept the user's secret, compared in constant time; ``BrandUserUnknown`` otherwise."""
    stored = (
        await conn.execute(
            select(brand_users.c.secret_digest).where(brand_users.c.user_id == user_id)
        )
    ).scalar_one_or_none()
    matches = hmac.compare_digest(_digest(secret), stored or _DUMMY_DIGEST)
    if stored is None or not matches:
        raise BrandUserUnknown("unknown user or wrong secret")


async def brand_batch(conn: AsyncConnection, brand_id: int) -> Batch:
    """The brand's batch; ``BrandHasNoCodes`` if nothing was ever generated for it."""
    found = await codes.list_batches(conn, owner_id=brand_client(brand_id), limit=1)
    if not found:
        raise BrandHasNoCodes(f"brand {brand_id} has no discount codes: generate some first")
    return found[0]


async def _brand_batch_for_writing(conn: AsyncConnection, brand_id: int, now: datetime) -> Batch:
    client_id = brand_client(brand_id)
    await codes.ensure_client(conn, client_id, now=now)
    if conn.dialect.name == "postgresql":
        # Two first generations of one brand at once must not make two batches.
        await conn.execute(
            text("SELECT 1 FROM clients WHERE id = :id FOR UPDATE"), {"id": client_id}
        )
    found = await codes.list_batches(conn, owner_id=client_id, limit=1)
    if found:
        return found[0]
    return await codes.create_batch(
        conn, client_id=client_id, name=batch_name(brand_id), rules=Rules(), now=now
    )


async def generate_for_brand(
    conn: AsyncConnection, *, brand_id: int, count: int, now: datetime
) -> Batch:
    """Add ``count`` new random codes to the brand's batch (all of them, or none)."""
    if not 1 <= count <= MAX_CODES_PER_REQUEST:
        raise InvalidBrandUser(f"number_of_codes must be from 1 to {MAX_CODES_PER_REQUEST}")
    batch = await _brand_batch_for_writing(conn, brand_id, now)
    drawer = Drawer(code_shape(CODE_PATTERN, DEFAULT_CHARSET))
    for attempt in range(_ATTEMPTS):
        drawn: dict[str, None] = {}
        while len(drawn) < count:
            drawn.update(dict.fromkeys(drawer.draw(count - len(drawn))))
        try:
            async with conn.begin_nested():
                await codes.add_codes(conn, batch, enumerate(drawn, start=1))
        except DuplicateCode:
            # A drawn code exists already (rare): draw them all again.
            if attempt == _ATTEMPTS - 1:
                raise
        else:
            break
    return batch


def issue_request(batch: Batch, user_id: str) -> IssueRequest:
    """The code pool request of a brand user: one code per user and brand, ever."""
    return IssueRequest(
        batch_id=batch.id,
        client_id=batch.client_id,
        customer_id=user_id,
        idempotency_key=f"brand-user:{user_id}",
    )
