"""Pool code holds: a code of a batch taken for an order for a while, then confirmed or ended.

A hold takes its code as issuing does, beside the issuing statements and never inside them:
the code leaves ``ix_codes_free`` (``issued_at`` set, ``customer_id`` the holder) under the
batch's per-customer rule (counted on the customer's ``customer_quotas`` row on PostgreSQL,
over the codes on SQLite), so every rule that counts a customer's codes counts held ones.
The hold itself is a row of ``pool_code_holds``; one live hold per order and batch, and per
Idempotency-Key, kept by unique indexes.

Confirming keeps the code the customer's, issued, under the hold's id. Releasing, or expiry,
ends the hold: its code goes back to the pool (free again, in one statement) or is burnt
(kept out of the pool, no one's), as the batch's ``return_released_codes`` says when the
hold ends.

No job has to run for expiry: a hold past ``expires_at`` reads as expired and is never
confirmed. Its code is given back (or burnt) when something ends it: its own release, its
order or its customer asking for a hold of the batch again, or ``end_lapsed`` (the app's
sweep every PROMOS_POOL_HOLD_SWEEP_SECONDS, ``promos.codes.sweeper``, and the
``promos batches end-lapsed-holds`` command).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    column,
    delete,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.citus import on_citus
from promos.codes import counts
from promos.codes.errors import (
    BatchExpired,
    BatchNotFound,
    ClientMismatch,
    CustomerLimitReached,
    HoldConfirmed,
    HoldExpired,
    HoldNotFound,
    HoldReleased,
    IdempotencyKeyReused,
    OrderHeldForAnotherCustomer,
    PoolExhausted,
)
from promos.codes.steps import FREE_LOCKED, LOCK_QUOTA, NEVER, SET_QUOTA
from promos.codes.tables import batch_clients, batches, codes
from promos.codes.tables import pool_code_holds as holds
from promos.db import UTCDateTime, after_commit, insert_for
from promos.errors import PromosError
from promos.events.outbox import emit_events, emitting, event_time
from promos.events.types import (
    POOL_CODE_HELD,
    POOL_CODE_HOLD_CONFIRMED,
    POOL_CODE_HOLD_EXPIRED,
    POOL_CODE_HOLD_RELEASED,
)
from promos.observability import metrics
from promos.pagination import Key, Page, after, read_page

HELD, CONFIRMED, RELEASED, EXPIRED = "held", "confirmed", "released", "expired"
LIVE = (HELD, CONFIRMED)
# The most lapsed holds one ``end_lapsed`` call ends (one short transaction each call).
SWEEP_LIMIT = 200


@dataclass(frozen=True, slots=True)
class PoolHold:
    id: int
    batch_id: UUID
    client_id: UUID
    code: str
    customer_id: str
    order: str
    idempotency_key: str | None
    # held, confirmed, released or expired (a hold past expires_at is expired, ended or not).
    status: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    # Whether its code went back to the pool when it ended (else burnt); None until then.
    returned: bool | None


_COLUMNS = (
    holds.c.id,
    holds.c.batch_id,
    holds.c.client_id,
    holds.c.code,
    holds.c.customer_id,
    holds.c.order_ref,
    holds.c.idempotency_key,
    holds.c.status,
    holds.c.created_at,
    holds.c.expires_at,
    holds.c.ended_at,
    holds.c.returned,
)


def _hold(row: Any, now: datetime) -> PoolHold:
    status = EXPIRED if row.status == HELD and row.expires_at <= now else row.status
    return PoolHold(
        row.id,
        row.batch_id,
        row.client_id,
        row.code,
        row.customer_id,
        row.order_ref,
        row.idempotency_key,
        status,
        row.created_at,
        row.expires_at,
        row.ended_at,
        row.returned,
    )


def _not_ended() -> Any:
    """SQL: the hold has not ended, as status = 'held' is not written for one hold named by
    its id: so that the planner finds it by the primary key, not by walking the partial
    index of held holds (see ``promos.promocodes.holds.NOT_ENDED_SQL``)."""
    return holds.c.status.notin_((CONFIRMED, RELEASED, EXPIRED))


def _lapsed(now: datetime) -> Any:
    return and_(holds.c.status == HELD, holds.c.expires_at <= now)


async def get_hold(conn: AsyncConnection, hold_id: int, *, now: datetime) -> PoolHold:
    """The hold as it stands at ``now`` (a lapsed one reads as expired, ended or not)."""
    row = (await conn.execute(select(*_COLUMNS).where(holds.c.id == hold_id))).first()
    if row is None:
        raise HoldNotFound(f"pool code hold {hold_id} does not exist")
    return _hold(row, now)


async def hold_client(conn: AsyncConnection, hold_id: int) -> UUID | None:
    """The client whose code the hold holds, or None if there is no such hold."""
    found: UUID | None = (
        await conn.execute(select(holds.c.client_id).where(holds.c.id == hold_id))
    ).scalar_one_or_none()
    return found


async def live_holds(
    conn: AsyncConnection,
    *,
    batch_id: UUID,
    now: datetime,
    limit: int,
    after_key: Key | None = None,
) -> Page[PoolHold]:
    """The batch's holds still held at ``now``, soonest to expire first: a page after
    ``after_key`` (expires at, id)."""
    order = (holds.c.expires_at, holds.c.id)
    query = (
        select(*_COLUMNS)
        .where(holds.c.batch_id == batch_id, holds.c.status == HELD, holds.c.expires_at > now)
        .where(after(order, after_key))
        .order_by(*order)
    )
    return await read_page(
        conn,
        query,
        limit=limit,
        key=lambda row: (row.expires_at, row.id),
        item=lambda row: _hold(row, now),
    )


async def returns_released_codes(conn: AsyncConnection, batch_id: UUID) -> bool:
    """Whether the batch's released and expired holds give their codes back to the pool."""
    found: bool | None = (
        await conn.execute(select(batches.c.return_released_codes).where(batches.c.id == batch_id))
    ).scalar_one_or_none()
    if found is None:
        raise BatchNotFound(f"batch {batch_id} does not exist")
    return found


