"""The lean path of redeem, hold, confirm and release on PostgreSQL: one statement each.

Each use case's common case, a free use taken (or a held hold confirmed or released), is one
data-modifying statement: it takes the use under every rule of ``service._usable`` (the same
WHERE clause, written here in SQL), or gives it back, records the redemption or hold and
writes its event when a subscription wants it, and returns what the answer needs. It runs as
its own transaction on ``Database.statements`` (asyncpg itself, a prepared statement per
connection): one round trip.

Redeems, holds and confirms go in groups (``redeem_group``, ``hold_group``,
``confirm_group``): those of a kind that arrive while its previous groups are running leave
together, one statement for the group, each decided on its own by the same conditions as
when alone (``promos.promocodes.fast`` groups them). The asks of one code share its free
uses in the order they came, as if they had run one after another.

Anything else (no use free, a lapsed hold to give back first, a replay of an Idempotency-Key
or an order, a concurrent twin that committed first, a hold not ``held``) changes nothing here
and answers ``None``: the caller then takes the service path (``service.redeem``,
``holds.hold``, ``holds.confirm``, ``holds.release``), which decides it as it always has. So
the rules have one home, the service, and this module only a faster way through their most
frequent outcome.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import asyncpg
from sqlalchemy import TextClause, text

from promos.db import Database
from promos.events.outbox import emitting, event_time
from promos.events.types import PROMOCODE_HELD, PROMOCODE_HOLD_RELEASED, PROMOCODE_REDEEMED
from promos.observability import metrics
from promos.promocodes import carts
from promos.promocodes.holds import HELD, NOT_ENDED_SQL, RELEASED, Hold, confirm_events
from promos.promocodes.service import Redemption


def _usable(*, today: str, customer: str, skus: str) -> str:
    """SQL: service._usable's rules of the code ``p`` but its uses (its generation's expiry,
    bound customer, products), for a use on ``today`` by ``customer`` of the ``skus``."""
    return f"""EXISTS (
        SELECT FROM promocode_generations AS g
        WHERE g.id = p.generation_id
          AND (g.expires_in IS NULL OR g.expires_in >= {today})
          AND (g.usage_by IS NULL OR g.usage_by = {customer})
          AND (NOT EXISTS (SELECT FROM promocode_products AS pp WHERE pp.generation_id = g.id)
               OR EXISTS (SELECT FROM promocode_products AS pp
                          WHERE pp.generation_id = g.id AND pp.sku = ANY({skus})))
      )"""  # noqa: S608 - SQL expressions of the calling statement, never input


# The asks of a group: one row each, ``n`` their order, from one array per column.
def _asked(columns: Sequence[tuple[str, str]]) -> str:
    """SQL: the CTE ``asked`` of a group's statement, a row per ask from the array parameters
    ``columns`` names (name, SQL type), its ``skus`` read from the JSON array ``cart``."""
    arrays = ", ".join(f"CAST(:{name}s AS {kind}[])" for name, kind in columns)
    names = ", ".join(name for name, _ in columns)
    return f"""asked AS (
        SELECT a.*, ARRAY(SELECT json_array_elements_text(CAST(a.cart AS json))) AS skus
        FROM unnest({arrays}) WITH ORDINALITY AS a({names}, n)
    )"""  # noqa: S608 - names of the calling module, never input


_COMMON = (
    ("code", "text"),
    ("customer", "text"),
    ("idempotency_key", "text"),
    ("cart", "text"),
    ("today", "date"),
    ("now", "timestamptz"),
    ("event_time", "text"),
)


def _granting(refused: str) -> str:
    """SQL: the CTEs taking a use of its code for each ask of ``asked`` that service._usable's
    rules allow and ``refused`` (over ``asked`` and the code ``p``) does not refuse.

    The asks of one code share its free uses in the order they came (their rank), as if they
    had run one after another. Each code's row is locked once, the codes in the order of their
    ids (as every group locks them, so that no two wait on each other in a cycle), its uses
    taken by the number granted. ``made`` holds each granted ask, its new use's id (``id``,
    from the redemptions' sequence) and the uses left after its own (``uses_left``). An ask
    not granted changes nothing.
    """
    usable = _usable(today="asked.today", customer="asked.customer", skus="asked.skus")
    return f"""eligible AS (
        SELECT asked.*, p.id AS promocode_id,
               row_number() OVER (PARTITION BY p.id ORDER BY asked.n) AS rank
        FROM asked JOIN promocodes AS p ON p.code = asked.code
        WHERE {usable} AND NOT ({refused})
    ), locked AS (
        SELECT p.id, p.usage_count FROM promocodes AS p
        WHERE p.id IN (SELECT promocode_id FROM eligible)
        ORDER BY p.id
        FOR NO KEY UPDATE OF p
    ), made AS (
        SELECT nextval('promocode_redemptions_id_seq') AS id, eligible.*,
               locked.usage_count - eligible.rank AS uses_left
        FROM eligible JOIN locked ON locked.id = eligible.promocode_id
        WHERE eligible.rank <= locked.usage_count
        ORDER BY eligible.n
    ), taken AS (
        UPDATE promocodes AS p SET usage_count = p.usage_count - g.uses
        FROM (SELECT promocode_id, count(*) AS uses FROM made GROUP BY promocode_id) AS g
        WHERE p.id = g.promocode_id
    ), carted AS (
        INSERT INTO promocode_use_products (use_id, sku, promocode_id)
        SELECT DISTINCT made.id, sku, made.promocode_id FROM made, unnest(made.skus) AS sku
    )"""  # noqa: S608 - constants of this module


# Redeems in groups (``redeem_group``): a key used before is the service's to replay.
_REDEEM_GROUP = text(
    f"""
    WITH {_asked(_COMMON)}, {
        _granting(
            "asked.idempotency_key IS NOT NULL AND EXISTS ("
            "SELECT FROM promocode_redemptions AS r "
            "WHERE r.promocode_id = p.id AND r.idempotency_key = asked.idempotency_key)"
        )
    }, redeemed AS (
        INSERT INTO promocode_redemptions (id, promocode_id, customer, idempotency_key,
                                           redeemed_at)
        SELECT id, promocode_id, customer, idempotency_key, now FROM made
    ), {
        emitting(
            PROMOCODE_REDEEMED,
            rows="made",
            payload="json_build_object('redemption_id', made.id, 'code', made.code, "
            "'customer', made.customer, 'uses_left', made.uses_left, "
            "'redeemed_at', made.event_time)",
            name="redemption_events",
            order_by="made.n",
        )
    }
    SELECT n, id, uses_left FROM made
    """  # noqa: S608 - constants of this module and of promos.events.outbox
)

# Holds in groups (``hold_group``): a live hold of the order, or a hold of the key, is the
# service's to answer with. Each is looked up by both columns of its unique index, the code's
# id known from the join: by the order alone, a table never analysed yet was walked whole.
_HOLD_GROUP = text(
    f"""
    WITH {
        _asked(
            (
                *_COMMON,
                ("order_ref", "text"),
                ("expires_at", "timestamptz"),
                ("expires_time", "text"),
            )
        )
    }, {
        _granting(
            "EXISTS (SELECT FROM promocode_holds AS h "
            "WHERE h.promocode_id = p.id AND h.order_ref = asked.order_ref "
            "AND h.status IN ('held', 'confirmed')) "
            "OR (asked.idempotency_key IS NOT NULL AND EXISTS ("
            "SELECT FROM promocode_holds AS h "
            "WHERE h.promocode_id = p.id AND h.idempotency_key = asked.idempotency_key))"
        )
    }, held AS (
        INSERT INTO promocode_holds (id, promocode_id, customer, order_ref, idempotency_key,
                                     status, created_at, expires_at)
        SELECT id, promocode_id, customer, order_ref, idempotency_key, 'held', now, expires_at
        FROM made
    ), {
        emitting(
            PROMOCODE_HELD,
            rows="made",
            payload="json_build_object('hold_id', made.id, 'code', made.code, "
            "'customer', made.customer, 'order', made.order_ref, "
            "'uses_left', made.uses_left, 'held_at', made.event_time, "
            "'expires_at', made.expires_time)",
            name="hold_events",
            order_by="made.n",
        )
    }
    SELECT n, id, uses_left FROM made
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


