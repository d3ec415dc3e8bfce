"""Games and offers, made through the offers service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from promos.db import Database
from promos.offers import service
from promos.offers.catalog import OfferCatalog
from promos.offers.service import Game, Offer


async def make_game(
    database: Database,
    *,
    now: datetime,
    game_id: str = "galaxy",
    name: str = "Galaxy Wars",
    metadata: dict[str, Any] | None = None,
) -> Game:
    async with database.begin() as conn:
        return await service.upsert_game(
            conn, game_id=game_id, name=name, metadata=metadata or {}, now=now
        )


def offer_fields(now: datetime, **overrides: Any) -> dict[str, Any]:
    """A valid offer, in the Offers seed's JSON shape, with ``overrides`` applied."""
    seconds = int(now.timestamp())
    fields: dict[str, Any] = {
        "name": "Gems pack",
        "productId": "com.galaxy.gems",
        "gameId": "galaxy",
        "contents": {"gems": 5, "gold": 100},
        "metadata": {"color": "blue"},
        "placement": "store",
        "period": {"every": "", "max": 10},
        "frequency": {"every": "", "max": 10},
        "trigger": {"from": seconds - 3600, "to": seconds + 30 * 86400},
    }
    fields.update(overrides)
    return fields


async def make_offer(
    database: Database,
    *,
    now: datetime,
    enabled: bool = True,
    catalog: OfferCatalog | None = None,
    **overrides: Any,
) -> Offer:
    """An offer made from ``offer_fields(now, **overrides)``; ``catalog`` forgets its game."""
    data = offer_fields(now, **overrides)
    spec = service.make_spec(
        name=data["name"],
        product_id=data.get("productId"),
        cost=data.get("cost"),
        contents=data["contents"],
        metadata=data.get("metadata"),
        placement=data["placement"],
        period=(data["period"]["every"], data["period"]["max"]),
        frequency=(data["frequency"]["every"], data["frequency"]["max"]),
        trigger=(data["trigger"]["from"], data["trigger"]["to"]),
        filters=data.get("filters"),
    )
    async with database.begin() as conn:
        offer = await service.create_offer(conn, game_id=data["gameId"], spec=spec, now=now)
        if not enabled:
            offer = await service.set_enabled(
                conn, game_id=offer.game_id, offer_id=offer.id, enabled=False, now=now
            )
    if catalog is not None:
        catalog.invalidate(offer.game_id)
    return offer
