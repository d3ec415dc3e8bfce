"""Offers at a glance: claims and impressions per day, in every game.

Read through each game's (game, time) index: the statement names the games, so that it walks
one range of times per game and never scans the claims or impressions.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.daily import Daily, Days, per_day
from promos.offers.tables import games, offer_claims, offer_impressions


async def claims_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many claims were counted on each of ``days`` (a replayed claim is not one)."""
    every_game = select(games.c.id).scalar_subquery()
    return await per_day(
        conn, offer_claims.c.claimed_at, offer_claims.c.game_id.in_(every_game), days=days
    )


async def impressions_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many impressions were counted on each of ``days``."""
    every_game = select(games.c.id).scalar_subquery()
    return await per_day(
        conn, offer_impressions.c.seen_at, offer_impressions.c.game_id.in_(every_game), days=days
    )


async def game_claims_per_day(conn: AsyncConnection, *, game_id: str, days: Days) -> Daily:
    """The game's claims counted on each of ``days``."""
    return await per_day(
        conn, offer_claims.c.claimed_at, offer_claims.c.game_id == game_id, days=days
    )


async def game_impressions_per_day(conn: AsyncConnection, *, game_id: str, days: Days) -> Daily:
    """The game's impressions counted on each of ``days``."""
    return await per_day(
        conn, offer_impressions.c.seen_at, offer_impressions.c.game_id == game_id, days=days
    )
