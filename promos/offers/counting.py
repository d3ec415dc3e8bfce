"""Claims and impressions, counted exactly once each, never lost, on every backend.

PostgreSQL (``Counter``): the claims (or impressions) of many concurrent requests in ONE
statement (``_CLAIMS`` / ``_IMPRESSIONS``): it increments each player's counter on the
(game, player, offer) row with ``INSERT ... ON CONFLICT DO UPDATE`` (a row lock, the newest
version, never a read-modify-write) unless the transaction (impression) id was already recorded,
and records it under its unique (game, id) key in the same statement. A concurrent first use of
one id makes the statement violate that key and be undone whole; run again, it answers that
request as the replay it now is.

SQLite: one writer at a time (``BEGIN IMMEDIATE``): the same steps as plain statements inside
one transaction (``_claim_sqlite``, ``_see_sqlite``).

Citus, where ``promos citus distribute`` placed its functions (``Database.citus_counting``):
the same work as one call of a function delegated whole to the game's worker
(``_CLAIMS_DELEGATED`` / ``_IMPRESSIONS_DELEGATED``, promos/citus.py); claims' events written
after it on the coordinator, in the same transaction. Placed before them: ``_CLAIMS_CITUS``.

A claim counted is an ``offer.claimed`` event when a webhook subscription wants that type:
written by ``_CLAIMS`` itself (``_CLAIMS_LEAN`` while no subscription wants them), or in the
SQLite transaction; a replay counts nothing and emits nothing. Impressions are not events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import BigInteger, Integer, String, Text, Uuid, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from promos.batching import Batcher
from promos.db import Database, Row, UTCDateTime, insert_for
from promos.events.outbox import (
    Demand,
    emit_events,
    emitting,
    event_time,
    postgresql_emit,
    postgresql_wanted_check,
    wanted_cte,
)
from promos.events.types import OFFER_CLAIMED
from promos.observability import metrics
from promos.offers.service import Offer
from promos.offers.tables import offer_claims, offer_impressions, offer_players

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Claimed:
    contents: dict[str, Any]
    next_at: int | None
    replayed: bool  # the transaction id was claimed before: this is that claim's answer


@dataclass(frozen=True, slots=True)
class Seen:
    next_at: int | None
    replayed: bool


async def _claim_sqlite(
    conn: AsyncConnection,
    *,
    offer: Offer,
    player_id: str,
    transaction_id: str,
    purchased_at: int,
    now: datetime,
) -> Claimed:
    """SQLite, inside a transaction: count a claim once per transaction id."""
    done = await _claimed_before(conn, offer.game_id, transaction_id)
    if done is not None:
        return done
    period = offer.spec.period
    count = await _count(conn, offer, player_id, now, claim_count=1)
    next_at = period.next_at(count, now)
    await conn.execute(
        offer_claims.insert().values(
            game_id=offer.game_id,
            transaction_id=transaction_id,
            player_id=player_id,
            offer_id=offer.id,
            offer_version=offer.version,
            purchased_at=purchased_at,
            claimed_at=now,
            contents=offer.spec.contents,
            next_at=next_at,
        )
    )
    return Claimed(offer.spec.contents, next_at, replayed=False)


async def _claimed_before(
    conn: AsyncConnection, game_id: str, transaction_id: str
) -> Claimed | None:
    row = (
        await conn.execute(
            select(offer_claims.c.contents, offer_claims.c.next_at).where(
                offer_claims.c.game_id == game_id,
                offer_claims.c.transaction_id == transaction_id,
            )
        )
    ).first()
    return None if row is None else Claimed(row[0], row[1], replayed=True)


async def _see_sqlite(
    conn: AsyncConnection, *, offer: Offer, player_id: str, impression_id: UUID, now: datetime
) -> Seen:
    """SQLite, inside a transaction: count an impression once per impression id."""
    done = await _seen_before(conn, offer.game_id, impression_id)
    if done is not None:
        return done
    frequency = offer.spec.frequency
    count = await _count(conn, offer, player_id, now, claim_count=0)
    next_at = frequency.next_at(count, now)
    await conn.execute(
        offer_impressions.insert().values(
            game_id=offer.game_id,
            impression_id=impression_id,
            player_id=player_id,
            offer_id=offer.id,
            seen_at=now,
            next_at=next_at,
        )
    )
    return Seen(next_at, replayed=False)


async def _seen_before(conn: AsyncConnection, game_id: str, impression_id: UUID) -> Seen | None:
    row = (
        await conn.execute(
            select(offer_impressions.c.next_at).where(
                offer_impressions.c.game_id == game_id,
                offer_impressions.c.impression_id == impression_id,
            )
        )
    ).first()
    return None if row is None else Seen(row[0], replayed=True)


async def _count(
    conn: AsyncConnection, offer: Offer, player_id: str, now: datetime, *, claim_count: int
) -> int:
    """SQLite: add one claim (``claim_count=1``) or one impression to the player's row."""
    is_claim = claim_count == 1
    insert = insert_for(conn)
    statement = insert(offer_players).values(
        game_id=offer.game_id,
        player_id=player_id,
        offer_id=offer.id,
        claim_count=1 if is_claim else 0,
        impression_count=0 if is_claim else 1,
        last_claim_at=now if is_claim else None,
        last_impression_at=None if is_claim else now,
    )
    counter = offer_players.c.claim_count if is_claim else offer_players.c.impression_count
    stamp = "last_claim_at" if is_claim else "last_impression_at"
    row = (
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    offer_players.c.game_id,
                    offer_players.c.player_id,
                    offer_players.c.offer_id,
                ],
                set_={counter.name: counter + 1, stamp: now},
            ).returning(counter)
        )
    ).one()
    return int(row[0])


