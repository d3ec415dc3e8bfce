"""The lean path of redeem, hold, confirm and release on PostgreSQL: one statement each.

Each use case's common case, a free use taken (or a held hold confirmed or released), is one
data-modifying statement: it takes the use under every rule of ``service._usable`` (the same
WHERE clause, written here in SQL), or gives it back, records the redemption or hold and
writes its event when a subscription wants it, and returns what the answer needs. It runs as
its own transaction on ``Database.statements`` (asyncpg itself, a prepared statement per
connection): one round trip.

Confirms go in groups (``confirm_group``): the confirms that arrive while the previous groups
are running leave together, one statement for the group, each hold decided on its own by the
same conditions as one confirm's (``promos.promocodes.fast`` groups them).

Anything else (no use free, a lapsed hold to give back first, a replay of an Idempotency-Key
or an order, a concurrent twin that committed first, a hold not ``held``) changes nothing here
and answers ``None``: the caller then takes the service path (``service.redeem``,
``holds.hold``, ``holds.confirm``, ``holds.release``), which decides it as it always has. So
the rules have one home, the service, and this module only a faster way through their most
frequent outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import asyncpg
from sqlalchemy import text

from promos.db import Database
from promos.events.outbox import emitting, event_time
from promos.events.types import PROMOCODE_HELD, PROMOCODE_HOLD_RELEASED, PROMOCODE_REDEEMED
from promos.observability import metrics
from promos.promocodes import carts
from promos.promocodes.holds import HELD, NOT_ENDED_SQL, RELEASED, Hold, confirm_events
from promos.promocodes.service import Redemption

# service._usable, in SQL: the code's uses, its generation's expiry, bound customer, products.
_TAKE = """
    UPDATE promocodes AS p SET usage_count = p.usage_count - 1
    WHERE p.code = CAST(:code AS text) AND p.usage_count > 0
      AND EXISTS (
        SELECT FROM promocode_generations AS g
        WHERE g.id = p.generation_id
          AND (g.expires_in IS NULL OR g.expires_in >= CAST(:today AS date))
          AND (g.usage_by IS NULL OR g.usage_by = CAST(:customer AS text))
          AND (NOT EXISTS (SELECT FROM promocode_products AS pp WHERE pp.generation_id = g.id)
               OR EXISTS (SELECT FROM promocode_products AS pp
                          WHERE pp.generation_id = g.id
                            AND pp.sku = ANY(CAST(:skus AS text[]))))
      )
"""

_REDEEM = text(
    f"""
    WITH taken AS (
        {_TAKE}
          -- a key used before: the service replays its redemption
          AND (CAST(:idempotency_key AS text) IS NULL OR NOT EXISTS (
            SELECT FROM promocode_redemptions AS r
            WHERE r.promocode_id = p.id AND r.idempotency_key = CAST(:idempotency_key AS text)))
        RETURNING p.id, p.usage_count
    ), redeemed AS (
        INSERT INTO promocode_redemptions (promocode_id, customer, idempotency_key, redeemed_at)
        SELECT id, CAST(:customer AS text), CAST(:idempotency_key AS text), :now FROM taken
        RETURNING id
    ), {
        emitting(
            PROMOCODE_REDEEMED,
            rows="redeemed, taken",
            payload="json_build_object('redemption_id', redeemed.id, "
            "'code', CAST(:code AS text), 'customer', CAST(:customer AS text), "
            "'uses_left', taken.usage_count, 'redeemed_at', CAST(:event_time AS text))",
            name="redemption_events",
        )
    }, {carts.recording(rows="redeemed, taken", use_id="redeemed.id", promocode_id="taken.id")}
    SELECT redeemed.id, taken.usage_count FROM redeemed, taken
    """  # noqa: S608 - constants of this module and of promos.events.outbox
)

_HOLD = text(
    f"""
    WITH taken AS (
        {_TAKE}
          -- a live hold of this order, or a hold of this key: the service answers with it
          -- (giving a lapsed one back first). Each is looked up by both columns of its
          -- unique index, the code's id found first (an InitPlan), whatever the planner
          -- knows of the table: joined to p.id instead, a table never analysed yet was
          -- walked by its order alone, the whole index for each hold.
          AND NOT EXISTS (
            SELECT FROM promocode_holds AS h
            WHERE h.promocode_id = (SELECT id FROM promocodes WHERE code = CAST(:code AS text))
              AND h.order_ref = CAST(:order_ref AS text)
              AND h.status IN ('held', 'confirmed'))
          AND (CAST(:idempotency_key AS text) IS NULL OR NOT EXISTS (
            SELECT FROM promocode_holds AS h
            WHERE h.promocode_id = (SELECT id FROM promocodes WHERE code = CAST(:code AS text))
              AND h.idempotency_key = CAST(:idempotency_key AS text)))
        RETURNING p.id, p.usage_count
    ), held AS (
        INSERT INTO promocode_holds (id, promocode_id, customer, order_ref, idempotency_key,
                                     status, created_at, expires_at)
        SELECT nextval('promocode_redemptions_id_seq'), id, CAST(:customer AS text),
               CAST(:order_ref AS text), CAST(:idempotency_key AS text), 'held', :now,
               :expires_at
        FROM taken
        RETURNING id
    ), {
        emitting(
            PROMOCODE_HELD,
            rows="held, taken",
            payload="json_build_object('hold_id', held.id, 'code', CAST(:code AS text), "
            "'customer', CAST(:customer AS text), 'order', CAST(:order_ref AS text), "
            "'uses_left', taken.usage_count, 'held_at', CAST(:event_time AS text), "
            "'expires_at', CAST(:expires_time AS text))",
            name="hold_events",
        )
    }, {carts.recording(rows="held, taken", use_id="held.id", promocode_id="taken.id")}
    SELECT held.id, taken.usage_count FROM held, taken
    """  # noqa: S608 - constants of this module and of promos.events.outbox
)


def _iso(column: str) -> str:
    """SQL: a timestamptz as ``jsonable`` writes a datetime (``datetime.isoformat`` in UTC)."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || "
        f"CASE WHEN extract(microseconds FROM {utc})::integer % 1000000 = 0 THEN '' "
        f"ELSE to_char({utc}, '.US') END || '+00:00'"
    )


