"""Code pools: batches, importing codes, issuing them one per request under the batch's rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Column, Integer, Table, Text, Uuid, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes.errors import (
    BatchExpired,
    BatchNotFound,
    ClientMismatch,
    CustomerLimitReached,
    DuplicateCode,
    IdempotencyKeyReused,
    InvalidRules,
    PoolExhausted,
)
from promos.codes.tables import batches, clients, codes, customer_locks, idempotency_locks
from promos.db import UTCDateTime, insert_for
from promos.errors import PromosError
from promos.validation import MAX_PER_CUSTOMER, MAX_TIME_LIMIT_DAYS

IMPORT_CHUNK_ROWS = 5000


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


_BATCH_COLUMNS = (
    batches.c.id,
    batches.c.client_id,
    batches.c.name,
    batches.c.max_per_customer,
    batches.c.time_limit_days,
    batches.c.expired,
    batches.c.created_at,
)


def _batch(row: Any) -> Batch:
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
    """A new, empty batch of the client's."""
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
    return batch


async def get_batch(conn: AsyncConnection, batch_id: UUID) -> Batch:
    row = (await conn.execute(select(*_BATCH_COLUMNS).where(batches.c.id == batch_id))).first()
    if row is None:
        raise BatchNotFound(f"batch {batch_id} does not exist")
    return _batch(row)


async def list_batches(
    conn: AsyncConnection,
    *,
    client_id: UUID | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Batch]:
    """Batches, oldest first."""
    query = select(*_BATCH_COLUMNS).order_by(batches.c.created_at, batches.c.id).offset(offset)
    if client_id is not None:
        query = query.where(batches.c.client_id == client_id)
    if limit is not None:
        query = query.limit(limit)
    return [_batch(row) for row in await conn.execute(query)]


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
    """Add ``(row number, code)`` pairs to a batch, in chunks; a duplicate names its row.

    The caller's transaction makes the whole import all-or-nothing.
    """
    last = (
        await conn.execute(
            select(func.coalesce(func.max(codes.c.seq), 0)).where(codes.c.batch_id == batch.id)
        )
    ).scalar_one()
    added = 0
    chunk: list[tuple[int, str]] = []
    for item in rows:
        chunk.append(item)
        if len(chunk) >= IMPORT_CHUNK_ROWS:
            added += await _insert_chunk(conn, batch, chunk, first_seq=last + added + 1)
            chunk = []
            if on_progress is not None:
                on_progress(added)
    if chunk:
        added += await _insert_chunk(conn, batch, chunk, first_seq=last + added + 1)
        if on_progress is not None:
            on_progress(added)
    return added


async def _insert_chunk(
    conn: AsyncConnection, batch: Batch, chunk: list[tuple[int, str]], *, first_seq: int
) -> int:
    values = [
        {"batch_id": batch.id, "client_id": batch.client_id, "code": code, "seq": first_seq + n}
        for n, (_, code) in enumerate(chunk)
    ]
    # A savepoint per chunk lets a duplicate be traced to its row before the upload fails.
    savepoint = await conn.begin_nested()
    try:
        await conn.execute(codes.insert(), values)
    except IntegrityError:
        await savepoint.rollback()
        raise await _duplicate_in(conn, batch, chunk) from None
    await savepoint.commit()
    return len(chunk)


async def _duplicate_in(
    conn: AsyncConnection, batch: Batch, chunk: list[tuple[int, str]]
) -> DuplicateCode:
    existing = set(
        (
            await conn.execute(
                select(codes.c.code).where(
                    codes.c.client_id == batch.client_id,
                    codes.c.code.in_([c for _, c in chunk]),
                )
            )
        ).scalars()
    )
    seen: set[str] = set()
    for line, code in chunk:
        if code in existing:
            return DuplicateCode(
                f"row {line}: code {code!r} already exists for client {batch.client_id}",
                details={"row": line},
            )
        if code in seen:
            return DuplicateCode(
                f"row {line}: code {code!r} appears twice in the upload",
                details={"row": line},
            )
        seen.add(code)
    return DuplicateCode("a code of the upload already exists")