# --- many at once ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimAsk:
    offer: Offer
    player_id: str
    transaction_id: str
    purchased_at: int
    now: datetime


@dataclass(frozen=True, slots=True)
class SeenAsk:
    offer: Offer
    player_id: str
    impression_id: UUID
    now: datetime


def claimed_payload(ask: ClaimAsk) -> dict[str, Any]:
    """The ``offer.claimed`` event's payload (``_CLAIMS`` builds the same in SQL)."""
    return {
        "game_id": ask.offer.game_id,
        "offer_id": ask.offer.id,
        "offer_version": ask.offer.version,
        "player_id": ask.player_id,
        "transaction_id": ask.transaction_id,
        "purchased_at": ask.purchased_at,
        "claimed_at": ask.now,
    }


# Every claim counted is an event, in the same statement, when a subscription wants them.
_CLAIM_EVENTS = emitting(
    OFFER_CLAIMED,
    rows="recorded",
    payload="json_build_object('game_id', CAST(:game_id AS text), "
    "'offer_id', recorded.offer_id, 'offer_version', recorded.offer_version, "
    "'player_id', recorded.player_id, 'transaction_id', recorded.transaction_id, "
    "'purchased_at', recorded.purchased_at, 'claimed_at', CAST(:event_time AS text))",
    name="claim_events",
    when="(SELECT yes FROM events_wanted)",
)


