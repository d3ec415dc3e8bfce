"""What a player sees and does: available offers, offer info, claims and impressions.

These use cases read the game's offers from the ``OfferCatalog`` (or, with the catalog off,
from the database), and the player's own history with one primary-key range read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.batching import Batcher
from promos.db import Database, DriverReads
from promos.offers import service
from promos.offers.catalog import OfferCatalog, offer_body, select_offers
from promos.offers.counting import ClaimAsk, Claimed, Counter, Seen, SeenAsk
from promos.offers.errors import GameNotFound, OfferNotFound
from promos.offers.rules import Explanation, explain_offers
from promos.offers.service import Game, Offer, PlayerOffer


@dataclass(frozen=True, slots=True)
class Available:
    """The answer: offers by placement, as JSON-able values or already-encoded JSON."""

    body: dict[str, list[orjson.Fragment]] | orjson.Fragment
    max_age: int


@asynccontextmanager
async def _one_statement(database: Database) -> AsyncIterator[AsyncConnection]:
    """PostgreSQL: autocommit (one round trip for one atomic statement); SQLite: a transaction."""
    if database.is_sqlite:
        async with database.begin() as conn:
            yield conn
    else:
        async with database.autocommit() as conn:
            yield conn


@asynccontextmanager
async def _history_source(database: Database) -> AsyncIterator[AsyncConnection | DriverReads]:
    """PostgreSQL: asyncpg itself (``DriverReads``, the hot route's read); SQLite: a read
    transaction (it does not queue behind writers)."""
    if database.reads is not None:
        yield database.reads
    else:
        async with database.read() as conn:
            yield conn


def max_age(game: Game, default: int) -> int:
    age = game.cache_max_age
    return default if age is None else age


class HistoryReader:
    """Players' histories for the hot route, read for many concurrent requests at once."""

    def __init__(self, database: Database, *, group_size: int = 64, concurrency: int = 4) -> None:
        self._database = database
        self._batcher: Batcher[tuple[str, str], dict[UUID, PlayerOffer]] = Batcher(
            self._read, group_size=group_size, concurrency=concurrency
        )

    async def read(self, game_id: str, player_id: str) -> dict[UUID, PlayerOffer]:
        """Everything the player claimed or saw in the game, by offer."""
        return await self._batcher.submit((game_id, player_id))

    async def _read(self, asks: Sequence[tuple[str, str]]) -> list[dict[UUID, PlayerOffer]]:
        by_game: dict[str, list[str]] = defaultdict(list)
        for game_id, player_id in asks:
            by_game[game_id].append(player_id)
        async with _history_source(self._database) as source:
            found = {
                game_id: await service.player_histories(source, game_id=game_id, player_ids=players)
                for game_id, players in by_game.items()
            }
        return [found[game_id][player_id] for game_id, player_id in asks]


async def available_offers(
    *,
    database: Database,
    catalog: OfferCatalog,
    histories: HistoryReader,
    game_id: str,
    player_id: str,
    attributes: Mapping[str, str],
    now: datetime,
    default_max_age: int,
) -> Available:
    """Per placement, the offers the player may get now (``GameNotFound`` for no such game)."""
    now_seconds = int(now.timestamp())
    try:
        held = await catalog.get(game_id)
    except GameNotFound:
        return Available({}, default_max_age)  # the seed's route knows no 404: nothing to offer
    age = max_age(held.game, default_max_age)
    if catalog.enabled:
        selection = held.select(attributes, now_seconds)
    else:
        async with _one_statement(database) as conn:
            found = await service.matching_offers(
                conn, game=held.game, attributes=attributes, now_seconds=now_seconds
            )
        selection = select_offers(found)
    if not selection.offers:
        return Available({}, age)
    history = await histories.read(game_id, player_id)
    if selection.ids.isdisjoint(history):
        return Available(selection.everything, age)  # no cap of the player's can apply
    placements: dict[str, list[orjson.Fragment]] = {}
    for offer, body in zip(selection.offers, selection.bodies, strict=True):
        seen = history.get(offer.id)
        # Without history every cap allows (a count of 0 is under any maximum).
        if seen is None or service.available_to(offer, seen, now):
            placements.setdefault(offer.spec.placement, []).append(body)
    return Available(placements, age)


async def _offer(
    database: Database, catalog: OfferCatalog, game_id: str, offer_id: UUID
) -> tuple[Game, Offer]:
    held = await catalog.get(game_id)
    if catalog.enabled:
        offer = held.by_id.get(offer_id)
        if offer is None:
            raise OfferNotFound(f"offer {offer_id} of game {game_id!r} does not exist")
        return held.game, offer
    async with database.read() as conn:
        return held.game, await service.get_offer(conn, game_id=game_id, offer_id=offer_id)


async def offer_info(
    *,
    database: Database,
    catalog: OfferCatalog,
    game_id: str,
    offer_id: UUID,
    default_max_age: int,
) -> tuple[dict[str, Any], int]:
    """The offer as a player sees it, and the ``max-age`` to answer with."""
    game, offer = await _offer(database, catalog, game_id, offer_id)
    return offer_body(offer), max_age(game, default_max_age)


async def claim_offer(
    *,
    database: Database,
    catalog: OfferCatalog,
    counter: Counter,
    game_id: str,
    player_id: str,
    offer_id: UUID | None,
    product_id: str | None,
    transaction_id: str,
    purchased_at: int,
    now: datetime,
) -> Claimed:
    """Count a claim once per transaction id; the offer by id, or by productId + timestamp."""
    if offer_id is not None:
        _, offer = await _offer(database, catalog, game_id, offer_id)
    else:
        offer = await _by_product(database, catalog, game_id, product_id or "", purchased_at)
    return await counter.claim(
        ClaimAsk(
            offer=offer,
            player_id=player_id,
            transaction_id=transaction_id,
            purchased_at=purchased_at,
            now=now,
        )
    )


async def _by_product(
    database: Database, catalog: OfferCatalog, game_id: str, product_id: str, purchased_at: int
) -> Offer:
    held = await catalog.get(game_id)
    if catalog.enabled:
        candidates = held.by_product.get(product_id, [])
    else:
        async with database.read() as conn:
            candidates = await service.offers_with_product(
                conn, game_id=game_id, product_id=product_id
            )
    offer = service.pick_claimed(candidates, purchased_at)
    if offer is None:
        raise OfferNotFound(f"game {game_id!r} has no offer with productId {product_id!r}")
    return offer


async def see_offer(
    *,
    database: Database,
    catalog: OfferCatalog,
    counter: Counter,
    game_id: str,
    player_id: str,
    offer_id: UUID,
    impression_id: UUID,
    now: datetime,
) -> Seen:
    """Count an impression once per impression id."""
    _, offer = await _offer(database, catalog, game_id, offer_id)
    return await counter.see(
        SeenAsk(offer=offer, player_id=player_id, impression_id=impression_id, now=now)
    )


async def explain(
    *,
    database: Database,
    catalog: OfferCatalog,
    game_id: str,
    player_id: str,
    attributes: Mapping[str, str],
    now: datetime,
) -> Explanation:
    """Every offer of the game for the player now: shown as ``available_offers`` would, or
    left out by the first rule that fails (``GameNotFound`` for no such game)."""
    held = await catalog.get(game_id)  # the offers the hot route reads, as it reads them
    async with database.read() as conn:
        offers = held.offers if catalog.enabled else await service.game_offers(conn, game_id)
        history = await service.player_history(conn, game_id=game_id, player_id=player_id)
    return explain_offers(
        game=held.game,
        offers=offers,
        histories=history,
        player_id=player_id,
        attributes=attributes,
        now=now,
    )
