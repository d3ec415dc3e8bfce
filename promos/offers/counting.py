"""Claims and impressions, counted exactly once each, never lost, on every backend.

PostgreSQL: ONE statement per claim (``_CLAIM``): it increments the player's counter on the
(game, player, offer) row with ``INSERT ... ON CONFLICT DO UPDATE`` (a row lock, the newest
version, never a read-modify-write) unless the transaction id was already recorded, and
records the claim under its unique (game, transaction id) key in the same statement. Two
concurrent claims with one transaction id: the second waits for the first's row lock, then its
insert of the claim violates the unique key and the whole statement (its increment too) is
undone; it then reads the first one's answer. It runs without an enclosing transaction.

SQLite: one writer at a time (``BEGIN IMMEDIATE``): the same steps as plain statements inside
the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Integer, String, Uuid, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.db import UTCDateTime, insert_for
from promos.offers.service import Offer
from promos.offers.tables import offer_claims, offer_impressions, offer_players


@dataclass(frozen=True, slots=True)
class Claimed:
    contents: dict[str, Any]
    next_at: int | None
    replayed: bool  # the transaction id was claimed before: this is that claim's answer


@dataclass(frozen=True, slots=True)
class Seen:
    next_at: int | None
    replayed: bool


_PG_TYPES = (
    bindparam("game_id", type_=String()),
    bindparam("player_id", type_=String()),
    bindparam("offer_id", type_=Uuid()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("max", type_=Integer()),
    bindparam("next_at", type_=BigInteger()),
)

_CLAIM = text(
    """
    WITH counted AS (
        INSERT INTO offer_players AS p
            (game_id, player_id, offer_id, claim_count, last_claim_at, impression_count)
        SELECT :game_id, :player_id, :offer_id, 1, :now, 0
        WHERE NOT EXISTS (
            SELECT FROM offer_claims
            WHERE game_id = :game_id AND transaction_id = :transaction_id
        )
        ON CONFLICT (game_id, player_id, offer_id) DO UPDATE
        SET claim_count = p.claim_count + 1,
            last_claim_at = GREATEST(p.last_claim_at, excluded.last_claim_at)
        RETURNING p.claim_count
    )
    INSERT INTO offer_claims (game_id, transaction_id, player_id, offer_id, offer_version,
                              purchased_at, claimed_at, contents, next_at)
    SELECT :game_id, :transaction_id, :player_id, :offer_id, :version, :purchased_at, :now,
           :contents, CASE WHEN :max = 0 OR claim_count < :max THEN :next_at END
    FROM counted
    RETURNING next_at
    """
).bindparams(
    *_PG_TYPES,
    bindparam("transaction_id", type_=String()),
    bindparam("version", type_=Integer()),
    bindparam("purchased_at", type_=BigInteger()),
    bindparam("contents", type_=JSONB()),
)

_SEEN = text(
    """
    WITH counted AS (
        INSERT INTO offer_players AS p
            (game_id, player_id, offer_id, claim_count, impression_count, last_impression_at)
        SELECT :game_id, :player_id, :offer_id, 0, 1, :now
        WHERE NOT EXISTS (
            SELECT FROM offer_impressions
            WHERE game_id = :game_id AND impression_id = :impression_id
        )
        ON CONFLICT (game_id, player_id, offer_id) DO UPDATE
        SET impression_count = p.impression_count + 1,
            last_impression_at = GREATEST(p.last_impression_at, excluded.last_impression_at)
        RETURNING p.impression_count
    )
    INSERT INTO offer_impressions (game_id, impression_id, player_id, offer_id, seen_at, next_at)
    SELECT :game_id, :impression_id, :player_id, :offer_id, :now,
           CASE WHEN :max = 0 OR impression_count < :max THEN :next_at END
    FROM counted
    RETURNING next_at
    """
).bindparams(*_PG_TYPES, bindparam("impression_id", type_=Uuid()))


async def claim(
    conn: AsyncConnection,
    *,
    offer: Offer,
    player_id: str,
    transaction_id: str,
    purchased_at: int,
    now: datetime,
) -> Claimed:
    """Count a claim of ``offer`` by the player once per transaction id.

    PostgreSQL: give it a connection in autocommit mode (the statement is atomic by itself).
    SQLite: run it inside a transaction.
    """
    period = offer.spec.period
    params = {
        "game_id": offer.game_id,
        "player_id": player_id,
        "offer_id": offer.id,
        "now": now,
        "max": period.max,
        "next_at": period.next_time(now),
        "transaction_id": transaction_id,
        "version": offer.version,
        "purchased_at": purchased_at,
        "contents": offer.spec.contents,
    }
    if conn.dialect.name == "postgresql":
        try:
            row = (await conn.execute(_CLAIM, params)).first()
        except IntegrityError:
            row = None  # a concurrent claim with this transaction id committed first
        if row is not None:
            return Claimed(offer.spec.contents, row[0], replayed=False)
    else:
        done = await _claimed_before(conn, offer.game_id, transaction_id)
        if done is not None:
            return done
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
    done = await _claimed_before(conn, offer.game_id, transaction_id)
    if done is None:
        raise RuntimeError(f"claim {transaction_id!r} was neither recorded nor found")
    return done


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


async def record_impression(
    conn: AsyncConnection, *, offer: Offer, player_id: str, impression_id: UUID, now: datetime
) -> Seen:
    """Count that the player saw ``offer``, once per impression id (same modes as ``claim``)."""
    frequency = offer.spec.frequency
    params = {
        "game_id": offer.game_id,
        "player_id": player_id,
        "offer_id": offer.id,
        "now": now,
        "max": frequency.max,
        "next_at": frequency.next_time(now),
        "impression_id": impression_id,
    }
    if conn.dialect.name == "postgresql":
        try:
            row = (await conn.execute(_SEEN, params)).first()
        except IntegrityError:
            row = None
        if row is not None:
            return Seen(row[0], replayed=False)
    else:
        done = await _seen_before(conn, offer.game_id, impression_id)
        if done is not None:
            return done
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
    done = await _seen_before(conn, offer.game_id, impression_id)
    if done is None:
        raise RuntimeError(f"impression {impression_id} was neither recorded nor found")
    return done


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