# holds.release's common case: the hold, held and unlapsed, released and its use given back,
# its event written when wanted; the answer's uses left count the code's lapsed holds as free,
# as holds.get_hold does (the released hold is not one of them: it had not lapsed).
_RELEASE = text(
    f"""
    WITH released AS (
        UPDATE promocode_holds SET status = 'released', ended_at = :now
        WHERE id = :hold_id AND {NOT_ENDED_SQL} AND expires_at > :now
        RETURNING id, promocode_id, customer, order_ref, idempotency_key, created_at,
                  expires_at
    ), given AS (
        UPDATE promocodes AS p SET usage_count = p.usage_count + 1
        FROM released
        WHERE p.id = released.promocode_id
        RETURNING p.code, p.usage_count + (
            SELECT count(*) FROM promocode_holds AS h
            WHERE h.promocode_id = p.id AND h.status = 'held' AND h.expires_at <= :now
        ) AS usage_count
    ), {
        emitting(
            PROMOCODE_HOLD_RELEASED,
            rows="released, given",
            payload="json_build_object('hold_id', released.id, 'code', given.code, "
            "'customer', released.customer, 'order', released.order_ref, "
            "'uses_left', given.usage_count, "
            f"'held_at', {_iso('released.created_at')}, "
            f"'expires_at', {_iso('released.expires_at')}, "
            "'released_at', CAST(:event_time AS text))",
            name="release_events",
        )
    }
    SELECT released.id, given.code, released.customer, released.order_ref,
           released.idempotency_key, released.created_at, released.expires_at,
           given.usage_count
    FROM released, given
    """  # noqa: S608 - constants of this module and of promos.events.outbox
)


async def redeem(
    database: Database,
    *,
    code: str,
    customer: str,
    skus: Sequence[str],
    now: datetime,
    idempotency_key: str | None,
) -> Redemption | None:
    """A free use of the code taken as a new redemption, in one statement; None when the
    service must decide (``customer`` normalised by the caller)."""
    statements = database.statements
    if statements is None:
        return None
    try:
        rows = await statements.fetch(
            _REDEEM,
            {
                "code": code,
                "today": now.date(),
                "customer": customer,
                "skus": carts.skus_param(skus),
                "idempotency_key": idempotency_key,
                "now": now,
                "event_time": event_time(now),
            },
        )
    except asyncpg.UniqueViolationError:
        return None  # the same key's twin committed first: the service replays it
    if not rows:
        return None
    metrics.PROMOCODES_REDEEMED.inc()
    redemption_id, uses_left = rows[0]
    return Redemption(redemption_id, code, customer, idempotency_key, now, None, uses_left)