class RedeemAsk(NamedTuple):
    code: str
    customer: str  # normalised by the caller
    skus: Sequence[str]
    now: datetime
    idempotency_key: str | None


class HoldAsk(NamedTuple):
    code: str
    customer: str  # normalised by the caller
    skus: Sequence[str]
    now: datetime
    idempotency_key: str | None
    order: str
    ttl: timedelta


Ask = TypeVar("Ask", RedeemAsk, HoldAsk)


async def _take_group(
    database: Database,
    statement: TextClause,
    asks: Sequence[Ask],
    *,
    names: Callable[[Ask], set[tuple[str, str]]],
    columns: Callable[[Sequence[Ask]], dict[str, list[Any]]],
) -> list[tuple[int, int] | None]:
    """Each ask's new use, its id and the uses left after it, taken by the group's
    ``statement``; None for each the service must decide."""
    statements = database.statements
    if statements is None:
        return [None] * len(asks)
    # A name (an order, a key) asked twice for one code in one group: the later asks go to
    # the service, which answers with the first's use (committed by then).
    seen: set[tuple[str, str, str]] = set()
    sent: list[int] = []
    for index, ask in enumerate(asks):
        mine = {(ask.code, kind, value) for kind, value in names(ask)}
        if not mine & seen:
            seen |= mine
            sent.append(index)
    chosen = [asks[index] for index in sent]
    latest = max(ask.now for ask in chosen)
    try:
        rows = await statements.fetch(
            statement,
            {
                "codes": [ask.code for ask in chosen],
                "customers": [ask.customer for ask in chosen],
                "idempotency_keys": [ask.idempotency_key for ask in chosen],
                "carts": [json.dumps(carts.skus_param(ask.skus)) for ask in chosen],
                "todays": [ask.now.date() for ask in chosen],
                "nows": [ask.now for ask in chosen],
                "event_times": [event_time(ask.now) for ask in chosen],
                # The events' own time (the outbox row's, the deliveries' envelope): the
                # group's latest; each payload's is its own ask's.
                "now": latest,
                "event_time": event_time(latest),
                **columns(chosen),
            },
        )
    except asyncpg.UniqueViolationError:
        # A twin in another group (or process) committed the same order or key first: the
        # service answers each ask of this group.
        return [None] * len(asks)
    made = {row["n"]: (row["id"], row["uses_left"]) for row in rows}
    answers: list[tuple[int, int] | None] = [None] * len(asks)
    for position, index in enumerate(sent, start=1):
        answers[index] = made.get(position)
    return answers