async def issue_codes(
    conn: AsyncConnection, requests: Sequence[IssueRequest], *, now: datetime
) -> list[IssuedCode | PromosError]:
    """Issue one code per request, in one transaction; the outcome of each, in order.

    Never the same code twice: free codes are taken with ``FOR UPDATE SKIP LOCKED`` (SQLite
    has one writer at a time). A batch's per-customer rule is checked after locking the
    customer's row, so requests for the same customer take turns and count committed issues.
    """
    results: list[IssuedCode | PromosError | None] = [None] * len(requests)
    found = await conn.execute(
        select(*_BATCH_COLUMNS).where(batches.c.id.in_({r.batch_id for r in requests}))
    )
    known = {row.id: _batch(row) for row in found}
    pending: list[int] = []
    for i, req in enumerate(requests):
        batch = known.get(req.batch_id)
        if batch is None:
            results[i] = BatchNotFound(f"batch {req.batch_id} does not exist")
        elif batch.client_id != req.client_id:
            results[i] = ClientMismatch(
                f"batch {req.batch_id} does not belong to client {req.client_id}"
            )
        elif batch.expired and req.idempotency_key is None:
            results[i] = BatchExpired(f"batch {req.batch_id} has expired")
        else:
            pending.append(i)

    # A retry gets the code its key already got, even from a batch that expired since.
    pending, replays = await _replay_idempotent(conn, requests, pending, results, now=now)
    for i in pending:
        if known[requests[i].batch_id].expired:
            results[i] = BatchExpired(f"batch {requests[i].batch_id} has expired")
    pending = [i for i in pending if results[i] is None]
    granted = await _apply_rules(conn, requests, pending, known, results, now=now)
    await _take_codes(conn, requests, granted, results, now=now)
    for i, first in replays:
        outcome = results[first]
        results[i] = _replay(requests[i], outcome) if isinstance(outcome, IssuedCode) else outcome
    return [_decided(outcome) for outcome in results]


def _decided(outcome: IssuedCode | PromosError | None) -> IssuedCode | PromosError:
    if outcome is None:
        raise RuntimeError("issue_codes left a request without an outcome")
    return outcome


def _replay(req: IssueRequest, issued: IssuedCode) -> IssuedCode | PromosError:
    if issued.customer_id != req.customer_id:
        return IdempotencyKeyReused(
            f"Idempotency-Key {req.idempotency_key!r} was used for another customer"
        )
    return issued


async def _replay_idempotent(
    conn: AsyncConnection,
    requests: Sequence[IssueRequest],
    pending: list[int],
    results: list[IssuedCode | PromosError | None],
    *,
    now: datetime,
) -> tuple[list[int], list[tuple[int, int]]]:
    """Answer retried requests with their first code; returns what is left to issue."""
    keyed = [i for i in pending if requests[i].idempotency_key is not None]
    if not keyed:
        return pending, []
    # Idempotency locks are taken before customer locks, each kind in sorted order, so two
    # transactions always lock in the same order and cannot deadlock.
    await _lock_rows(
        conn,
        idempotency_locks,
        idempotency_locks.c.idempotency_key,
        sorted({(requests[i].batch_id, str(requests[i].idempotency_key)) for i in keyed}),
        now=now,
    )
    # A new statement, so on PostgreSQL it sees the code of an attempt that held the lock.
    rows = await conn.execute(
        select(
            codes.c.code,
            codes.c.batch_id,
            codes.c.client_id,
            codes.c.customer_id,
            codes.c.issued_at,
            codes.c.idempotency_key,
        ).where(
            codes.c.batch_id.in_({requests[i].batch_id for i in keyed}),
            codes.c.idempotency_key.in_({requests[i].idempotency_key for i in keyed}),
        )
    )
    earlier = {
        (row.batch_id, row.idempotency_key): IssuedCode(
            row.code, row.batch_id, row.client_id, row.customer_id, row.issued_at
        )
        for row in rows
    }
    first_of: dict[tuple[UUID, str], int] = {}
    left: list[int] = []
    replays: list[tuple[int, int]] = []
    for i in pending:
        req = requests[i]
        if req.idempotency_key is None:
            left.append(i)
            continue
        key = (req.batch_id, req.idempotency_key)
        if key in earlier:
            results[i] = _replay(req, earlier[key])
        elif key in first_of:
            replays.append((i, first_of[key]))
        else:
            first_of[key] = i
            left.append(i)
    return left, replays


