"""Holds: a use of a promo code taken for an order for a while, then confirmed or given back.

A hold takes its use as a redemption does (``service.take_use``: the same one UPDATE with
every rule in its WHERE clause), so that every rule counting uses counts it, under any
concurrency. Confirming it makes it a redemption with the same id; releasing it gives the
use back at once; a lapsed hold gives it back when the next taker finds it (``expiry``).
One live hold per order and code, and per Idempotency-Key, kept by unique indexes: the
same order (or key) asking again gets the same hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    false,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.db import UTCDateTime, after_commit
from promos.events.outbox import emit_events, emitting, event_time
from promos.events.types import PROMOCODE_HELD, PROMOCODE_HOLD_RELEASED, PROMOCODE_REDEEMED
from promos.observability import metrics
from promos.promocodes import carts, expiry, service
from promos.promocodes.errors import (
    HoldConfirmed,
    HoldExpired,
    HoldNotFound,
    HoldReleased,
    IdempotencyKeyReused,
    OrderHeldForAnotherCustomer,
)
from promos.promocodes.service import Redemption, normalize_email, redeemed_payload
from promos.promocodes.tables import promocode_holds as holds
from promos.promocodes.tables import promocode_redemptions as redemptions
from promos.promocodes.tables import promocodes

HELD, CONFIRMED, RELEASED, EXPIRED = "held", "confirmed", "released", "expired"
LIVE = (HELD, CONFIRMED)
# A hold not ended, written so rather than status = 'held' (the same rows: the table's CHECK
# allows these four): a statement naming one hold by its id must find it by the primary key.
# Given status = 'held', the planner may take the partial index of the held holds instead
# (that is its predicate), which it judges tiny on a table whose holds come and go, and walk
# it whole: 380 index entries read per confirm after 2,000 pairs of bench/holds.py.
NOT_ENDED_SQL = "status NOT IN ('confirmed', 'released', 'expired')"


def not_ended(table: Any) -> ColumnElement[bool]:
    """SQL: the hold of ``table`` has not ended (``NOT_ENDED_SQL``)."""
    result: ColumnElement[bool] = table.c.status.notin_((CONFIRMED, RELEASED, EXPIRED))
    return result


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    code: str
    customer: str
    order: str
    idempotency_key: str | None
    # held, confirmed, released or expired (a hold past expires_at is expired, given back
    # or not yet).
    status: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    usage_count: int  # uses the code has left now


def _columns(now: datetime) -> tuple[Any, ...]:
    return (
        holds.c.id,
        promocodes.c.code,
        holds.c.customer,
        holds.c.order_ref,
        holds.c.idempotency_key,
        holds.c.status,
        holds.c.created_at,
        holds.c.expires_at,
        holds.c.ended_at,
        (promocodes.c.usage_count + expiry.lapsed_uses(now)).label("usage_count"),
    )


_JOINED = holds.join(promocodes, holds.c.promocode_id == promocodes.c.id)


def _hold(row: Row[Any], now: datetime) -> Hold:
    status = EXPIRED if row.status == HELD and row.expires_at <= now else row.status
    return Hold(
        row.id,
        row.code,
        row.customer,
        row.order_ref,
        row.idempotency_key,
        status,
        row.created_at,
        row.expires_at,
        row.ended_at,
        row.usage_count,
    )


async def get_hold(conn: AsyncConnection, hold_id: int, *, now: datetime) -> Hold:
    """The hold as it stands at ``now``."""
    row = (
        await conn.execute(select(*_columns(now)).select_from(_JOINED).where(holds.c.id == hold_id))
    ).first()
    if row is None:
        raise HoldNotFound(f"hold {hold_id} does not exist")
    return _hold(row, now)


async def _earlier(
    conn: AsyncConnection, *, code: str, order: str, key: str | None, who: str, now: datetime
) -> Hold | None:
    """The hold this request asks for again: the key's, or the order's live one; a lapsed
    hold of the order is given back (its order is asking anew) and not returned."""
    keyed = holds.c.idempotency_key == key if key is not None else false()
    of_order = and_(holds.c.order_ref == order, holds.c.status.in_(LIVE))
    rows = (
        await conn.execute(
            select(*_columns(now))
            .select_from(_JOINED)
            .where(promocodes.c.code == code, or_(keyed, of_order))
        )
    ).all()
    for row in rows:
        if key is not None and row.idempotency_key == key:
            if row.customer != who or row.order_ref != order:
                raise IdempotencyKeyReused(
                    f"Idempotency-Key {key!r} was used for another customer or order"
                )
            return _hold(row, now)
    for row in rows:
        if row.customer != who:
            raise OrderHeldForAnotherCustomer(
                f"order {order!r} holds promo code {code!r} for another customer"
            )
        found = _hold(row, now)
        if found.status != EXPIRED:
            return found
        await expiry.give_back_lapsed(conn, now=now, hold_id=row.id)
    return None


async def hold(
    conn: AsyncConnection,
    *,
    code: str,
    customer: str,
    order: str,
    skus: Sequence[str] | None,
    ttl: timedelta,
    now: datetime,
    idempotency_key: str | None = None,
) -> Hold:
    """Take one use of the code for the order until ``now + ttl``, atomically, or refuse as
    a redemption would; the same order (or key) asking again gets the same hold."""
    who = normalize_email(customer)
    earlier = await _earlier(conn, code=code, order=order, key=idempotency_key, who=who, now=now)
    if earlier is not None:
        return earlier
    took = await service.take_use(conn, code=code, customer=who, skus=skus, now=now)
    if took is None:
        found = await service.get_promocode(conn, code)
        raise service._why_unusable(found, customer=who, skus=skus, today=now.date())  # noqa: SLF001 - the domain's own reasons
    savepoint, taken = took
    held = Hold(0, code, who, order, idempotency_key, HELD, now, now + ttl, None, taken.usage_count)
    try:
        hold_id = await _record_hold(conn, held, promocode_id=taken.id, skus=skus)
    except IntegrityError:
        # A concurrent request of the same order (or key) committed first: give the use
        # back and answer with its hold.
        await savepoint.rollback()
        earlier = await _earlier(
            conn, code=code, order=order, key=idempotency_key, who=who, now=now
        )
        if earlier is None:
            raise
        return earlier
    await savepoint.commit()
    return Hold(hold_id, *_fields(held)[1:])


def _fields(found: Hold) -> tuple[Any, ...]:
    return (
        found.id,
        found.code,
        found.customer,
        found.order,
        found.idempotency_key,
        found.status,
        found.created_at,
        found.expires_at,
        found.ended_at,
        found.usage_count,
    )


def held_payload(found: Hold) -> dict[str, Any]:
    """The ``promocode.held`` event's payload (``_RECORD_HOLD`` builds it in SQL)."""
    return {
        "hold_id": found.id,
        "code": found.code,
        "customer": found.customer,
        "order": found.order,
        "uses_left": found.usage_count,
        "held_at": found.created_at,
        "expires_at": found.expires_at,
    }