async def set_returns_released_codes(conn: AsyncConnection, batch_id: UUID, value: bool) -> None:
    """Return the codes of the batch's holds that end from now on to the pool, or burn them."""
    done = await conn.execute(
        update(batches).where(batches.c.id == batch_id).values(return_released_codes=value)
    )
    if done.rowcount == 0:
        raise BatchNotFound(f"batch {batch_id} does not exist")


# --- holding -----------------------------------------------------------------------------------


async def hold_code(
    conn: AsyncConnection,
    *,
    batch_id: UUID,
    client_id: UUID,
    customer_id: str,
    order: str,
    ttl: timedelta,
    now: datetime,
    idempotency_key: str | None = None,
) -> PoolHold:
    """Hold a free code of the batch and client for the order until ``now + ttl``, under the
    batch's per-customer rule, or refuse as issuing would; the same order (or key) asking
    again gets the same hold."""
    ask = _Ask(batch_id, client_id, customer_id, order, idempotency_key)
    expires_at = now + ttl
    citus = await on_citus(conn)
    for _ in range(_CLAIM_ATTEMPTS):
        earlier = await _earlier(conn, ask, now=now)
        if earlier is not None:
            return earlier
        # The customer's own lapsed holds of the batch end first, so that the rule counts
        # only the codes they really hold (others' are left to the sweep: ending them here
        # would lock other customers' quota rows, in no fixed order with other takers). On
        # Citus, only those of this client: its shard alone (the sweep ends the others).
        await end_lapsed(
            conn,
            now=now,
            batch_id=batch_id,
            customer_id=customer_id,
            client_id=client_id if citus else None,
        )
        hold_id = await _claim(conn, ask, now=now, expires_at=expires_at, citus=citus)
        if hold_id is not None:
            break
        await returns_released_codes(conn, batch_id)  # an unknown batch: its 404
        # Else another request of the order (or key) committed its hold first: read it.
    else:
        raise OrderHeldForAnotherCustomer(
            f"order {order!r} keeps changing its hold of batch {batch_id}: ask again"
        )
    try:
        if citus:
            code = await _take_citus(conn, ask, hold_id=hold_id, now=now)
        elif conn.dialect.name == "postgresql":
            code = await _take_postgresql(
                conn, ask, hold_id=hold_id, now=now, expires_at=expires_at
            )
        else:
            code = await _take_sqlite(conn, ask, hold_id=hold_id, now=now)
    except PromosError:
        # Refused: the claimed row goes (should the caller's transaction commit anyway).
        await conn.execute(
            delete(holds).where(holds.c.client_id == client_id, holds.c.id == hold_id)
        )
        raise
    held = _new_hold(hold_id, code, ask, now=now, expires_at=expires_at)
    if citus or conn.dialect.name != "postgresql":  # PostgreSQL's _TAKE wrote it, when wanted
        await emit_events(conn, POOL_CODE_HELD, [held_payload(held)], now=now)
    return held


# Claims refused for a hold of the order that had ended again before it could be read.
_CLAIM_ATTEMPTS = 3