async def _apply_rules(
    conn: AsyncConnection,
    requests: Sequence[IssueRequest],
    pending: list[int],
    known: dict[UUID, Batch],
    results: list[IssuedCode | PromosError | None],
    *,
    now: datetime,
) -> list[int]:
    """The requests that the batches' per-customer rules allow."""
    by_batch: dict[UUID, list[int]] = defaultdict(list)
    for i in pending:
        by_batch[requests[i].batch_id].append(i)
    granted: list[int] = []
    # Locks are always taken in (batch, customer) order, so two transactions cannot deadlock.
    for batch_id in sorted(by_batch):
        indices, rules = by_batch[batch_id], known[batch_id].rules
        if rules.max_per_customer is None:
            granted.extend(indices)
            continue
        customers = sorted({requests[i].customer_id for i in indices})
        await _lock_rows(
            conn,
            customer_locks,
            customer_locks.c.customer_id,
            [(batch_id, c) for c in customers],
            now=now,
        )
        # A new statement, so on PostgreSQL it sees every issue committed before the lock.
        count_query = (
            select(codes.c.customer_id, func.count())
            .where(codes.c.customer_id.in_(customers), codes.c.batch_id == batch_id)
            .group_by(codes.c.customer_id)
        )
        if rules.time_limit_days is not None:
            since = now - timedelta(days=rules.time_limit_days)
            count_query = count_query.where(codes.c.issued_at > since)
        counts: dict[str, int] = {row[0]: int(row[1]) for row in await conn.execute(count_query)}
        for i in indices:
            customer = requests[i].customer_id
            if counts.get(customer, 0) >= rules.max_per_customer:
                window = (
                    f" in {rules.time_limit_days} days" if rules.time_limit_days is not None else ""
                )
                results[i] = CustomerLimitReached(
                    f"customer {customer} already has {rules.max_per_customer} "
                    f"code(s) of batch {batch_id}{window}"
                )
            else:
                counts[customer] = counts.get(customer, 0) + 1
                granted.append(i)
    return granted


async def _take_codes(
    conn: AsyncConnection,
    requests: Sequence[IssueRequest],
    granted: list[int],
    results: list[IssuedCode | PromosError | None],
    *,
    now: datetime,
) -> None:
    by_batch: dict[UUID, list[int]] = defaultdict(list)
    for i in granted:
        by_batch[requests[i].batch_id].append(i)
    take = _take_postgresql if conn.dialect.name == "postgresql" else _take_sqlite
    for batch_id, indices in by_batch.items():
        wanted = [requests[i] for i in indices]
        taken = await take(conn, batch_id, wanted, now)
        for n, i in enumerate(indices):
            code = taken.get(n)
            req = requests[i]
            results[i] = (
                IssuedCode(code, batch_id, req.client_id, req.customer_id, now)
                if code is not None
                else PoolExhausted(f"batch {batch_id} has no codes left")
            )


