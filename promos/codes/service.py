"""Code pools: clients, batches and their rules, importing codes, a customer's codes.

Issuing lives in ``promos.codes.issue`` (the SQL) and ``promos.codes.issuer`` (grouping).
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from asyncpg.pgproto import pgproto
from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.clock import utc_now
from promos.codes import counts
from promos.codes.errors import (
    BatchNotFound,
    DuplicateCode,
    InvalidRules,
)
from promos.codes.tables import batch_clients as listed_clients
from promos.codes.tables import batches, clients, codes
from promos.db import insert_for
from promos.pagination import Key, Page, after, read_page
from promos.validation import MAX_PER_CUSTOMER, MAX_TIME_LIMIT_DAYS

IMPORT_CHUNK_ROWS = 50_000
# Rows read between two turns of the event loop while an import runs (a few milliseconds).
IMPORT_YIELD_ROWS = 5000
DUPLICATE_LOOKUP_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Rules:
    """At most ``max_per_customer`` codes per customer within the last ``time_limit_days``."""

    max_per_customer: int | None = None
    time_limit_days: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Rules:
        """Read Ango's rule object ``{"maxpercustomer": N, "timelimit": days}``, strictly."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise InvalidRules("rules must be a JSON object")
        unknown = set(data) - {"maxpercustomer", "timelimit"}
        if unknown:
            raise InvalidRules(
                f"unknown rule(s) {', '.join(sorted(unknown))}: "
                "the known rules are maxpercustomer and timelimit"
            )
        max_per, days = data.get("maxpercustomer"), data.get("timelimit")
        for name, value, most in (
            ("maxpercustomer", max_per, MAX_PER_CUSTOMER),
            ("timelimit", days, MAX_TIME_LIMIT_DAYS),
        ):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most
            ):
                raise InvalidRules(f"{name} must be a whole number from 1 to {most}")
        if days is not None and max_per is None:
            raise InvalidRules("timelimit needs maxpercustomer: it is the window that limit counts")
        return cls(max_per_customer=max_per, time_limit_days=days)

    def to_json(self) -> dict[str, int]:
        """Ango's rule object; rules that are not set are left out."""
        out: dict[str, int] = {}
        if self.max_per_customer is not None:
            out["maxpercustomer"] = self.max_per_customer
        if self.time_limit_days is not None:
            out["timelimit"] = self.time_limit_days
        return out


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch; ``client_id`` is its own client: the one it was made for, or the client of an
    upload's first row. It may hold codes of other clients too (``batch_clients``)."""

    id: UUID
    client_id: UUID
    name: str
    rules: Rules
    expired: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class BatchStats:
    batch_id: UUID
    total: int
    issued: int
    left: int


@dataclass(frozen=True, slots=True)
class IssueRequest:
    batch_id: UUID
    client_id: UUID
    customer_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    batch_id: UUID
    client_id: UUID
    customer_id: str
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class PoolCode:
    """A code of a batch as an export shows it: whose it is, and its issue if it was issued."""

    code: str
    client_id: UUID
    customer_id: str | None
    issued_at: datetime | None


BATCH_COLUMNS = (
    batches.c.id,
    batches.c.client_id,
    batches.c.name,
    batches.c.max_per_customer,
    batches.c.time_limit_days,
    batches.c.expired,
    batches.c.created_at,
)


def batch_of(row: Any) -> Batch:
    """A ``Batch`` from a row of ``BATCH_COLUMNS``."""
    return Batch(
        id=row.id,
        client_id=row.client_id,
        name=row.name,
        rules=Rules(row.max_per_customer, row.time_limit_days),
        expired=row.expired,
        created_at=row.created_at,
    )


async def ensure_client(conn: AsyncConnection, client_id: UUID, *, now: datetime) -> None:
    """Know a client from now on: clients are the integrator's own ids, never registered first."""
    insert = insert_for(conn)
    await conn.execute(
        insert(clients).values(id=client_id, created_at=now).on_conflict_do_nothing()
    )


async def create_batch(
    conn: AsyncConnection, *, client_id: UUID, name: str, rules: Rules, now: datetime
) -> Batch:
    """A new, empty batch of the client's (its own client, listed among its clients)."""
    await ensure_client(conn, client_id, now=now)
    batch = Batch(
        id=uuid4(),
        client_id=client_id,
        name=name,
        rules=rules,
        expired=False,
        created_at=now,
    )
    await conn.execute(
        batches.insert().values(
            id=batch.id,
            client_id=client_id,
            name=name,
            max_per_customer=rules.max_per_customer,
            time_limit_days=rules.time_limit_days,
            expired=False,
            created_at=now,
        )
    )
    await conn.execute(listed_clients.insert().values(client_id=client_id, batch_id=batch.id))
    await counts.start(conn, batch.id)
    return batch


