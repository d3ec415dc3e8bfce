"""Changes to games and offers, each with its audit row in the same transaction.

The native routes and the Offers seed's management routes make them alike, through these.
Claims and impressions are players' traffic, not management: they are not audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.offers import service
from promos.offers.service import Game, Offer, OfferSpec


async def upsert_game(
    conn: AsyncConnection,
    *,
    actor: Principal,
    game_id: str,
    name: str,
    metadata: dict[str, Any],
    now: datetime,
) -> Game:
    """Create or replace the game; recorded as ``game.create`` or ``game.update`` (with before)."""
    before = await service.find_game(conn, game_id, for_update=True)
    game = await service.upsert_game(conn, game_id=game_id, name=name, metadata=metadata, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="game.create" if before is None else "game.update",
        target_type="game",
        target_id=game_id,
        before=before,
        after=game,
        at=now,
    )
    return game


async def create_offer(
    conn: AsyncConnection, *, actor: Principal, game_id: str, spec: OfferSpec, now: datetime
) -> Offer:
    """A new offer of the game, recorded as ``offer.create``."""
    offer = await service.create_offer(conn, game_id=game_id, spec=spec, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="offer.create",
        target_type="offer",
        target_id=offer.id,
        after=offer,
        at=now,
    )
    return offer


async def update_offer(
    conn: AsyncConnection,
    *,
    actor: Principal,
    game_id: str,
    offer_id: UUID,
    spec: OfferSpec,
    now: datetime,
) -> Offer:
    """The offer's next version; recorded with the version it replaced."""
    before = await service.get_offer(conn, game_id=game_id, offer_id=offer_id, for_update=True)
    offer = await service.update_offer(conn, game_id=game_id, offer_id=offer_id, spec=spec, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="offer.update",
        target_type="offer",
        target_id=offer_id,
        before=before,
        after=offer,
        at=now,
    )
    return offer


async def set_enabled(
    conn: AsyncConnection,
    *,
    actor: Principal,
    game_id: str,
    offer_id: UUID,
    enabled: bool,
    now: datetime,
) -> Offer:
    """Enable or disable the offer; recorded as ``offer.enable`` or ``offer.disable``."""
    before = await service.get_offer(conn, game_id=game_id, offer_id=offer_id, for_update=True)
    offer = await service.set_enabled(
        conn, game_id=game_id, offer_id=offer_id, enabled=enabled, now=now
    )
    await audit.record(
        conn,
        actor=actor,
        action="offer.enable" if enabled else "offer.disable",
        target_type="offer",
        target_id=offer_id,
        before=before,
        after=offer,
        at=now,
    )
    return offer