# One statement: take the batch's next free codes (skipping those other transactions hold)
# and give the n-th to the n-th request. Returns (n, code) for each code taken.
_TAKE_POSTGRESQL = text(
    """
    WITH free AS (
        SELECT client_id, code FROM codes
        WHERE batch_id = :batch_id AND issued_at IS NULL
        ORDER BY seq
        LIMIT :wanted
        FOR UPDATE SKIP LOCKED
    ), numbered AS (
        SELECT client_id, code, row_number() OVER () AS n FROM free
    ), asks AS (
        SELECT customer_id, idempotency_key, n
        FROM unnest(:customers, :keys) WITH ORDINALITY AS a(customer_id, idempotency_key, n)
    )
    UPDATE codes
    SET customer_id = asks.customer_id, issued_at = :now, idempotency_key = asks.idempotency_key
    FROM numbered JOIN asks USING (n)
    WHERE codes.client_id = numbered.client_id AND codes.code = numbered.code
    RETURNING asks.n, codes.code
    """
).bindparams(
    bindparam("batch_id", type_=Uuid()),
    bindparam("wanted", type_=Integer()),
    bindparam("customers", type_=ARRAY(Text())),
    bindparam("keys", type_=ARRAY(Text())),
    bindparam("now", type_=UTCDateTime()),
)


async def _take_postgresql(
    conn: AsyncConnection, batch_id: UUID, wanted: list[IssueRequest], now: datetime
) -> dict[int, str]:
    rows = await conn.execute(
        _TAKE_POSTGRESQL,
        {
            "batch_id": batch_id,
            "wanted": len(wanted),
            "customers": [r.customer_id for r in wanted],
            "keys": [r.idempotency_key for r in wanted],
            "now": now,
        },
    )
    return {int(n) - 1: code for n, code in rows}


async def _lock_rows(
    conn: AsyncConnection,
    table: Table,
    key: Column[str],
    rows: list[tuple[UUID, str]],
    *,
    now: datetime,
) -> None:
    """Create or lock ``(batch_id, key)`` rows until the transaction ends, in the given order."""
    insert = insert_for(conn)
    lock = insert(table).values([{"batch_id": b, key.name: k, "locked_at": now} for b, k in rows])
    await conn.execute(
        lock.on_conflict_do_update(
            index_elements=[table.c.batch_id, key], set_={"locked_at": lock.excluded.locked_at}
        )
    )


_mark_issued = (
    update(codes)
    .where(codes.c.client_id == bindparam("client"), codes.c.code == bindparam("taken"))
    .values(
        customer_id=bindparam("customer"),
        issued_at=bindparam("at"),
        idempotency_key=bindparam("key"),
    )
)


async def _take_sqlite(
    conn: AsyncConnection, batch_id: UUID, wanted: list[IssueRequest], now: datetime
) -> dict[int, str]:
    # SQLite has one writer at a time (BEGIN IMMEDIATE): nobody else can take these codes.
    free = (
        await conn.execute(
            select(codes.c.client_id, codes.c.code)
            .where(codes.c.batch_id == batch_id, codes.c.issued_at.is_(None))
            .order_by(codes.c.seq)
            .limit(len(wanted))
        )
    ).all()
    if free:
        await conn.execute(
            _mark_issued,
            [
                {
                    "client": client_id,
                    "taken": code,
                    "customer": req.customer_id,
                    "at": now,
                    "key": req.idempotency_key,
                }
                for (client_id, code), req in zip(free, wanted, strict=False)
            ],
        )
    return {n: code for n, (_, code) in enumerate(free)}


async def customer_codes(
    conn: AsyncConnection,
    *,
    customer_id: str,
    client_id: UUID | None = None,
    batch_id: UUID | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[IssuedCode]:
    """The codes issued to a customer, newest first."""
    query = (
        select(
            codes.c.code,
            codes.c.batch_id,
            codes.c.client_id,
            codes.c.customer_id,
            codes.c.issued_at,
        )
        .where(codes.c.customer_id == customer_id)
        .order_by(codes.c.issued_at.desc(), codes.c.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    if client_id is not None:
        query = query.where(codes.c.client_id == client_id)
    if batch_id is not None:
        query = query.where(codes.c.batch_id == batch_id)
    return [IssuedCode(*row) for row in await conn.execute(query)]