def _claims_statement(*, events: bool, citus: bool = False) -> TextClause:
    """PostgreSQL, many claims of one game in ONE statement, each (player, offer) once.

    Statements cannot deadlock: each locks its players' rows in (player, offer) order, then
    (the sort waits for every row of ``counted``) records its ids in id order, so that two
    statements that share ids for other players wait for each other's ids in one order.
    Recorded in request order, they deadlocked (tests/test_offers_concurrency.py).

    With ``events``, each claim counted is an ``offer.claimed`` event; without (lean), the
    statement counts nothing (``events_wanted`` in every row) when a subscription wants them.

    ``citus``: the form Citus runs on one shard (every distributed table named by ``game_id``):
    it does not read the subscriptions or write the outbox (both on the coordinator); the
    caller emits the events in the same transaction (``Counter._claim_round_citus``)."""
    if citus:
        wanted, lean_guard, emit, count, events_wanted = "", "", "", "0", "false"
    else:
        wanted = f"{wanted_cte(OFFER_CLAIMED, name='events_wanted')}, "
        lean_guard = "" if events else "AND NOT (SELECT yes FROM events_wanted)"
        emit = f", {_CLAIM_EVENTS}" if events else ""
        count = "(SELECT count(*) FROM claim_events)" if events else "0"
        events_wanted = "(SELECT yes FROM events_wanted)"
    return text(
        f"""
    WITH {wanted}asks AS (
        SELECT * FROM unnest(:players, :offers, :transactions, :versions, :purchased,
                             :contents, :caps, :next_ats)
            WITH ORDINALITY AS a(player_id, offer_id, transaction_id, version, purchased_at,
                                 contents, cap, next_at, n)
    ), fresh AS (
        -- = ANY(...): index lookups of these ids, whatever the planner thinks of the table
        SELECT * FROM asks WHERE transaction_id NOT IN (
            SELECT transaction_id FROM offer_claims
            WHERE game_id = :game_id AND transaction_id = ANY(:transactions)
        ) {lean_guard}
    ), counted AS (
        INSERT INTO offer_players AS p
            (game_id, player_id, offer_id, claim_count, last_claim_at, impression_count)
        SELECT :game_id, player_id, offer_id, 1, :now, 0 FROM fresh ORDER BY player_id, offer_id
        ON CONFLICT (game_id, player_id, offer_id) DO UPDATE
        SET claim_count = p.claim_count + 1,
            last_claim_at = GREATEST(p.last_claim_at, excluded.last_claim_at)
        RETURNING p.player_id, p.offer_id, p.claim_count
    ), recorded AS (
        INSERT INTO offer_claims (game_id, transaction_id, player_id, offer_id, offer_version,
                                  purchased_at, claimed_at, contents, next_at)
        SELECT :game_id, f.transaction_id, f.player_id, f.offer_id, f.version, f.purchased_at,
               :now, CAST(f.contents AS jsonb),
               CASE WHEN f.cap = 0 OR c.claim_count < f.cap THEN f.next_at END
        FROM fresh AS f JOIN counted AS c USING (player_id, offer_id)
        ORDER BY f.transaction_id
        RETURNING transaction_id, next_at, player_id, offer_id, offer_version, purchased_at
    ){emit}
    SELECT a.n, r.transaction_id IS NOT NULL AS counted, r.next_at,
           -- a replay: the first claim's answer, committed before this statement began
           e.transaction_id IS NOT NULL AS earlier, CAST(e.contents AS text) AS earlier_contents,
           e.next_at AS earlier_next_at,
           {events_wanted} AS events_wanted, {count} AS events
    FROM asks AS a LEFT JOIN recorded AS r USING (transaction_id)
    -- the request's ids only: Citus would bring every claim of the game to the coordinator
    -- to join them there (the join's condition is not pushed into the shard's query)
    LEFT JOIN (
        SELECT transaction_id, contents, next_at FROM offer_claims
        WHERE game_id = :game_id AND transaction_id = ANY(:transactions)
    ) AS e ON e.transaction_id = a.transaction_id
    ORDER BY a.n
    """  # noqa: S608 - put together from this module's constants
    ).bindparams(
        bindparam("game_id", type_=String()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("players", type_=ARRAY(Text())),
        bindparam("offers", type_=ARRAY(Uuid())),
        bindparam("transactions", type_=ARRAY(Text())),
        bindparam("versions", type_=ARRAY(Integer())),
        bindparam("purchased", type_=ARRAY(BigInteger())),
        bindparam("contents", type_=ARRAY(Text())),
        bindparam("caps", type_=ARRAY(Integer())),
        bindparam("next_ats", type_=ARRAY(BigInteger())),
        *([bindparam("event_time", type_=String())] if events else []),
    )


_CLAIMS = _claims_statement(events=True)
_CLAIMS_LEAN = _claims_statement(events=False)
_CLAIMS_CITUS = _claims_statement(events=False, citus=True)

_IMPRESSIONS = text(
    """
    WITH asks AS (
        SELECT * FROM unnest(:players, :offers, :impressions, :caps, :next_ats)
            WITH ORDINALITY AS a(player_id, offer_id, impression_id, cap, next_at, n)
    ), fresh AS (
        SELECT * FROM asks WHERE impression_id NOT IN (
            SELECT impression_id FROM offer_impressions
            WHERE game_id = :game_id AND impression_id = ANY(:impressions)
        )
    ), counted AS (
        INSERT INTO offer_players AS p
            (game_id, player_id, offer_id, claim_count, impression_count, last_impression_at)
        SELECT :game_id, player_id, offer_id, 0, 1, :now FROM fresh ORDER BY player_id, offer_id
        ON CONFLICT (game_id, player_id, offer_id) DO UPDATE
        SET impression_count = p.impression_count + 1,
            last_impression_at = GREATEST(p.last_impression_at, excluded.last_impression_at)
        RETURNING p.player_id, p.offer_id, p.impression_count
    ), recorded AS (
        INSERT INTO offer_impressions (game_id, impression_id, player_id, offer_id, seen_at,
                                       next_at)
        SELECT :game_id, f.impression_id, f.player_id, f.offer_id, :now,
               CASE WHEN f.cap = 0 OR c.impression_count < f.cap THEN f.next_at END
        FROM fresh AS f JOIN counted AS c USING (player_id, offer_id)
        ORDER BY f.impression_id  -- in id order, as claims are: no deadlock
        RETURNING impression_id, next_at
    )
    SELECT a.n, r.impression_id IS NOT NULL AS counted, r.next_at,
           -- a replay: the first impression's answer, committed before this statement began
           e.impression_id IS NOT NULL AS earlier, e.next_at AS earlier_next_at
    FROM asks AS a LEFT JOIN recorded AS r USING (impression_id)
    -- the request's ids only, as for claims
    LEFT JOIN (
        SELECT impression_id, next_at FROM offer_impressions
        WHERE game_id = :game_id AND impression_id = ANY(:impressions)
    ) AS e ON e.impression_id = a.impression_id
    ORDER BY a.n
    """
).bindparams(
    bindparam("game_id", type_=String()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("players", type_=ARRAY(Text())),
    bindparam("offers", type_=ARRAY(Uuid())),
    bindparam("impressions", type_=ARRAY(Uuid())),
    bindparam("caps", type_=ARRAY(Integer())),
    bindparam("next_ats", type_=ARRAY(BigInteger())),
)


# Citus, where ``promos citus distribute`` placed them: a round's claims (impressions) as one
# call of a function delegated whole to the worker holding the game's shard (promos/citus.py),
# with ``_CLAIMS``' (``_IMPRESSIONS``') rules. The game is the first argument: Citus routes
# the call by it.
_CLAIMS_DELEGATED = text(
    "SELECT r_n AS n, r_counted AS counted, r_next_at AS next_at, r_earlier AS earlier, "
    "r_earlier_contents AS earlier_contents, r_earlier_next_at AS earlier_next_at "
    "FROM promos_claim_offers(:game_id, :now, :players, :offers, :transactions, :versions, "
    ":purchased, :contents, :caps, :next_ats)"
).bindparams(
    bindparam("game_id", type_=String()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("players", type_=ARRAY(Text())),
    bindparam("offers", type_=ARRAY(Uuid())),
    bindparam("transactions", type_=ARRAY(Text())),
    bindparam("versions", type_=ARRAY(Integer())),
    bindparam("purchased", type_=ARRAY(BigInteger())),
    bindparam("contents", type_=ARRAY(Text())),
    bindparam("caps", type_=ARRAY(Integer())),
    bindparam("next_ats", type_=ARRAY(BigInteger())),
)

_CLAIMED_WANTED = postgresql_wanted_check(OFFER_CLAIMED)

_IMPRESSIONS_DELEGATED = text(
    "SELECT r_n AS n, r_counted AS counted, r_next_at AS next_at, r_earlier AS earlier, "
    "r_earlier_next_at AS earlier_next_at "
    "FROM promos_see_offers(:game_id, :now, :players, :offers, :impressions, :caps, :next_ats)"
).bindparams(
    bindparam("game_id", type_=String()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("players", type_=ARRAY(Text())),
    bindparam("offers", type_=ARRAY(Uuid())),
    bindparam("impressions", type_=ARRAY(Uuid())),
    bindparam("caps", type_=ARRAY(Integer())),
    bindparam("next_ats", type_=ARRAY(BigInteger())),
)


class Counter:
    """Claims and impressions of many concurrent requests, counted in few statements.

    PostgreSQL: one statement (``_CLAIMS`` / ``_IMPRESSIONS``) per game and round, where a
    round holds each (player, offer) and each transaction or impression id once; the same
    statement answers replays from the earlier row. One that loses a race on an id (a
    concurrent first use commits) is undone whole and run again (``_settled``), and then answers
    that request as a replay. SQLite: one transaction, one request at a time.
    """

    def __init__(
        self,
        database: Database,
        *,
        group_size: int = 64,
        concurrency: int = 2,
        on_events: Callable[[], None] | None = None,
    ) -> None:
        self._database = database
        # Called when offer.claimed events have committed (wakes the dispatcher).
        self._on_events = on_events
        self._claim_events = Demand()
        workers = 1 if database.is_sqlite else concurrency
        self._claims: Batcher[ClaimAsk, Claimed] = Batcher(
            self._claim_group, group_size=group_size, concurrency=workers
        )
        self._seen: Batcher[SeenAsk, Seen] = Batcher(
            self._seen_group, group_size=group_size, concurrency=workers
        )

    async def claim(self, ask: ClaimAsk) -> Claimed:
        claimed = await self._claims.submit(ask)
        if not claimed.replayed:  # its group has committed; a replay was counted the first time
            metrics.OFFER_CLAIMS.inc()
        return claimed

    async def see(self, ask: SeenAsk) -> Seen:
        return await self._seen.submit(ask)

    async def _claim_group(self, asks: Sequence[ClaimAsk]) -> list[Claimed]:
        if self._database.is_sqlite:
            async with self._database.begin() as conn:
                answers = [
                    await _claim_sqlite(
                        conn,
                        offer=a.offer,
                        player_id=a.player_id,
                        transaction_id=a.transaction_id,
                        purchased_at=a.purchased_at,
                        now=a.now,
                    )
                    for a in asks
                ]
                counted = [a for a, c in zip(asks, answers, strict=True) if not c.replayed]
                events = await emit_events(
                    conn,
                    OFFER_CLAIMED,
                    [claimed_payload(a) for a in counted],
                    now=max(a.now for a in asks),
                )
            self._emitted(len(events))
            return answers
        return await _in_rounds(
            asks,
            key=lambda a: a.transaction_id,
            pair=lambda a: (a.offer.game_id, a.player_id, a.offer.id),
            run=self._claim_round,
            replay=lambda first: Claimed(first.contents, first.next_at, replayed=True),
        )

    async def _seen_group(self, asks: Sequence[SeenAsk]) -> list[Seen]:
        if self._database.is_sqlite:
            async with self._database.begin() as conn:
                return [
                    await _see_sqlite(
                        conn,
                        offer=a.offer,
                        player_id=a.player_id,
                        impression_id=a.impression_id,
                        now=a.now,
                    )
                    for a in asks
                ]
        return await _in_rounds(
            asks,
            key=lambda a: str(a.impression_id),
            pair=lambda a: (a.offer.game_id, a.player_id, a.offer.id),
            run=self._seen_round,
            replay=lambda first: Seen(first.next_at, replayed=True),
        )

    async def _claim_round(self, game_id: str, asks: Sequence[ClaimAsk]) -> list[Claimed]:
        params = {
            "game_id": game_id,
            "now": asks[0].now,
            "players": [a.player_id for a in asks],
            "offers": [a.offer.id for a in asks],
            "transactions": [a.transaction_id for a in asks],
            "versions": [a.offer.version for a in asks],
            "purchased": [a.purchased_at for a in asks],
            "contents": [orjson.dumps(a.offer.spec.contents).decode() for a in asks],
            "caps": [a.offer.spec.period.max for a in asks],
            "next_ats": [a.offer.spec.period.next_time(a.now) for a in asks],
            "event_time": event_time(asks[0].now),
        }
        if await self._database.detect_engine():
            if self._database.citus_counting:
                return await self._claim_round_delegated(asks, params)
            return await self._claim_round_citus(asks, params)
        statement = _CLAIMS if self._claim_events.wanted else _CLAIMS_LEAN
        rows = await self._run(statement, params)
        self._claim_events.wanted = rows[0].events_wanted
        if rows[0].events_wanted and statement is _CLAIMS_LEAN:
            # It counted nothing: a subscription wants the events. Again, with them.
            rows = await self._run(_CLAIMS, params)
            self._claim_events.wanted = rows[0].events_wanted
        self._emitted(rows[0].events)
        return _claim_answers(asks, rows)

    async def _claim_round_citus(
        self, asks: Sequence[ClaimAsk], params: dict[str, Any]
    ) -> list[Claimed]:
        """Citus: ``_CLAIMS_CITUS`` on the game's shard, then the claims' events on the
        coordinator, in one transaction."""
        async with self._database.begin() as conn:
            rows = list(await conn.execute(_CLAIMS_CITUS, params))
            counted = [a for a, row in zip(asks, rows, strict=True) if row.counted]
            events = await emit_events(
                conn, OFFER_CLAIMED, [claimed_payload(a) for a in counted], now=asks[0].now
            )
        self._emitted(len(events))
        return _claim_answers(asks, rows)

    async def _claim_round_delegated(
        self, asks: Sequence[ClaimAsk], params: dict[str, Any]
    ) -> list[Claimed]:
        """Citus, the function placed: its call on the game's worker, then the claims' events
        on the coordinator, in one transaction on asyncpg itself (``Database.statements``:
        custom plans, so that Citus sees the game and delegates the call)."""
        driver = self._database.statements
        if driver is None:
            raise RuntimeError("Citus' delegated claims need PostgreSQL")
        written = 0
        # Whether a subscription wants the events: read with BEGIN, before the claims are
        # counted (as for issuing, promos/codes/issue.py).
        async with driver.transaction_checking(_CLAIMED_WANTED) as (fetch, wanted):
            rows = sorted(await fetch(_CLAIMS_DELEGATED, params), key=lambda row: int(row.n))
            counted = [a for a, row in zip(asks, rows, strict=True) if row.counted]
            if counted and wanted:
                payloads = [claimed_payload(a) for a in counted]
                written = len(
                    await fetch(*postgresql_emit(OFFER_CLAIMED, payloads, now=asks[0].now))
                )
        self._emitted(written)
        return _claim_answers(asks, rows)

    async def _seen_round(self, game_id: str, asks: Sequence[SeenAsk]) -> list[Seen]:
        params = {
            "game_id": game_id,
            "now": asks[0].now,
            "players": [a.player_id for a in asks],
            "offers": [a.offer.id for a in asks],
            "impressions": [a.impression_id for a in asks],
            "caps": [a.offer.spec.frequency.max for a in asks],
            "next_ats": [a.offer.spec.frequency.next_time(a.now) for a in asks],
        }
        if await self._database.detect_engine() and self._database.citus_counting:
            rows = await self._run_delegated(_IMPRESSIONS_DELEGATED, params)
        else:
            rows = await self._run(_IMPRESSIONS, params)
        return [
            Seen(row.next_at, replayed=False)
            if row.counted
            else Seen(_earlier(row, row.earlier_next_at), replayed=True)
            for row in rows
        ]

    def _emitted(self, events: int) -> None:
        if events and self._on_events is not None:
            self._on_events()

    async def _run(self, statement: TextClause, params: dict[str, Any]) -> list[Any]:
        async with self._database.autocommit() as conn:
            return list(await conn.execute(statement, params))

    async def _run_delegated(self, statement: TextClause, params: dict[str, Any]) -> list[Any]:
        """Citus: a delegated call as its own transaction, on asyncpg itself (custom plans)."""
        driver = self._database.statements
        if driver is None:
            raise RuntimeError("Citus' delegated impressions need PostgreSQL")
        rows = await driver.fetch(statement, params, record_class=Row)
        return sorted(rows, key=lambda row: int(row.n))


def _claim_answers(asks: Sequence[ClaimAsk], rows: Sequence[Any]) -> list[Claimed]:
    return [
        Claimed(a.offer.spec.contents, row.next_at, replayed=False)
        if row.counted
        else Claimed(
            _earlier(row, orjson.loads(row.earlier_contents)), row.earlier_next_at, replayed=True
        )
        for a, row in zip(asks, rows, strict=True)
    ]


def _earlier(row: Any, value: T) -> T:
    """``value`` of a row's earlier claim or impression, which a row not counted must have."""
    if not row.earlier:
        raise RuntimeError("a claim or impression was neither recorded nor found")
    return value


A = TypeVar("A", ClaimAsk, SeenAsk)
Answer = TypeVar("Answer", Claimed, Seen)


async def _in_rounds(
    asks: Sequence[A],
    *,
    key: Callable[[A], str],
    pair: Callable[[A], tuple[str, str, UUID]],
    run: Callable[[str, Sequence[A]], Awaitable[list[Answer]]],
    replay: Callable[[Answer], Answer],
) -> list[Answer]:
    """Run ``asks`` in rounds that hold each id and each (game, player, offer) once."""
    answers: list[Answer | None] = [None] * len(asks)
    first_of: dict[tuple[str, str], int] = {}
    repeats: list[tuple[int, int]] = []
    pending: list[int] = []
    for i, ask in enumerate(asks):
        id_key = (ask.offer.game_id, key(ask))
        if id_key in first_of:
            repeats.append((i, first_of[id_key]))
        else:
            first_of[id_key] = i
            pending.append(i)
    while pending:
        seen: set[tuple[str, str, UUID]] = set()
        this_round: list[int] = []
        later: list[int] = []
        for i in pending:
            (later if pair(asks[i]) in seen else this_round).append(i)
            seen.add(pair(asks[i]))
        by_game: dict[str, list[int]] = defaultdict(list)
        for i in this_round:
            by_game[asks[i].offer.game_id].append(i)
        for game_id, indices in by_game.items():
            for i, answer in zip(
                indices, await _settled(run, game_id, [asks[i] for i in indices]), strict=True
            ):
                answers[i] = answer
        pending = later
    for i, first in repeats:
        answers[i] = replay(_found(answers[first]))
    return [_found(answer) for answer in answers]


# The unique key's violation, from SQLAlchemy or from asyncpg itself (Citus' delegated calls).
_LOST_RACE = (IntegrityError, asyncpg.UniqueViolationError)


async def _settled(
    run: Callable[[str, Sequence[A]], Awaitable[list[Answer]]], game_id: str, asks: Sequence[A]
) -> list[Answer]:
    """``run(game_id, asks)``, through the races it can lose.

    A statement fails whole when a concurrent first use of one of its ids commits while it
    runs (the unique key); that id is a replay for the next statement, which sees the commit.
    Under heavy replaying a group can lose again on another id: then each half is settled on
    its own, down to statements of one id, which can lose once at most.
    """
    try:
        return await run(game_id, asks)
    except _LOST_RACE:
        if len(asks) == 1:
            return await run(game_id, asks)  # it lost to a use now committed: a replay
    try:
        return await run(game_id, asks)
    except _LOST_RACE:
        half = len(asks) // 2
        return await _settled(run, game_id, asks[:half]) + await _settled(run, game_id, asks[half:])


def _found(answer: T | None) -> T:
    if answer is None:
        raise RuntimeError("a claim or impression was neither recorded nor found")
    return answer