async def _claim(
    conn: AsyncConnection, ask: _Ask, *, now: datetime, expires_at: datetime, citus: bool
) -> int | None:
    """Insert the hold, its code still to take (null only inside this transaction); None if
    the batch does not exist or the order (or key) has a hold already.

    A concurrent request of the same order (or key) waits here, on the unique index, until
    the first commits (then this inserts nothing) or rolls back: it never takes a code of
    its own meanwhile, which could leave others none.

    On Citus the batch is read first, and the row inserted by values: an insert from a
    select of the batches (a reference table) is run in two steps through the coordinator."""
    if citus:
        if not await _batch_exists(conn, ask.batch_id):
            return None
        inserted: int | None = (
            await conn.execute(
                insert_for(conn)(holds)
                .values(
                    batch_id=ask.batch_id,
                    client_id=ask.client_id,
                    customer_id=ask.customer_id,
                    order_ref=ask.order,
                    idempotency_key=ask.key,
                    status=HELD,
                    created_at=now,
                    expires_at=expires_at,
                )
                .on_conflict_do_nothing()
                .returning(holds.c.id)
            )
        ).scalar_one_or_none()
        return inserted
    values = select(
        literal(ask.batch_id, Uuid()),
        literal(ask.client_id, Uuid()),
        literal(ask.customer_id, String()),
        literal(ask.order, String()),
        literal(ask.key, String()),
        literal(HELD, String()),
        literal(now, UTCDateTime()),
        literal(expires_at, UTCDateTime()),
    ).where(exists().where(batches.c.id == ask.batch_id))
    statement = (
        insert_for(conn)(holds)
        .from_select(
            [
                holds.c.batch_id,
                holds.c.client_id,
                holds.c.customer_id,
                holds.c.order_ref,
                holds.c.idempotency_key,
                holds.c.status,
                holds.c.created_at,
                holds.c.expires_at,
            ],
            values,
        )
        .on_conflict_do_nothing()
        .returning(holds.c.id)
    )
    hold_id: int | None = (await conn.execute(statement)).scalar_one_or_none()
    return hold_id


async def _batch_exists(conn: AsyncConnection, batch_id: UUID) -> bool:
    found = await conn.execute(select(batches.c.id).where(batches.c.id == batch_id))
    return found.first() is not None


@dataclass(frozen=True, slots=True)
class _Ask:
    batch_id: UUID
    client_id: UUID
    customer_id: str
    order: str
    key: str | None


async def _earlier(conn: AsyncConnection, ask: _Ask, *, now: datetime) -> PoolHold | None:
    """The hold this request asks for again: the key's (as it stands), or the order's live
    one, of the client; a lapsed hold of the order is ended (the order asks anew) and not
    returned. Orders and keys are the client's own, as the unique indexes say (0025)."""
    keyed = holds.c.idempotency_key == ask.key if ask.key is not None else false()
    of_order = and_(holds.c.order_ref == ask.order, holds.c.status.in_(LIVE))
    rows = (
        await conn.execute(
            select(*_COLUMNS)
            .where(
                holds.c.client_id == ask.client_id,
                holds.c.batch_id == ask.batch_id,
                or_(keyed, of_order),
            )
            .order_by(holds.c.id)
        )
    ).all()
    for row in rows:
        if ask.key is not None and row.idempotency_key == ask.key:
            if (row.customer_id, row.order_ref) != (ask.customer_id, ask.order):
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {ask.key!r} was used for another customer or order"
                )
            return _hold(row, now)
    for row in rows:
        if row.customer_id != ask.customer_id:
            raise OrderHeldForAnotherCustomer(
                f"order {ask.order!r} holds a code of batch {ask.batch_id} for another customer"
            )
        found = _hold(row, now)
        if found.status != EXPIRED:
            return found
        await end_lapsed(conn, now=now, hold_id=found.id, client_id=ask.client_id)
    return None


# PostgreSQL: the batch checked, a free code taken (FOR UPDATE SKIP LOCKED, as issuing
# takes them) under the rule counted on the customer's quota row, and the hold recorded,
# in one statement. The issuing statements are not changed: this one stands beside them.
_HELD_EVENTS = emitting(
    POOL_CODE_HELD,
    rows="held",
    payload="json_build_object('hold_id', held.id, 'batch_id', CAST(:batch_id AS text), "
    "'client_id', CAST(:client_id AS text), 'code', held.code, "
    "'customer_id', CAST(:customer_id AS text), 'order', CAST(:order_ref AS text), "
    "'held_at', CAST(:event_time AS text), 'expires_at', CAST(:expires_time AS text))",
    name="held_events",
)
# The batch, whether the client is one of its clients, and its rule: what a take is under.
_RULE = """
    batch AS (
        SELECT expired, max_per_customer, time_limit_days, client_id AS owner,
               CASE WHEN time_limit_days IS NULL THEN '-infinity'::timestamptz
                    ELSE :now - make_interval(days => time_limit_days) END AS since,
               EXISTS (
                   SELECT FROM batch_clients
                   WHERE client_id = :client_id AND batch_id = :batch_id
               ) AS listed
        FROM batches WHERE id = :batch_id
    ), usable AS (
        SELECT max_per_customer, since FROM batch WHERE listed AND NOT expired
    )"""