def _key_name(ask: RedeemAsk | HoldAsk) -> set[tuple[str, str]]:
    return set() if ask.idempotency_key is None else {("key", ask.idempotency_key)}


async def redeem_group(database: Database, asks: Sequence[RedeemAsk]) -> list[Redemption | None]:
    """A free use of its code taken for each ask as a new redemption, in one statement for
    them all; None for each the service must decide."""
    taken = await _take_group(
        database, _REDEEM_GROUP, asks, names=_key_name, columns=lambda _chosen: {}
    )
    answers: list[Redemption | None] = []
    for ask, use in zip(asks, taken, strict=True):
        if use is None:
            answers.append(None)
            continue
        metrics.PROMOCODES_REDEEMED.inc()
        redemption_id, uses_left = use
        answers.append(
            Redemption(
                redemption_id, ask.code, ask.customer, ask.idempotency_key, ask.now, None, uses_left
            )
        )
    return answers


def _hold_columns(chosen: Sequence[HoldAsk]) -> dict[str, list[Any]]:
    expiries = [ask.now + ask.ttl for ask in chosen]
    return {
        "order_refs": [ask.order for ask in chosen],
        "expires_ats": expiries,
        "expires_times": [event_time(expires_at) for expires_at in expiries],
    }


async def hold_group(database: Database, asks: Sequence[HoldAsk]) -> list[Hold | None]:
    """A free use of its code taken for each ask as a new hold for its order, in one statement
    for them all; None for each the service must decide."""
    taken = await _take_group(
        database,
        _HOLD_GROUP,
        asks,
        names=lambda ask: {("order", ask.order)} | _key_name(ask),
        columns=_hold_columns,
    )
    return [
        None
        if use is None
        else Hold(
            use[0],
            ask.code,
            ask.customer,
            ask.order,
            ask.idempotency_key,
            HELD,
            ask.now,
            ask.now + ask.ttl,
            None,
            use[1],
        )
        for ask, use in zip(asks, taken, strict=True)
    ]


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
