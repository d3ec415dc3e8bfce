"""The offers of each game, held in process for a moment, with indexes to answer quickly.

``GET /available-offers`` is the hot route: reading and matching 1,000 offer templates per
request in SQL would cost more than everything else together. The catalog keeps each game's
offers for ``ttl`` seconds (at most 1 s by default) and drops a game at once when this
process changes it; another process sees a change within ``ttl``, which the ``max-age`` the
route answers with already tells clients to tolerate. ``ttl`` 0 turns the catalog off: then
every request asks the database (``promos.offers.service.matching_offers``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson

from promos.db import Database
from promos.offers import service
from promos.offers.filters import FilterIndex
from promos.offers.service import Game, Offer

MAX_GAMES = 10_000
# Distinct attribute sets remembered per game and second (a game sends a handful: countries,
# platforms); past this many the memo starts over rather than grow.
MAX_SELECTIONS = 1_024


def offer_body(offer: Offer) -> dict[str, Any]:
    """An offer as the Offers seed shows it to a player (``expireAt``: the trigger's end)."""
    spec = offer.spec
    body: dict[str, Any] = {"id": str(offer.id)}
    if spec.product_id is not None:
        body["productId"] = spec.product_id
    if spec.cost is not None:
        body["cost"] = spec.cost
    body["contents"] = spec.contents
    body["metadata"] = spec.metadata
    body["expireAt"] = spec.trigger_to
    return body


@dataclass(frozen=True, slots=True)
class Selection:
    """The offers that one set of attributes selects at one second, ready to answer with.

    ``everything`` is the whole answer for a player whose history touches none of ``ids``
    (most players: a history covers a few of a game's offers), so such a request costs a
    few set lookups and no JSON encoding at all.
    """

    offers: tuple[Offer, ...]
    bodies: tuple[orjson.Fragment, ...]
    ids: frozenset[UUID]
    everything: orjson.Fragment


def select_offers(offers: list[Offer]) -> Selection:
    """A ``Selection`` of these offers (oldest first), encoding each."""
    return _selection(offers, [orjson.Fragment(orjson.dumps(offer_body(o))) for o in offers])


def _selection(offers: list[Offer], bodies: list[orjson.Fragment]) -> Selection:
    placements: dict[str, list[orjson.Fragment]] = {}
    for offer, body in zip(offers, bodies, strict=True):
        placements.setdefault(offer.spec.placement, []).append(body)
    return Selection(
        tuple(offers),
        tuple(bodies),
        frozenset(o.id for o in offers),
        orjson.Fragment(orjson.dumps(placements)),
    )


@dataclass(slots=True)
class GameOffers:
    """One game's offers as loaded at one moment."""

    game: Game
    offers: list[Offer]
    revision: int
    by_id: dict[UUID, Offer] = field(init=False)
    by_product: dict[str, list[Offer]] = field(init=False)
    enabled: list[Offer] = field(init=False)
    bodies: list[orjson.Fragment] = field(init=False)
    index: FilterIndex = field(init=False)
    _triggered: tuple[int, frozenset[int]] = field(init=False)
    _selections: tuple[int, dict[frozenset[tuple[str, str]], Selection]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {o.id: o for o in self.offers}
        self.by_product = {}
        for offer in self.offers:
            if offer.spec.product_id is not None:
                self.by_product.setdefault(offer.spec.product_id, []).append(offer)
        self.enabled = [o for o in self.offers if o.enabled]
        # Encoded once per load: a request's answer is then put together from these bytes.
        self.bodies = [orjson.Fragment(orjson.dumps(offer_body(o))) for o in self.enabled]
        self.index = FilterIndex((n, o.spec.filters) for n, o in enumerate(self.enabled))
        self._triggered = (-(2**63), frozenset())
        self._selections = (-(2**63), {})

    def triggered(self, now_seconds: int) -> frozenset[int]:
        """Positions in ``enabled`` of the offers whose trigger holds at this second."""
        second, positions = self._triggered
        if second != now_seconds:
            positions = frozenset(n for n, o in enumerate(self.enabled) if o.triggered(now_seconds))
            self._triggered = (now_seconds, positions)
        return positions

    def matching(self, attributes: Mapping[str, str], now_seconds: int) -> list[int]:
        """Positions of the enabled, triggered offers matching ``attributes``, oldest first."""
        found = self.index.select(
            attributes, inefficient=self.game.allow_inefficient_queries
        ) & self.triggered(now_seconds)
        return sorted(found)

    def select(self, attributes: Mapping[str, str], now_seconds: int) -> Selection:
        """``matching``, remembered for this second per distinct set of attributes."""
        second, memo = self._selections
        if second != now_seconds or len(memo) >= MAX_SELECTIONS:
            memo = {}
            self._selections = (now_seconds, memo)
        key = frozenset(attributes.items())
        found = memo.get(key)
        if found is None:
            positions = self.matching(attributes, now_seconds)
            found = _selection(
                [self.enabled[n] for n in positions], [self.bodies[n] for n in positions]
            )
            memo[key] = found
        return found


class OfferCatalog:
    """Each game's ``GameOffers``, reloaded after ``ttl`` seconds; concurrent loads shared."""

    def __init__(self, database: Database, *, ttl: float) -> None:
        self._database = database
        self.ttl = ttl
        self._games: dict[str, tuple[float, GameOffers]] = {}
        self._loading: dict[str, asyncio.Future[GameOffers]] = {}
        self._generation: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    async def get(self, game_id: str) -> GameOffers:
        """The game's offers; ``GameNotFound`` if there is no such game."""
        held = self._games.get(game_id)
        if held is not None and held[0] > time.monotonic():
            return held[1]
        waiting = self._loading.get(game_id)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[GameOffers] = asyncio.get_running_loop().create_future()
        self._loading[game_id] = future
        generation = self._generation.get(game_id, 0)
        try:
            loaded = await self._load(game_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(loaded)
            if self.enabled and self._generation.get(game_id, 0) == generation:
                if len(self._games) >= MAX_GAMES:
                    self._games.clear()
                self._games[game_id] = (time.monotonic() + self.ttl, loaded)
            return loaded
        finally:
            if self._loading.get(game_id) is future:
                del self._loading[game_id]

    def invalidate(self, game_id: str) -> None:
        """Forget the game (this process changed it): the next request loads it again."""
        self._generation[game_id] = self._generation.get(game_id, 0) + 1
        self._games.pop(game_id, None)
        self._loading.pop(game_id, None)  # a load in flight may predate the change

    async def _load(self, game_id: str) -> GameOffers:
        held = self._games.get(game_id)
        async with self._database.read() as conn:
            if held is not None:
                # Expired: rebuild only if the game or its offers changed (one key read).
                revision = await service.game_revision(conn, game_id)
                if revision == held[1].revision:
                    return held[1]
            revision = await service.game_revision(conn, game_id)
            game = await service.get_game(conn, game_id)
            offers = await service.game_offers(conn, game_id) if self.enabled else []
        return GameOffers(game, offers, revision or 0)