async def get_batch(conn: AsyncConnection, batch_id: UUID, *, for_update: bool = False) -> Batch:
    """The batch; ``for_update`` locks its row until the transaction ends (PostgreSQL)."""
    query = select(*BATCH_COLUMNS).where(batches.c.id == batch_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise BatchNotFound(f"batch {batch_id} does not exist")
    return batch_of(row)


def _of_clients(query: Select[Any], client_id: UUID | None, owner_id: UUID | None) -> Select[Any]:
    if client_id is not None:
        holding = select(listed_clients.c.batch_id).where(listed_clients.c.client_id == client_id)
        query = query.where(batches.c.id.in_(holding))
    if owner_id is not None:
        query = query.where(batches.c.client_id == owner_id)
    return query


async def list_batches(
    conn: AsyncConnection,
    *,
    client_id: UUID | None = None,
    owner_id: UUID | None = None,
    limit: int | None = None,
    offset: int = 0,
    clients: Collection[UUID] | None = None,
) -> list[Batch]:
    """Batches, oldest first: of ``client_id`` (those holding its codes, and its own), of
    ``owner_id`` (its own only), of any of ``clients``."""
    query = _of_clients(
        select(*BATCH_COLUMNS).order_by(batches.c.created_at, batches.c.id).offset(offset),
        client_id,
        owner_id,
    )
    if clients is not None:
        holding = select(listed_clients.c.batch_id).where(
            listed_clients.c.client_id.in_(sorted(clients))
        )
        query = query.where(batches.c.id.in_(holding))
    if limit is not None:
        query = query.limit(limit)
    return [batch_of(row) for row in await conn.execute(query)]


async def batches_page(
    conn: AsyncConnection,
    *,
    client_id: UUID | None = None,
    limit: int,
    after_key: Key | None = None,
) -> Page[Batch]:
    """Batches, oldest first (of ``client_id``: those holding its codes, and its own): a page
    after ``after_key`` (created at, id)."""
    order = (batches.c.created_at, batches.c.id)
    query = _of_clients(select(*BATCH_COLUMNS).order_by(*order), client_id, None)
    query = query.where(after(order, after_key))
    return await read_page(
        conn, query, limit=limit, key=lambda row: (row.created_at, row.id), item=batch_of
    )


async def expire_batch(conn: AsyncConnection, batch_id: UUID) -> Batch:
    """Stop issuing from a batch, whatever codes it holds. Expiring twice is harmless."""
    result = await conn.execute(
        update(batches).where(batches.c.id == batch_id).values(expired=True)
    )
    if result.rowcount == 0:
        raise BatchNotFound(f"batch {batch_id} does not exist")
    return await get_batch(conn, batch_id)


async def batch_stats(conn: AsyncConnection, batch_id: UUID) -> BatchStats:
    await get_batch(conn, batch_id)
    row = (
        await conn.execute(
            select(func.count(), func.count(codes.c.issued_at)).where(codes.c.batch_id == batch_id)
        )
    ).one()
    total, issued = int(row[0]), int(row[1])
    return BatchStats(batch_id=batch_id, total=total, issued=issued, left=total - issued)


async def add_codes(
    conn: AsyncConnection,
    batch: Batch,
    rows: Iterable[tuple[int, str]],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Add ``(row number, code)`` pairs to a batch, as codes of its own client."""
    owned = ((line, batch.client_id, code) for line, code in rows)
    return await add_client_codes(conn, batch, owned, on_progress=on_progress)


async def add_client_codes(
    conn: AsyncConnection,
    batch: Batch,
    rows: Iterable[tuple[int, UUID, str]],
    *,
    now: datetime | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Add ``(row number, client, code)`` rows to a batch, in chunks; a duplicate names its row.

    Each code keeps its client; a client new to the batch is listed among its clients (and
    known from ``now`` on if it is new to Promos). The caller's transaction makes the whole
    import all-or-nothing.
    """
    last = (
        await conn.execute(
            select(func.coalesce(func.max(codes.c.seq), 0)).where(codes.c.batch_id == batch.id)
        )
    ).scalar_one()
    added = 0
    listed = {batch.client_id}  # create_batch listed it
    source = iter(rows)
    while True:
        chunk: list[tuple[int, UUID, str]] = []
        added += await _insert_chunk(conn, batch, source, chunk, first_seq=last + added + 1)
        if not chunk:
            break
        await _list_clients(conn, batch, chunk, listed, now=now)
        if on_progress is not None:
            on_progress(added)
    await counts.add_total(conn, batch.id, added)
    return added


async def _list_clients(
    conn: AsyncConnection,
    batch: Batch,
    chunk: list[tuple[int, UUID, str]],
    listed: set[UUID],
    *,
    now: datetime | None,
) -> None:
    """Know the chunk's clients new to this import, and list them among the batch's."""
    new = sorted({client for _, client, _ in chunk} - listed)
    if not new:
        return
    insert = insert_for(conn)
    at = now or utc_now()
    await conn.execute(
        insert(clients).on_conflict_do_nothing(), [{"id": c, "created_at": at} for c in new]
    )
    await conn.execute(
        insert(listed_clients).on_conflict_do_nothing(),
        [{"client_id": c, "batch_id": batch.id} for c in new],
    )
    listed.update(new)


async def _insert_chunk(
    conn: AsyncConnection,
    batch: Batch,
    source: Iterator[tuple[int, UUID, str]],
    chunk: list[tuple[int, UUID, str]],
    *,
    first_seq: int,
) -> int:
    """Insert the next rows of ``source``, up to a chunk, each kept in ``chunk``; how many."""
    # A savepoint per chunk lets a duplicate be traced to its row before the upload fails.
    savepoint = await conn.begin_nested()
    try:
        if conn.dialect.name == "postgresql":
            await _copy_chunk(conn, batch, source, chunk, first_seq=first_seq)
        else:
            chunk.extend(islice(source, IMPORT_CHUNK_ROWS))
            if chunk:
                values = [
                    {"batch_id": batch.id, "client_id": client, "code": code, "seq": seq}
                    for seq, (_, client, code) in enumerate(chunk, start=first_seq)
                ]
                await conn.execute(codes.insert(), values)
    except (IntegrityError, asyncpg.UniqueViolationError):
        await savepoint.rollback()
        raise await _duplicate_in(conn, batch, chunk) from None
    except asyncpg.InternalServerError as exc:
        if not _duplicate_on_a_worker(exc):
            raise
        await savepoint.rollback()
        raise await _duplicate_in(conn, batch, chunk) from None
    await savepoint.commit()
    return len(chunk)


def _duplicate_on_a_worker(exc: asyncpg.InternalServerError) -> bool:
    """Citus passes a shard's unique violation during a COPY on as an internal error (XX000)
    with the worker's message: the same duplicate, told apart by that message alone."""
    return str(exc).startswith("duplicate key value violates unique constraint")


_COPY_COLUMNS = ("batch_id", "client_id", "code", "seq")


async def _copy_chunk(
    conn: AsyncConnection,
    batch: Batch,
    source: Iterator[tuple[int, UUID, str]],
    chunk: list[tuple[int, UUID, str]],
    *,
    first_seq: int,
) -> None:
    """COPY the next rows of ``source`` into ``codes`` as they are read (asyncpg, binary).

    PostgreSQL writes the rows sent while the next ones are read and checked: on two cores
    an upload takes about as long as the slower of the two, not their sum.
    """
    raw: Any = (await conn.get_raw_connection()).driver_connection
    # asyncpg encodes its own UUID type (a uuid.UUID, the one it returns for uuid columns)
    # directly, but asks any other uuid.UUID for its bytes, a Python property, twice a row:
    # each client is converted once, for its run of rows.
    batch_id = pgproto.UUID(batch.id.bytes)

    async def records() -> AsyncIterator[tuple[UUID, UUID, str, int]]:
        client: UUID | None = None
        wire = batch_id
        seq = first_seq
        for row in islice(source, IMPORT_CHUNK_ROWS):
            chunk.append(row)
            if row[1] is not client:
                client = row[1]
                wire = pgproto.UUID(client.bytes)
            yield batch_id, wire, row[2], seq
            seq += 1
            if seq % IMPORT_YIELD_ROWS == 0:
                # asyncpg reads the rows without awaiting between them: hand the event loop
                # back now and then, or the process's other requests wait for the chunk.
                await asyncio.sleep(0)

    await raw.copy_records_to_table(codes.name, records=records(), columns=_COPY_COLUMNS)


async def _duplicate_in(
    conn: AsyncConnection, batch: Batch, chunk: list[tuple[int, UUID, str]]
) -> DuplicateCode:
    """The error naming the chunk's first row whose code its client has already."""
    clients_of_chunk = sorted({client for _, client, _ in chunk})
    codes_of_chunk = sorted({code for _, _, code in chunk})
    existing: set[tuple[UUID, str]] = set()
    # A statement holds at most 32,767 parameters (asyncpg): the codes are asked a slice
    # at a time.
    for start in range(0, len(codes_of_chunk), DUPLICATE_LOOKUP_ROWS):
        found = await conn.execute(
            select(codes.c.client_id, codes.c.code).where(
                codes.c.client_id.in_(clients_of_chunk),
                codes.c.code.in_(codes_of_chunk[start : start + DUPLICATE_LOOKUP_ROWS]),
            )
        )
        existing.update((row.client_id, row.code) for row in found)
    seen: set[tuple[UUID, str]] = set()
    for line, client_id, code in chunk:
        if (client_id, code) in existing:
            return DuplicateCode(
                f"row {line}: code {code!r} already exists for client {client_id}",
                details={"row": line},
            )
        if (client_id, code) in seen:
            return DuplicateCode(
                f"row {line}: code {code!r} appears twice in the upload",
                details={"row": line},
            )
        seen.add((client_id, code))
    return DuplicateCode(f"a code of the upload already exists in batch {batch.id}")


async def customer_codes(
    conn: AsyncConnection,
    *,
    customer_id: str,
    client_id: UUID | None = None,
    batch_id: UUID | None = None,
    limit: int = 100,
    after_key: Key | None = None,
) -> Page[IssuedCode]:
    """The codes issued to a customer, newest first; a page after ``after_key``
    (issued at, sequence number)."""
    order = (codes.c.issued_at, codes.c.seq)
    query = (
        select(
            codes.c.code,
            codes.c.batch_id,
            codes.c.client_id,
            codes.c.customer_id,
            codes.c.issued_at,
            codes.c.seq,
        )
        .where(codes.c.customer_id == customer_id)
        .order_by(codes.c.issued_at.desc(), codes.c.seq.desc())
    )
    if client_id is not None:
        query = query.where(codes.c.client_id == client_id)
    if batch_id is not None:
        query = query.where(codes.c.batch_id == batch_id)
    query = query.where(after(order, after_key, descending=True))
    return await read_page(
        conn,
        query,
        limit=limit,
        key=lambda row: (row.issued_at, row.seq),
        item=lambda row: IssuedCode(*row[:5]),
    )


async def batch_clients(conn: AsyncConnection, batch_id: UUID) -> list[UUID]:
    """The batch's clients (its own, and those whose codes it holds), by id."""
    return (await clients_of_batches(conn, [batch_id])).get(batch_id, [])


async def clients_of_batches(
    conn: AsyncConnection, batch_ids: Sequence[UUID]
) -> dict[UUID, list[UUID]]:
    """Each batch's clients (its own, and those whose codes it holds), by id."""
    if not batch_ids:
        return {}
    query = (
        select(listed_clients.c.batch_id, listed_clients.c.client_id)
        .where(listed_clients.c.batch_id.in_(batch_ids))
        .order_by(listed_clients.c.batch_id, listed_clients.c.client_id)
    )
    found: dict[UUID, list[UUID]] = {}
    for row in await conn.execute(query):
        found.setdefault(row.batch_id, []).append(row.client_id)
    return found


async def batch_codes(
    conn: AsyncConnection,
    *,
    batch_id: UUID,
    clients: Sequence[UUID],
    after: tuple[UUID, str] | None,
    limit: int,
) -> list[PoolCode]:
    """Up to ``limit`` codes of the batch, by client and code, from just after ``after``.

    The keyset reads of an export: each walks the primary key (client, code) within one of
    ``clients`` (``batch_clients``), so a read costs the same however far the export has
    gone, and only those clients' codes are ever walked. (No index orders a batch's codes:
    one would cost every issue another index write, for the sake of a rare export.)
    """
    found: list[PoolCode] = []
    for client_id in clients:
        if after is not None and client_id < after[0]:
            continue
        query = (
            select(codes.c.code, codes.c.client_id, codes.c.customer_id, codes.c.issued_at)
            .where(codes.c.client_id == client_id, codes.c.batch_id == batch_id)
            .order_by(codes.c.code)
            .limit(limit - len(found))
        )
        if after is not None and client_id == after[0]:
            query = query.where(codes.c.code > after[1])
        found.extend(PoolCode(*row) for row in (await conn.execute(query)).all())
        if len(found) == limit:
            break
    return found


async def batch_owner(conn: AsyncConnection, batch_id: UUID) -> UUID | None:
    """The batch's own client, or None if there is no such batch."""
    owner: UUID | None = (
        await conn.execute(select(batches.c.client_id).where(batches.c.id == batch_id))
    ).scalar_one_or_none()
    return owner