# The code of ``free`` taken for the customer, counted on their quota row under the rule.
_COUNTED_TAKE = """
    counted AS (
        INSERT INTO customer_quotas AS q (client_id, batch_id, customer_id, issued)
        SELECT (SELECT owner FROM batch), :batch_id, :customer_id, ARRAY[:now] FROM free
        WHERE (SELECT max_per_customer FROM usable) IS NOT NULL
        ON CONFLICT (client_id, batch_id, customer_id) DO UPDATE
        SET issued = ARRAY(
                SELECT t FROM unnest(q.issued) AS t WHERE t > (SELECT since FROM usable)
            ) || excluded.issued
        WHERE (SELECT count(*) FROM unnest(q.issued) AS t WHERE t > (SELECT since FROM usable))
              < (SELECT max_per_customer FROM usable)
        RETURNING customer_id
    ), taken AS (
        UPDATE codes SET customer_id = :customer_id, issued_at = :now
        FROM free
        WHERE codes.client_id = free.client_id AND codes.code = free.code
          AND ((SELECT max_per_customer FROM usable) IS NULL OR EXISTS (SELECT FROM counted))
        RETURNING codes.code
    )"""
_TAKE = text(
    f"""
    WITH {_RULE}, free AS (
        SELECT client_id, code FROM codes
        WHERE batch_id = :batch_id AND client_id = :client_id AND issued_at IS NULL
          AND EXISTS (SELECT FROM usable)
        ORDER BY seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ), {_COUNTED_TAKE}, held AS (
        UPDATE pool_code_holds SET code = taken.code
        FROM taken
        WHERE pool_code_holds.id = :hold_id
        RETURNING pool_code_holds.id, pool_code_holds.code
    ), {_HELD_EVENTS}
    SELECT held.id, held.code, (SELECT count(*) FROM free) AS found,
           batch.listed, batch.expired, batch.max_per_customer, batch.time_limit_days
    FROM (SELECT 1) AS one LEFT JOIN batch ON true LEFT JOIN held ON true
    """  # noqa: S608 - the event CTEs are constants
).bindparams(
    bindparam("batch_id", type_=Uuid()),
    bindparam("client_id", type_=Uuid()),
    bindparam("customer_id", type_=Text()),
    bindparam("hold_id", type_=BigInteger()),
    bindparam("order_ref", type_=String()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("event_time", type_=String()),
    bindparam("expires_time", type_=String()),
)


async def _take_postgresql(
    conn: AsyncConnection, ask: _Ask, *, hold_id: int, now: datetime, expires_at: datetime
) -> str:
    row = (
        await conn.execute(
            _TAKE,
            {
                "batch_id": ask.batch_id,
                "client_id": ask.client_id,
                "customer_id": ask.customer_id,
                "hold_id": hold_id,
                "order_ref": ask.order,
                "now": now,
                "event_time": event_time(now),
                "expires_time": event_time(expires_at),
            },
        )
    ).one()
    if row.listed is None:
        raise BatchNotFound(f"batch {ask.batch_id} does not exist")
    if not row.listed:
        raise _mismatch(ask)
    if row.expired:
        raise BatchExpired(f"batch {ask.batch_id} has expired")
    if row.id is None and row.found == 0:
        raise _exhausted(ask)
    if row.id is None:
        raise _limit_reached(ask, row.max_per_customer, row.time_limit_days)
    taken: str = row.code
    return taken


def _new_hold(
    hold_id: int, code: str, ask: _Ask, *, now: datetime, expires_at: datetime
) -> PoolHold:
    return PoolHold(
        hold_id,
        ask.batch_id,
        ask.client_id,
        code,
        ask.customer_id,
        ask.order,
        ask.key,
        HELD,
        now,
        expires_at,
        None,
        None,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _take_sqlite(conn: AsyncConnection, ask: _Ask, *, hold_id: int, now: datetime) -> str:
    """The same as ``_TAKE``, as plain reads and writes: SQLite has one writer at a time."""
    batch = (
        await conn.execute(
            select(batches.c.expired, batches.c.max_per_customer, batches.c.time_limit_days).where(
                batches.c.id == ask.batch_id
            )
        )
    ).first()
    if batch is None:
        raise BatchNotFound(f"batch {ask.batch_id} does not exist")
    listed = (
        await conn.execute(
            select(batch_clients.c.batch_id).where(
                batch_clients.c.batch_id == ask.batch_id,
                batch_clients.c.client_id == ask.client_id,
            )
        )
    ).first()
    if listed is None:
        raise _mismatch(ask)
    if batch.expired:
        raise BatchExpired(f"batch {ask.batch_id} has expired")
    if not await _under_rule_sqlite(conn, batch, ask.batch_id, ask.customer_id, now=now):
        raise _limit_reached(ask, batch.max_per_customer, batch.time_limit_days)
    code: str | None = (
        await conn.execute(
            select(codes.c.code)
            .where(
                codes.c.batch_id == ask.batch_id,
                codes.c.client_id == ask.client_id,
                codes.c.issued_at.is_(None),
            )
            .order_by(codes.c.seq)
            .limit(1)
        )
    ).scalar_one_or_none()
    if code is None:
        raise _exhausted(ask)
    await conn.execute(
        update(codes)
        .where(codes.c.client_id == ask.client_id, codes.c.code == code)
        .values(customer_id=ask.customer_id, issued_at=now)
    )
    await conn.execute(update(holds).where(holds.c.id == hold_id).values(code=code))
    return code


async def _under_rule_sqlite(
    conn: AsyncConnection, batch: Any, batch_id: UUID, customer_id: str, *, now: datetime
) -> bool:
    """Whether the batch's per-customer rule lets the customer have one more of its codes
    now, counted over their codes (``batch``: its rule's columns)."""
    if batch.max_per_customer is None:
        return True
    days = batch.time_limit_days
    since = now - timedelta(days=days) if days is not None else _EPOCH
    had = (
        await conn.execute(
            select(func.count()).where(
                codes.c.customer_id == customer_id,
                codes.c.batch_id == batch_id,
                codes.c.issued_at > since,
            )
        )
    ).scalar_one()
    return bool(had < batch.max_per_customer)


async def _take_citus(conn: AsyncConnection, ask: _Ask, *, hold_id: int, now: datetime) -> str:
    """``_TAKE`` on Citus, as statements that each run on one shard (the batch's rule counts
    on its own client's shard, the code is on the hold's client's): the customer's quota row
    locked first, then a free code taken with SKIP LOCKED, as ``_take_apart`` issues."""
    batch = (
        await conn.execute(
            select(
                batches.c.expired,
                batches.c.max_per_customer,
                batches.c.time_limit_days,
                batches.c.client_id,
                exists()
                .where(
                    batch_clients.c.batch_id == ask.batch_id,
                    batch_clients.c.client_id == ask.client_id,
                )
                .label("listed"),
            ).where(batches.c.id == ask.batch_id)
        )
    ).first()
    if batch is None:
        raise BatchNotFound(f"batch {ask.batch_id} does not exist")
    if not batch.listed:
        raise _mismatch(ask)
    if batch.expired:
        raise BatchExpired(f"batch {ask.batch_id} has expired")
    quota = {"owner": batch.client_id, "batch_id": ask.batch_id, "customer_id": ask.customer_id}
    recent: list[datetime] = []
    if batch.max_per_customer is not None:
        days = batch.time_limit_days
        since = now - timedelta(days=days) if days is not None else NEVER
        locked = (await conn.execute(LOCK_QUOTA, quota)).scalar_one()
        recent = [t for t in locked if t > since]
        if len(recent) >= batch.max_per_customer:
            raise _limit_reached(ask, batch.max_per_customer, days)
    params = {"batch_id": ask.batch_id, "client_id": ask.client_id, "wanted": 1}
    code: str | None = (await conn.execute(FREE_LOCKED, params)).scalar_one_or_none()
    if code is None:
        raise _exhausted(ask)
    await conn.execute(
        update(codes)
        .where(codes.c.client_id == ask.client_id, codes.c.code == code)
        .values(customer_id=ask.customer_id, issued_at=now)
    )
    await conn.execute(
        update(holds)
        .where(holds.c.client_id == ask.client_id, holds.c.id == hold_id)
        .values(code=code)
    )
    if batch.max_per_customer is not None:
        await conn.execute(SET_QUOTA, {**quota, "issued": [*recent, now]})
    return code


def _mismatch(ask: _Ask) -> ClientMismatch:
    return ClientMismatch(f"batch {ask.batch_id} holds no codes of client {ask.client_id}")


def _exhausted(ask: _Ask) -> PoolExhausted:
    return PoolExhausted(f"batch {ask.batch_id} has no codes left for client {ask.client_id}")


def _limit_reached(ask: _Ask, most: int, days: int | None) -> CustomerLimitReached:
    window = f" in {days} days" if days is not None else ""
    return CustomerLimitReached(
        f"customer {ask.customer_id} already has or holds {most} "
        f"code(s) of batch {ask.batch_id}{window}"
    )


def held_payload(found: PoolHold) -> dict[str, Any]:
    """The payload of a pool code hold's events (``pool_code.*``)."""
    return {
        "hold_id": found.id,
        "batch_id": found.batch_id,
        "client_id": found.client_id,
        "code": found.code,
        "customer_id": found.customer_id,
        "order": found.order,
        "held_at": found.created_at,
        "expires_at": found.expires_at,
    }


def _ended_payload(found: PoolHold, *, at: str) -> dict[str, Any]:
    return {**held_payload(found), at: found.ended_at, "returned": found.returned}


async def _the_hold(conn: AsyncConnection, hold_id: int) -> list[Any]:
    """The conditions that pick the hold: on Citus with its client too, so that a statement
    runs on the client's shard alone (the client read first, from every shard: an id alone
    does not say where the hold is)."""
    found = [holds.c.id == hold_id]
    if await on_citus(conn):
        found.append(holds.c.client_id == await hold_client(conn, hold_id))
    return found


# --- confirming --------------------------------------------------------------------------------


async def confirm(
    conn: AsyncConnection, *, hold_id: int, now: datetime, late: bool = False
) -> PoolHold:
    """Issue the held code to its customer for good, under the hold's id (a confirmed hold's
    again: as it is); a released one is ``HoldReleased``, a lapsed one ``HoldExpired``
    unless ``late`` and its code is still free for it (``_confirm_late``)."""
    row = (
        await conn.execute(
            update(holds)
            .where(*await _the_hold(conn, hold_id), _not_ended(), holds.c.expires_at > now)
            .values(status=CONFIRMED, ended_at=now)
            .returning(*_COLUMNS)
        )
    ).first()
    if row is not None:
        return await _confirmed(conn, _hold(row, now), now=now)
    found = await get_hold(conn, hold_id, now=now)
    if found.status == CONFIRMED:
        return found
    if found.status == RELEASED:
        raise HoldReleased(f"pool code hold {hold_id} was released: take a new hold")
    if late:
        return await _confirm_late(conn, found, now=now)
    raise HoldExpired(
        f"pool code hold {hold_id} expired at {found.expires_at.isoformat()}: its code is no "
        "longer the order's; take a new hold"
    )


async def _confirmed(conn: AsyncConnection, done: PoolHold, *, now: datetime) -> PoolHold:
    await emit_events(
        conn, POOL_CODE_HOLD_CONFIRMED, [_ended_payload(done, at="confirmed_at")], now=now
    )
    after_commit(conn, metrics.CODES_ISSUED.inc)  # issued now, for good
    return done


async def _confirm_late(conn: AsyncConnection, found: PoolHold, *, now: datetime) -> PoolHold:
    """A lapsed hold confirmed while its code is still free for it, as the batch's rules are
    now: not yet ended (the code is still the holder's, counted for them), or ended with its
    code returned to the pool and nobody's since (taken back under the rule)."""
    if found.ended_at is None:
        batch_live = exists().where(batches.c.id == holds.c.batch_id, batches.c.expired.is_(False))
        row = (
            await conn.execute(
                update(holds)
                .where(holds.c.id == found.id, _not_ended(), batch_live)
                .values(status=CONFIRMED, ended_at=now)
                .returning(*_COLUMNS)
            )
        ).first()
        if row is not None:
            return await _confirmed(conn, _hold(row, now), now=now)
        # Ended meanwhile (a sweep, an issue), confirmed by a twin, or its batch expired.
        found = await get_hold(conn, found.id, now=now)
        if found.status == CONFIRMED:
            return found
    why = "its code was burnt" if found.returned is False else "its batch has expired"
    if found.ended_at is not None and found.returned and await on_citus(conn):
        # The code and the batch's rule may be on different clients' shards: a returned code
        # is not taken back on Citus (docs/deployment.md).
        why = "its code went back to the pool, which a late confirm does not undo on Citus"
    elif found.ended_at is not None and found.returned:
        if conn.dialect.name == "postgresql":
            row = await _retake_postgresql(conn, found, now=now)
        else:
            row = await _retake_sqlite(conn, found, now=now)
        if row is not None:
            return await _confirmed(conn, _hold(row, now), now=now)
        why = "its code is no longer free for it"
    raise HoldExpired(
        f"pool code hold {found.id} expired at {found.expires_at.isoformat()} and {why}: "
        "take a new hold"
    )


# PostgreSQL: a late confirm of a hold whose code went back to the pool: that code taken
# again for the holder (if nobody has taken it, under the batch's rule now, counted on their
# quota row as a hold is) and the hold confirmed, in one statement.
_RETAKE = (
    text(
        f"""
    WITH {_RULE}, free AS (
        SELECT client_id, code FROM codes
        WHERE client_id = :client_id AND code = :code AND batch_id = :batch_id
          AND issued_at IS NULL AND EXISTS (SELECT FROM usable)
        FOR UPDATE
    ), {_COUNTED_TAKE}, confirmed AS (
        UPDATE pool_code_holds SET status = 'confirmed', ended_at = :now, returned = NULL
        FROM taken
        WHERE pool_code_holds.id = :hold_id AND pool_code_holds.status = 'expired'
        RETURNING pool_code_holds.*
    )
    SELECT confirmed.id, confirmed.batch_id, confirmed.client_id, confirmed.code,
           confirmed.customer_id, confirmed.order_ref, confirmed.idempotency_key,
           confirmed.status, confirmed.created_at, confirmed.expires_at, confirmed.ended_at,
           confirmed.returned, (SELECT count(*) FROM taken) AS taken
    FROM (SELECT 1) AS one LEFT JOIN confirmed ON true
    """  # noqa: S608 - constants of this module
    )
    .bindparams(
        bindparam("batch_id", type_=Uuid()),
        bindparam("client_id", type_=Uuid()),
        bindparam("customer_id", type_=Text()),
        bindparam("code", type_=Text()),
        bindparam("hold_id", type_=BigInteger()),
        bindparam("now", type_=UTCDateTime()),
    )
    .columns(*_COLUMNS, column("taken", BigInteger()))
)


async def _retake_postgresql(conn: AsyncConnection, found: PoolHold, *, now: datetime) -> Any:
    row = (
        await conn.execute(
            _RETAKE,
            {
                "batch_id": found.batch_id,
                "client_id": found.client_id,
                "customer_id": found.customer_id,
                "code": found.code,
                "hold_id": found.id,
                "now": now,
            },
        )
    ).one()
    if row.id is None and row.taken:
        # Its code taken and the hold not confirmed: nothing else moves an ended hold, but
        # should anything, the transaction must not keep the code.
        raise HoldExpired(f"pool code hold {found.id} changed while it was confirmed: ask again")
    return row if row.id is not None else None


async def _retake_sqlite(conn: AsyncConnection, found: PoolHold, *, now: datetime) -> Any:
    """The same as ``_RETAKE``: SQLite has one writer at a time."""
    batch = (
        await conn.execute(
            select(batches.c.expired, batches.c.max_per_customer, batches.c.time_limit_days).where(
                batches.c.id == found.batch_id
            )
        )
    ).one()
    if batch.expired:
        return None
    if not await _under_rule_sqlite(conn, batch, found.batch_id, found.customer_id, now=now):
        return None
    taken = await conn.execute(
        update(codes)
        .where(
            codes.c.client_id == found.client_id,
            codes.c.code == found.code,
            codes.c.issued_at.is_(None),
        )
        .values(customer_id=found.customer_id, issued_at=now)
    )
    if taken.rowcount != 1:
        return None
    return (
        await conn.execute(
            update(holds)
            .where(holds.c.id == found.id, holds.c.status == EXPIRED)
            .values(status=CONFIRMED, ended_at=now, returned=None)
            .returning(*_COLUMNS)
        )
    ).one()


# --- ending: release and expiry ----------------------------------------------------------------

# What becomes of the code is the batch's setting when the hold ends.
_RETURNS = (
    select(batches.c.return_released_codes)
    .where(batches.c.id == holds.c.batch_id)
    .scalar_subquery()
)


async def release(conn: AsyncConnection, *, hold_id: int, now: datetime) -> PoolHold:
    """End the hold now: its code goes back to the pool or is burnt (a released or expired
    hold: as it is, a lapsed one ended as expired; a confirmed one is ``HoldConfirmed``)."""
    row = (
        await conn.execute(
            update(holds)
            .where(*await _the_hold(conn, hold_id), _not_ended(), holds.c.expires_at > now)
            .values(status=RELEASED, ended_at=now, returned=_RETURNS)
            .returning(*_COLUMNS)
        )
    ).first()
    if row is not None:
        done = _hold(row, now)
        await _end_codes(conn, [done])
        await emit_events(
            conn, POOL_CODE_HOLD_RELEASED, [_ended_payload(done, at="released_at")], now=now
        )
        return done
    found = await get_hold(conn, hold_id, now=now)
    if found.status == CONFIRMED:
        raise HoldConfirmed(f"pool code hold {hold_id} was confirmed: its code is issued")
    if found.status == EXPIRED and found.ended_at is None:
        await end_lapsed(conn, now=now, hold_id=hold_id)
        found = await get_hold(conn, hold_id, now=now)
    return found


async def end_lapsed(
    conn: AsyncConnection,
    *,
    now: datetime,
    batch_id: UUID | None = None,
    client_id: UUID | None = None,
    customer_id: str | None = None,
    hold_id: int | None = None,
    limit: int = SWEEP_LIMIT,
    wait: bool = False,
) -> int:
    """End the lapsed holds (of the batch, its client or customer, or the one hold) as
    expired, at most ``limit``, soonest lapsed first: their codes go back to the pool or are
    burnt. How many.

    Each is ended once, under its row lock; on PostgreSQL a lapsed hold another transaction
    is ending is skipped, not waited for (unless it is the one hold named, or ``wait``: then
    the other's end is waited for, and the hold is left to it). On Citus, each is ended by a
    statement of its own on its client's shard (waited for, not skipped)."""
    picked = select(holds.c.id).where(_lapsed(now))
    if batch_id is not None:
        picked = picked.where(holds.c.batch_id == batch_id)
    if client_id is not None:
        picked = picked.where(holds.c.client_id == client_id)
    if customer_id is not None:
        picked = picked.where(holds.c.customer_id == customer_id)
    if hold_id is not None:
        picked = picked.where(holds.c.id == hold_id)
    picked = picked.order_by(holds.c.expires_at, holds.c.id).limit(limit)
    rows: Sequence[Any]
    if await on_citus(conn):
        rows = await _end_lapsed_citus(conn, picked, now=now)
    else:
        if conn.dialect.name == "postgresql" and hold_id is None and not wait:
            picked = picked.with_for_update(skip_locked=True)
        rows = (
            await conn.execute(
                update(holds)
                .where(holds.c.id.in_(picked.scalar_subquery()), _lapsed(now))
                .values(status=EXPIRED, ended_at=now, returned=_RETURNS)
                .returning(*_COLUMNS)
            )
        ).all()
    if not rows:
        return 0
    ended = sorted((_hold(row, now) for row in rows), key=lambda h: h.id)
    await _end_codes(conn, ended)
    await emit_events(
        conn,
        POOL_CODE_HOLD_EXPIRED,
        [_ended_payload(h, at="ended_at") for h in ended],
        now=now,
    )
    return len(ended)


async def _end_lapsed_citus(conn: AsyncConnection, picked: Any, *, now: datetime) -> list[Any]:
    """The picked lapsed holds ended one by one, in (client, id) order, each on its client's
    shard: Citus runs no ``FOR UPDATE SKIP LOCKED`` subquery over every shard. A hold another
    transaction ends meanwhile is waited for, then left (no longer held)."""
    found = (await conn.execute(picked.with_only_columns(holds.c.client_id, holds.c.id))).all()
    rows = []
    for client, hold in sorted(found):
        row = (
            await conn.execute(
                update(holds)
                .where(holds.c.client_id == client, holds.c.id == hold, _lapsed(now))
                .values(status=EXPIRED, ended_at=now, returned=_RETURNS)
                .returning(*_COLUMNS)
            )
        ).first()
        if row is not None:
            rows.append(row)
    return rows


_RETURN_CODE = (
    update(codes)
    .where(codes.c.client_id == bindparam("client"), codes.c.code == bindparam("taken"))
    .values(customer_id=None, issued_at=None)
)
_BURN_CODE = (
    update(codes)
    .where(codes.c.client_id == bindparam("client"), codes.c.code == bindparam("taken"))
    .values(customer_id=None)
)
# The ended hold's time comes off its customer's quota row (one of them, if the customer
# took several codes at that very time), so that the rule no longer counts it.
_UNCOUNT_SQL = """
    UPDATE customer_quotas
    SET issued = issued[1:array_position(issued, :held_at) - 1]
                 || issued[array_position(issued, :held_at) + 1:]
    WHERE client_id = {owner}
      AND batch_id = :batch_id AND customer_id = :customer_id
      AND array_position(issued, :held_at) IS NOT NULL
    """
_UNCOUNT_PARAMS = (
    bindparam("batch_id", type_=Uuid()),
    bindparam("customer_id", type_=Text()),
    bindparam("held_at", type_=UTCDateTime()),
)
_UNCOUNT = text(
    _UNCOUNT_SQL.format(owner="(SELECT client_id FROM batches WHERE id = :batch_id)")
).bindparams(*_UNCOUNT_PARAMS)
# Citus: the batch's own client named, read before, so that it runs on that client's shard.
_UNCOUNT_CITUS = text(_UNCOUNT_SQL.format(owner=":owner")).bindparams(
    *_UNCOUNT_PARAMS, bindparam("owner", type_=Uuid())
)


async def _owners(conn: AsyncConnection, batch_ids: set[UUID]) -> dict[UUID, UUID]:
    """Each batch's own client: its quota rows are on that client's shard."""
    rows = await conn.execute(
        select(batches.c.id, batches.c.client_id).where(batches.c.id.in_(batch_ids))
    )
    return {row.id: row.client_id for row in rows}


async def _end_codes(conn: AsyncConnection, ended: Sequence[PoolHold]) -> None:
    """The ended holds' codes back to the pool, or burnt, and no longer their customers'."""
    for returned, statement in ((True, _RETURN_CODE), (False, _BURN_CODE)):
        these = [h for h in ended if bool(h.returned) is returned]
        if these:
            await conn.execute(statement, [{"client": h.client_id, "taken": h.code} for h in these])
    if conn.dialect.name == "postgresql":
        owners = await _owners(conn, {h.batch_id for h in ended}) if await on_citus(conn) else {}
        # In customer order, as issuing locks quota rows, so that the two never wait in a circle.
        for h in sorted(ended, key=lambda h: (h.batch_id, h.customer_id, h.id)):
            await conn.execute(
                _UNCOUNT_CITUS if owners else _UNCOUNT,
                {
                    "batch_id": h.batch_id,
                    "customer_id": h.customer_id,
                    "held_at": h.created_at,
                    **({"owner": owners[h.batch_id]} if owners else {}),
                },
            )
    # In batch order, as the counters' checkpoints lock them (promos.codes.counts).
    for h in sorted(ended, key=lambda h: (h.batch_id, h.id)):
        if h.returned:
            await counts.returned(conn, h.batch_id, issued_at=h.created_at)