async def hold(
    database: Database,
    *,
    code: str,
    customer: str,
    order: str,
    skus: Sequence[str],
    ttl: timedelta,
    now: datetime,
    idempotency_key: str | None,
) -> Hold | None:
    """A free use of the code taken as a new hold for the order, in one statement; None when
    the service must decide (``customer`` normalised by the caller)."""
    statements = database.statements
    if statements is None:
        return None
    expires_at = now + ttl
    try:
        rows = await statements.fetch(
            _HOLD,
            {
                "code": code,
                "today": now.date(),
                "customer": customer,
                "skus": carts.skus_param(skus),
                "order_ref": order,
                "idempotency_key": idempotency_key,
                "now": now,
                "expires_at": expires_at,
                "event_time": event_time(now),
                "expires_time": event_time(expires_at),
            },
        )
    except asyncpg.UniqueViolationError:
        return None  # the same order's (or key's) twin committed first: the service answers
    if not rows:
        return None
    hold_id, uses_left = rows[0]
    return Hold(
        hold_id, code, customer, order, idempotency_key, HELD, now, expires_at, None, uses_left
    )


# holds._CONFIRM for a group of holds, each with its own time: the holds still held and
# unlapsed are locked in the order of their ids (as an order's cancel and a taker ending
# lapsed holds lock them, so that none waits on another in a cycle), confirmed, made
# redemptions with their ids, and their events written when wanted. A hold not among the
# rows returned is left as it was.
_CONFIRM_GROUP = text(
    f"""
    WITH asked AS (
        SELECT * FROM unnest(CAST(:hold_ids AS bigint[]), CAST(:nows AS timestamptz[]),
                             CAST(:event_times AS text[])) AS a(id, now, event_time)
    ), locked AS (
        SELECT h.id, asked.now, asked.event_time
        FROM asked JOIN promocode_holds AS h ON h.id = asked.id
        WHERE h.{NOT_ENDED_SQL} AND h.expires_at > asked.now
        ORDER BY h.id
        FOR UPDATE OF h
    ), confirmed AS (
        UPDATE promocode_holds AS h SET status = 'confirmed', ended_at = locked.now
        FROM locked
        WHERE h.id = locked.id AND h.{NOT_ENDED_SQL} AND h.expires_at > locked.now
        RETURNING h.id, h.promocode_id, h.customer, h.order_ref, locked.now, locked.event_time
    ), redeemed AS (
        INSERT INTO promocode_redemptions (id, promocode_id, customer, redeemed_at, order_ref)
        SELECT id, promocode_id, customer, now, order_ref FROM confirmed
        RETURNING id
    ), used AS (
        SELECT confirmed.id, confirmed.customer, confirmed.now, confirmed.event_time, p.code,
               p.usage_count
        FROM redeemed JOIN confirmed ON confirmed.id = redeemed.id
        JOIN promocodes AS p ON p.id = confirmed.promocode_id
    ), {confirm_events("used.event_time", order_by="used.id")}
    SELECT id, code, customer, usage_count, now FROM used
    """  # noqa: S608 - constants of this module and of promos.events.outbox
)


class ConfirmAsk(NamedTuple):
    hold_id: int
    now: datetime


async def confirm_group(database: Database, asks: Sequence[ConfirmAsk]) -> list[Redemption | None]:
    """Each hold, still held, made a redemption with its id, in one statement for them all;
    None for each the service must decide (confirmed before, released, lapsed, asked twice)."""
    statements = database.statements
    if statements is None:
        return [None] * len(asks)
    latest = max(ask.now for ask in asks)
    rows = await statements.fetch(
        _CONFIRM_GROUP,
        {
            "hold_ids": [ask.hold_id for ask in asks],
            "nows": [ask.now for ask in asks],
            "event_times": [event_time(ask.now) for ask in asks],
            # The events' own time (the outbox row's, the deliveries' envelope): the group's
            # latest; each payload's redeemed_at is its own confirm's.
            "now": latest,
            "event_time": event_time(latest),
        },
    )
    done = {
        row["id"]: Redemption(
            row["id"], row["code"], row["customer"], None, row["now"], None, row["usage_count"]
        )
        for row in rows
    }
    metrics.PROMOCODES_REDEEMED.inc(len(done))
    # A hold asked for twice in one group was confirmed once: the first ask gets it, the
    # others go to the service, which answers with its redemption as for any confirmed hold.
    return [done.pop(ask.hold_id, None) for ask in asks]


async def release(database: Database, *, hold_id: int, now: datetime) -> Hold | None:
    """The hold, still held, released and its use given back (one statement); None when the
    service must decide (released or confirmed before, lapsed, unknown)."""
    statements = database.statements
    if statements is None:
        return None
    rows = await statements.fetch(
        _RELEASE, {"hold_id": hold_id, "now": now, "event_time": event_time(now)}
    )
    if not rows:
        return None
    row = rows[0]
    return Hold(
        row["id"],
        row["code"],
        row["customer"],
        row["order_ref"],
        row["idempotency_key"],
        RELEASED,
        row["created_at"],
        row["expires_at"],
        now,
        row["usage_count"],
    )