# PostgreSQL: the hold and its event (when a subscription wants it) in one statement; its id
# is drawn from the redemptions' sequence, so that it can keep it as a redemption.
_RECORD_HOLD = text(
    f"""
    WITH held AS (
        INSERT INTO promocode_holds (id, promocode_id, customer, order_ref, idempotency_key,
                                     status, created_at, expires_at)
        VALUES (nextval('promocode_redemptions_id_seq'), :promocode_id, :customer, :order_ref,
                :idempotency_key, 'held', :now, :expires_at)
        RETURNING id
    ), {
        emitting(
            PROMOCODE_HELD,
            rows="held",
            payload="json_build_object('hold_id', held.id, 'code', CAST(:code AS text), "
            "'customer', CAST(:customer AS text), 'order', CAST(:order_ref AS text), "
            "'uses_left', CAST(:uses_left AS integer), "
            "'held_at', CAST(:event_time AS text), 'expires_at', CAST(:expires_time AS text))",
            name="hold_events",
        )
    }, {carts.recording(rows="held", use_id="held.id", promocode_id=":promocode_id")}
    SELECT id FROM held
    """  # noqa: S608 - the event CTEs are constants
).bindparams(
    bindparam("promocode_id", type_=BigInteger()),
    bindparam("customer", type_=String()),
    bindparam("order_ref", type_=String()),
    bindparam("idempotency_key", type_=String()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("expires_at", type_=UTCDateTime()),
    bindparam("code", type_=Text()),
    bindparam("uses_left", type_=Integer()),
    bindparam("event_time", type_=String()),
    bindparam("expires_time", type_=String()),
    bindparam("skus", type_=ARRAY(Text())),
)


async def _record_hold(
    conn: AsyncConnection, found: Hold, *, promocode_id: int, skus: Sequence[str] | None
) -> int:
    """Insert the hold with its cart (and its event, when wanted); its id."""
    if conn.dialect.name == "postgresql":
        recorded = await conn.execute(
            _RECORD_HOLD,
            {
                "promocode_id": promocode_id,
                "customer": found.customer,
                "order_ref": found.order,
                "idempotency_key": found.idempotency_key,
                "now": found.created_at,
                "expires_at": found.expires_at,
                "code": found.code,
                "uses_left": found.usage_count,
                "event_time": event_time(found.created_at),
                "expires_time": event_time(found.expires_at),
                "skus": carts.skus_param(skus),
            },
        )
        hold_id: int = recorded.scalar_one()
        return hold_id
    hold_id = (
        await conn.execute(
            holds.insert()
            .values(
                id=service.next_use_id(),
                promocode_id=promocode_id,
                customer=found.customer,
                order_ref=found.order,
                idempotency_key=found.idempotency_key,
                status=HELD,
                created_at=found.created_at,
                expires_at=found.expires_at,
            )
            .returning(holds.c.id)
        )
    ).scalar_one()
    await carts.record_cart(conn, use_id=hold_id, promocode_id=promocode_id, skus=skus)
    await emit_events(
        conn,
        PROMOCODE_HELD,
        [held_payload(Hold(hold_id, *_fields(found)[1:]))],
        now=found.created_at,
    )
    return hold_id


# --- confirming --------------------------------------------------------------------------------


def confirm_events(redeemed_at: str, *, order_by: str | None = None) -> str:
    """PostgreSQL: the CTEs of the ``promocode.redeemed`` events of the CTE ``used``'s
    confirmed holds (``redeemed_at``: their time as text, an SQL expression)."""
    return emitting(
        PROMOCODE_REDEEMED,
        rows="used",
        payload="json_build_object('redemption_id', used.id, 'code', used.code, "
        "'customer', used.customer, 'uses_left', used.usage_count, "
        f"'redeemed_at', {redeemed_at})",
        name="redemption_events",
        order_by=order_by,
    )


_CONFIRM_EVENTS = confirm_events("CAST(:event_time AS text)")
# PostgreSQL: the hold confirmed, its redemption (same id) and its event in one statement.
_CONFIRM = text(
    f"""
    WITH confirmed AS (
        UPDATE promocode_holds SET status = 'confirmed', ended_at = :now
        WHERE id = :hold_id AND {NOT_ENDED_SQL} AND expires_at > :now
        RETURNING id, promocode_id, customer, order_ref
    ), redeemed AS (
        INSERT INTO promocode_redemptions (id, promocode_id, customer, redeemed_at, order_ref)
        SELECT id, promocode_id, customer, :now, order_ref FROM confirmed
        RETURNING id, promocode_id, customer
    ), used AS (
        SELECT redeemed.id, redeemed.customer, p.code, p.usage_count
        FROM redeemed JOIN promocodes AS p ON p.id = redeemed.promocode_id
    ), {_CONFIRM_EVENTS}
    SELECT id, code, customer, usage_count FROM used
    """  # noqa: S608 - the event CTEs are constants
).bindparams(
    bindparam("hold_id", type_=BigInteger()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("event_time", type_=String()),
)


async def confirm(
    conn: AsyncConnection, *, hold_id: int, now: datetime, late: bool = False
) -> Redemption:
    """Make the hold a redemption with its id (a confirmed hold's again); a lapsed one only
    with ``late`` and a use free for it now, else ``HoldExpired``."""
    if conn.dialect.name == "postgresql":
        row = (
            await conn.execute(
                _CONFIRM, {"hold_id": hold_id, "now": now, "event_time": event_time(now)}
            )
        ).first()
        done = (
            Redemption(row.id, row.code, row.customer, None, now, None, row.usage_count)
            if row is not None
            else None
        )
    else:
        done = await _confirm_held(conn, hold_id=hold_id, now=now, status=HELD)
    if done is not None:
        after_commit(conn, metrics.PROMOCODES_REDEEMED.inc)
        return done
    found = await get_hold(conn, hold_id, now=now)
    if found.status == CONFIRMED:
        return await service.get_redemption(conn, hold_id)
    if found.status == RELEASED:
        raise HoldReleased(f"hold {hold_id} was released: take a new hold")
    if late:
        return await _confirm_late(conn, found, now=now)
    raise HoldExpired(
        f"hold {hold_id} expired at {found.expires_at.isoformat()}: its use is free for "
        "others again; take a new hold"
    )


async def _confirm_held(
    conn: AsyncConnection, *, hold_id: int, now: datetime, status: str
) -> Redemption | None:
    """Make the hold in ``status`` (and unlapsed, if ``held``) a redemption with its id, with
    its event; None if it is not in that state."""
    where = [holds.c.id == hold_id, holds.c.status == status]
    if status == HELD:
        where.append(holds.c.expires_at > now)
    row = (
        await conn.execute(
            update(holds)
            .where(*where)
            .values(status=CONFIRMED, ended_at=now)
            .returning(holds.c.promocode_id, holds.c.customer, holds.c.order_ref)
        )
    ).first()
    if row is None:
        return None
    await conn.execute(
        redemptions.insert().values(
            id=hold_id,
            promocode_id=row.promocode_id,
            customer=row.customer,
            redeemed_at=now,
            order_ref=row.order_ref,
        )
    )
    code = (
        await conn.execute(
            select(promocodes.c.code, promocodes.c.usage_count).where(
                promocodes.c.id == row.promocode_id
            )
        )
    ).one()
    done = Redemption(hold_id, code.code, row.customer, None, now, None, code.usage_count)
    await emit_events(conn, PROMOCODE_REDEEMED, [redeemed_payload(done)], now=now)
    return done


async def _confirm_late(conn: AsyncConnection, found: Hold, *, now: datetime) -> Redemption:
    """A lapsed hold confirmed: its use given back, then a use taken for it anew, as any
    taker would (the code's rules as they are now, the cart as it was checked at the hold)."""
    await expiry.give_back_lapsed(conn, now=now, hold_id=found.id)
    took = await service.take_use(
        conn, code=found.code, customer=found.customer, skus=None, now=now
    )
    if took is None:
        raise HoldExpired(
            f"hold {found.id} expired at {found.expires_at.isoformat()} and promo code "
            f"{found.code!r} has no use free for it now: take a new hold"
        )
    savepoint, _ = took
    try:
        done = await _confirm_held(conn, hold_id=found.id, now=now, status=EXPIRED)
    except IntegrityError:
        # The order holds the code again (a new hold): that one is to be confirmed.
        done = None
    if done is None:
        await savepoint.rollback()
        again = await get_hold(conn, found.id, now=now)
        if again.status == CONFIRMED:
            return await service.get_redemption(conn, found.id)
        raise HoldExpired(
            f"hold {found.id} expired at {found.expires_at.isoformat()} and the order has "
            "taken another hold since: confirm that one"
        )
    await savepoint.commit()
    after_commit(conn, metrics.PROMOCODES_REDEEMED.inc)
    return done


# --- releasing ---------------------------------------------------------------------------------


async def release(conn: AsyncConnection, *, hold_id: int, now: datetime) -> Hold:
    """Give the hold's use back at once (a released or expired hold's: nothing more to do;
    a confirmed one is a redemption, rolled back instead)."""
    row = (
        await conn.execute(
            update(holds)
            .where(holds.c.id == hold_id, not_ended(holds), holds.c.expires_at > now)
            .values(status=RELEASED, ended_at=now)
            .returning(holds.c.promocode_id)
        )
    ).first()
    if row is not None:
        await conn.execute(
            update(promocodes)
            .where(promocodes.c.id == row.promocode_id)
            .values(usage_count=promocodes.c.usage_count + 1)
        )
        done = await get_hold(conn, hold_id, now=now)
        await emit_events(
            conn,
            PROMOCODE_HOLD_RELEASED,
            [{**held_payload(done), "released_at": now}],
            now=now,
        )
        return done
    found = await get_hold(conn, hold_id, now=now)
    if found.status == CONFIRMED:
        raise HoldConfirmed(f"hold {hold_id} was confirmed: roll back redemption {hold_id} instead")
    if found.status == EXPIRED:
        await expiry.give_back_lapsed(conn, now=now, hold_id=hold_id)
        found = await get_hold(conn, hold_id, now=now)
    return found


async def holds_of(
    conn: AsyncConnection, *, promocode_id: int, now: datetime, limit: int
) -> list[Hold]:
    """The code's latest ``limit`` holds, newest first, each as it stands at ``now`` (the
    console's code page)."""
    rows = await conn.execute(
        select(*_columns(now))
        .select_from(_JOINED)
        .where(holds.c.promocode_id == promocode_id)
        .order_by(holds.c.id.desc())
        .limit(limit)
    )
    return [_hold(row, now) for row in rows]
