"""The native games and offers API under ``/v1`` (management: every route needs a credential)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, status

from promos.auth.service import Principal
from promos.http.deps import CurrentPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.scopes import listed_ids, needs, path
from promos.offers import changes, player, service
from promos.offers.errors import GameNotFound, OfferNotFound
from promos.offers.schemas import (
    GAME_ID_PATTERN,
    ExplanationIn,
    ExplanationOut,
    GameIn,
    GameOut,
    GamePage,
    OfferIn,
    OfferOut,
    OfferPage,
)
from promos.offers.service import check_game_metadata
from promos.validation import MAX_NAME_LENGTH

# A game outside a key's scope answers as an unknown one.
GAME = path("game_id", unknown=lambda v: GameNotFound(f"game {v.path['game_id']!r} does not exist"))
OFFER = path(
    "game_id",
    unknown=lambda v: OfferNotFound(
        f"offer {v.path['offer_id']} of game {v.path['game_id']!r} does not exist"
    ),
)

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1",
    tags=["offers"],
    responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)

GameIdPath = Annotated[str, Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=GAME_ID_PATTERN)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}


@router.put("/games/{game_id}", dependencies=[needs("games", "manage", at=path("game_id"))])
async def put_game(
    game_id: GameIdPath, body: GameIn, state: State, principal: CurrentPrincipal
) -> GameOut:
    """Create the game, or replace its name and metadata (``cacheMaxAge``,
    ``allowInefficientQueries``)."""
    metadata = check_game_metadata(body.metadata)
    async with state.database.begin() as conn:
        game = await changes.upsert_game(
            conn,
            actor=principal,
            game_id=game_id,
            name=body.name,
            metadata=metadata,
            now=state.clock(),
        )
    state.offers.invalidate(game_id)
    return GameOut.of(game)


@router.get("/games", dependencies=[needs("games", "read", listed=True)])
async def list_games(
    state: State, principal: CurrentPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> GamePage:
    """Games, by id (for a key scoped to some games, those)."""
    after_key = decode_cursor(cursor, (str,))
    only = listed_ids(principal, "games", "read")
    async with state.database.begin() as conn:
        page = await service.games_page(conn, limit=limit, after_key=after_key, only=only)
    return GamePage(items=[GameOut.of(g) for g in page.items], **page_fields(page))


@router.get("/games/{game_id}", dependencies=[needs("games", "read", at=GAME)], responses=NOT_FOUND)
async def get_game(game_id: GameIdPath, state: State, _: CurrentPrincipal) -> GameOut:
    async with state.database.begin() as conn:
        return GameOut.of(await service.get_game(conn, game_id))


@router.post(
    "/games/{game_id}/offers",
    dependencies=[needs("games", "manage", at=GAME)],
    status_code=status.HTTP_201_CREATED,
    responses=NOT_FOUND,
)
async def create_offer(
    game_id: GameIdPath, body: OfferIn, state: State, principal: CurrentPrincipal
) -> OfferOut:
    """A new offer template of the game: enabled, version 1."""
    spec = body.to_spec()
    async with state.database.begin() as conn:
        offer = await changes.create_offer(
            conn, actor=principal, game_id=game_id, spec=spec, now=state.clock()
        )
    state.offers.invalidate(game_id)
    return OfferOut.of(offer)


@router.get("/games/{game_id}/offers", dependencies=[needs("games", "read", at=path("game_id"))])
async def list_offers(
    game_id: GameIdPath,
    state: State,
    _: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> OfferPage:
    """The game's offers, oldest first."""
    after_key = decode_cursor(cursor, (datetime, UUID))
    async with state.database.begin() as conn:
        page = await service.offers_page(conn, game_id=game_id, limit=limit, after_key=after_key)
    return OfferPage(items=[OfferOut.of(o) for o in page.items], **page_fields(page))


@router.get(
    "/games/{game_id}/offers/{offer_id}",
    dependencies=[needs("games", "read", at=OFFER)],
    responses=NOT_FOUND,
)
async def get_offer(
    game_id: GameIdPath, offer_id: UUID, state: State, _: CurrentPrincipal
) -> OfferOut:
    async with state.database.begin() as conn:
        return OfferOut.of(await service.get_offer(conn, game_id=game_id, offer_id=offer_id))


@router.put(
    "/games/{game_id}/offers/{offer_id}",
    dependencies=[needs("games", "manage", at=OFFER)],
    responses=NOT_FOUND,
)
async def update_offer(
    game_id: GameIdPath, offer_id: UUID, body: OfferIn, state: State, principal: CurrentPrincipal
) -> OfferOut:
    """The offer's next version: the same id, a new key, version + 1."""
    spec = body.to_spec()
    async with state.database.begin() as conn:
        offer = await changes.update_offer(
            conn, actor=principal, game_id=game_id, offer_id=offer_id, spec=spec, now=state.clock()
        )
    state.offers.invalidate(game_id)
    return OfferOut.of(offer)


async def _set_enabled(
    state: State, actor: Principal, game_id: str, offer_id: UUID, *, enabled: bool
) -> OfferOut:
    async with state.database.begin() as conn:
        offer = await changes.set_enabled(
            conn,
            actor=actor,
            game_id=game_id,
            offer_id=offer_id,
            enabled=enabled,
            now=state.clock(),
        )
    state.offers.invalidate(game_id)
    return OfferOut.of(offer)


@router.post(
    "/games/{game_id}/offers/{offer_id}/enable",
    dependencies=[needs("games", "manage", at=OFFER)],
    responses=NOT_FOUND,
)
async def enable_offer(
    game_id: GameIdPath, offer_id: UUID, state: State, principal: CurrentPrincipal
) -> OfferOut:
    return await _set_enabled(state, principal, game_id, offer_id, enabled=True)


@router.post(
    "/games/{game_id}/offers/{offer_id}/disable",
    dependencies=[needs("games", "manage", at=OFFER)],
    responses=NOT_FOUND,
)
async def disable_offer(
    game_id: GameIdPath, offer_id: UUID, state: State, principal: CurrentPrincipal
) -> OfferOut:
    return await _set_enabled(state, principal, game_id, offer_id, enabled=False)


@router.post(
    "/games/{game_id}/offer-explanations",
    dependencies=[needs("games", "read", at=GAME)],
    responses=NOT_FOUND,
)
async def explain_offers(
    game_id: GameIdPath, body: ExplanationIn, state: State, _: CurrentPrincipal
) -> ExplanationOut:
    """Why not? What `/available-offers` gives the player now, and for every offer of the
    game it leaves out, the first rule that does (in words). Changes nothing."""
    explanation = await player.explain(
        database=state.database,
        catalog=state.offers,
        game_id=game_id,
        player_id=body.player_id,
        attributes=body.attributes,
        now=state.clock(),
    )
    return ExplanationOut.of(explanation)
