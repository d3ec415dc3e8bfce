"""The Offers API (seed 004), exactly at its paths: games, offers, and the player routes.

Errors take the seed's shape ``{"error": <name>, "code": "OFF-nnn", "description": <what>}``.
Management routes (games, offers) need a credential (HTTP Basic as the seed has it, or any
Promos credential); the player routes (available offers, offer info, claim, impressions) are
public. ``GET /available-offers`` and ``PUT /offers/claim`` are also served by lean ASGI
endpoints (``fast_routes``) with the same checks; the FastAPI routes document them.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Scope

from promos.auth.service import Principal
from promos.errors import (
    BadRequest,
    Conflict,
    Internal,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    PromosError,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
)
from promos.http.deps import CurrentPrincipal, State, route_of
from promos.http.errors import ErrorShape, headers_for, invalid_input, status_for
from promos.http.fastpath import FastEndpoint, header
from promos.http.ratelimit import OffersLimit, client_key
from promos.http.responses import JSON
from promos.http.routes import ApiErrors, error_route_class
from promos.http.scopes import KeyWhenSet, Need, Values, listed_ids, needs
from promos.http.scopes import body as scope_body
from promos.http.scopes import path as scope_path
from promos.http.scopes import query as scope_query
from promos.observability.requests import set_principal
from promos.offers import changes, player, service
from promos.offers.counting import Claimed
from promos.offers.errors import BadParameter, GameNotFound, InvalidOffer, OfferNotFound
from promos.offers.filters import filters_json
from promos.offers.schemas import (
    GAME_ID_PATTERN,
    CapIn,
    CapOut,
    JsonObject,
    JsonObjectIn,
    PlayerId,
    Text255,
    TriggerIn,
    TriggerOut,
)
from promos.offers.service import Offer, check_game_metadata
from promos.state import AppState
from promos.validation import (
    BELOW_2_63,
    MAX_NAME_LENGTH,
    MAX_OFFSET,
    Name,
    has_control_character,
)

log = logging.getLogger(__name__)

AVAILABLE_PATH = "/available-offers"
CLAIM_PATH = "/offers/claim"
IMPRESSIONS_PATH = "/offers/{offer_id}/impressions"
OFFERS_PATH = "/offers"

_GAME_ID = re.compile(GAME_ID_PATTERN)
GameId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=GAME_ID_PATTERN)]

# The seed names its errors; Promos' categories map onto them.
_NAMES: tuple[tuple[type[PromosError], str, str], ...] = (
    (Unavailable, "DatabaseError", "OFF-000"),
    (BadRequest, "BadRequestError", "OFF-001"),
    (InvalidInput, "ValidationFailedError", "OFF-002"),
    (NotFound, "NotFoundError", "OFF-003"),
    (Conflict, "ConflictError", "OFF-004"),
    (Unauthenticated, "UnauthorizedError", "OFF-005"),
    (PermissionDenied, "ForbiddenError", "OFF-006"),
    (PayloadTooLarge, "PayloadTooLargeError", "OFF-007"),
    (TooManyRequests, "TooManyRequestsError", "OFF-010"),
    (Internal, "InternalError", "OFF-009"),
)


def offers_body(exc: PromosError) -> dict[str, str]:
    """The seed's error shape."""
    for kind, name, code in _NAMES:
        if isinstance(exc, kind):
            return {"error": name, "code": code, "description": exc.message}
    return {"error": "RequestError", "code": "OFF-008", "description": exc.message}


def offers_error(status: int, exc: PromosError) -> Response:
    return JSON(offers_body(exc), status_code=status, headers=headers_for(exc))


class OffersError(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "NotFoundError", "code": "OFF-003", "description": "offer not found"}
            ]
        },
        use_attribute_docstrings=True,
    )

    error: str
    """The error's name, e.g. NotFoundError."""
    code: str
    """The seed's code, e.g. OFF-003."""
    description: str
    """What went wrong, for a person."""


OFFERS_ERRORS = ApiErrors(OffersError, status_for)
management = APIRouter(
    tags=["Offers (compat)"],
    route_class=error_route_class(offers_error, OFFERS_ERRORS),
)
players = APIRouter(
    tags=["Offers (compat)"],
    route_class=error_route_class(offers_error, OFFERS_ERRORS),
    # Rate limited per client address when PROMOS_RATE_LIMIT_OFFERS is set (off by default).
    dependencies=[OffersLimit],
)
MANAGED: dict[int | str, dict[str, Any]] = {401: {"model": OffersError}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": OffersError}}
BAD_REQUEST: dict[int | str, dict[str, Any]] = {400: {"model": OffersError}}


# --- games -----------------------------------------------------------------------------------


class OffersGameIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Galaxy", "metadata": {"cacheMaxAge": 60}}]},
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    name: Name
    """The game's name."""
    metadata: JsonObjectIn | None = None
    """CacheMaxAge (seconds) and allowInefficientQueries, and free data."""


class GameIdOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    gameId: str  # noqa: N815 - the seed's field name
    """The game's id."""


class OffersGameOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    """The game's id."""
    name: str
    """The game's name."""
    metadata: JsonObject
    """Its settings and free data."""


@management.put(
    "/games/{game_id}",
    dependencies=[needs("games", "manage", at=scope_path("game_id"))],
    responses=MANAGED,
)
async def upsert_game(
    game_id: Annotated[str, Path(max_length=MAX_NAME_LENGTH, pattern=GAME_ID_PATTERN)],
    body: OffersGameIn,
    state: State,
    principal: CurrentPrincipal,
) -> GameIdOut:
    """Insert the game, or update its name and metadata (``:id``: ``^[^-][a-zA-Z0-9-_]*$``)."""
    metadata = check_game_metadata(body.metadata)
    async with state.database.begin() as conn:
        await changes.upsert_game(
            conn,
            actor=principal,
            game_id=game_id,
            name=body.name,
            metadata=metadata,
            now=state.clock(),
        )
    state.offers.invalidate(game_id)
    return GameIdOut(gameId=game_id)


@management.get("/games", dependencies=[needs("games", "read", listed=True)], responses=MANAGED)
async def list_games(state: State, principal: CurrentPrincipal) -> list[OffersGameOut]:
    """Every game (for a key scoped to some games, those)."""
    listed = listed_ids(principal, "games", "read")
    async with state.database.begin() as conn:
        found = await service.list_games(conn)
    return [
        OffersGameOut(id=g.id, name=g.name, metadata=g.metadata)
        for g in found
        if listed is None or g.id in listed
    ]


# --- offers ----------------------------------------------------------------------------------


class OffersOfferIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Gems pack",
                    "productId": "com.galaxy.gems",
                    "gameId": "galaxy",
                    "contents": {"gems": 500},
                    "placement": "store",
                    "period": {"every": "24h", "max": 1},
                    "frequency": {"every": "1h", "max": 3},
                    "trigger": {"from": 0, "to": 4000000000},
                }
            ]
        },
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    name: Name
    """The offer's name."""
    productId: Text255 | None = None  # noqa: N815 - the seed's field names
    """The store's product id (a product id or a cost, or both)."""
    cost: JsonObjectIn | None = None
    """What the offer costs, free-form."""
    gameId: GameId  # noqa: N815
    """The game (it must exist)."""
    contents: JsonObjectIn
    """What the player gets, free-form."""
    placement: Text255
    """Where in the game it shows."""
    period: CapIn
    """At most `max` claims per `every`."""
    frequency: CapIn
    """At most `max` impressions per `every`."""
    trigger: TriggerIn
    """The window it is offered in."""
    metadata: JsonObjectIn | None = None
    """Free data."""
    filters: JsonObjectIn | None = None
    """Attributes a player must match."""

    def to_spec(self) -> service.OfferSpec:
        return service.make_spec(
            name=self.name,
            product_id=self.productId,
            cost=self.cost,
            contents=self.contents,
            metadata=self.metadata,
            placement=self.placement,
            period=(self.period.every, self.period.max),
            frequency=(self.frequency.every, self.frequency.max),
            trigger=(self.trigger.from_, self.trigger.to),
            filters=self.filters,
        )


class OffersOfferOut(BaseModel):
    """An offer template in the seed's shape (``key`` is left out where the seed does)."""

    id: Annotated[UUID, Field(description="the offer's id, the same across its versions")]
    key: Annotated[UUID | None, Field(description="this version's own id")] = None
    name: Annotated[str, Field(description="the offer's name")]
    productId: Annotated[str | None, Field(description="the store's product id")]  # noqa: N815
    cost: Annotated[JsonObject | None, Field(description="what the offer costs, as sent")]
    gameId: Annotated[str, Field(description="the game the offer belongs to")]  # noqa: N815
    contents: Annotated[JsonObject, Field(description="what the player gets, as sent")]
    metadata: Annotated[JsonObject | None, Field(description="free data, as sent")]
    placement: Annotated[str, Field(description="where in the game the offer shows")]
    period: Annotated[CapOut, Field(description="at most `max` claims per `every`")]
    frequency: Annotated[CapOut, Field(description="at most `max` impressions per `every`")]
    trigger: Annotated[TriggerOut, Field(description="the window of the player's progress")]
    enabled: Annotated[bool, Field(description="whether players can get the offer")]
    version: Annotated[int, Field(description="1 for a new offer, one more per update")]
    filters: Annotated[JsonObject, Field(description="the attributes a player must match")]


class OffersOfferPage(BaseModel):
    offers: Annotated[list[OffersOfferOut], Field(description="this page's offers")]
    pages: Annotated[int, Field(description="how many pages of this size there are")]


class Empty(BaseModel):
    """The seed's ``{}``."""

    model_config = ConfigDict(extra="forbid")


def offer_json(offer: Offer, *, key: bool = True) -> dict[str, Any]:
    """An offer template in the seed's shape (``key``: the version's own id)."""
    spec = offer.spec
    body: dict[str, Any] = {"id": str(offer.id)}
    if key:
        body["key"] = str(offer.key)
    body.update(
        name=spec.name,
        productId=spec.product_id,
        cost=spec.cost,
        gameId=offer.game_id,
        contents=spec.contents,
        metadata=spec.metadata,
        placement=spec.placement,
        period={"every": spec.period.every, "max": spec.period.max},
        frequency={"every": spec.frequency.every, "max": spec.frequency.max},
        trigger={"from": spec.trigger_from, "to": spec.trigger_to},
        enabled=offer.enabled,
        version=offer.version,
        filters=filters_json(spec.filters),
    )
    return body


def _game_unknown(values: Values) -> InvalidOffer:
    # What creating an offer answers for a game that does not exist.
    found = values.body.get("gameId")
    return InvalidOffer(f"gameId: {GameNotFound(f'game {found!r} does not exist').message}")


def _offer_unknown(values: Values) -> OfferNotFound:
    game_id = values.body.get("gameId") or values.query.get("game-id")
    offer_id = values.path.get("offer_id")
    return OfferNotFound(f"offer {offer_id} of game {game_id!r} does not exist")


@management.post(
    OFFERS_PATH,
    dependencies=[needs("games", "manage", at=scope_body("gameId", unknown=_game_unknown))],
    responses=MANAGED,
    response_model=OffersOfferOut,
)
async def create_offer(body: OffersOfferIn, state: State, principal: CurrentPrincipal) -> JSON:
    """Insert a new offer template: enabled, version 1. Its game must exist (422 otherwise)."""
    spec = body.to_spec()
    try:
        async with state.database.begin() as conn:
            offer = await changes.create_offer(
                conn, actor=principal, game_id=body.gameId, spec=spec, now=state.clock()
            )
    except GameNotFound as exc:
        raise InvalidOffer(f"gameId: {exc.message}") from None
    state.offers.invalidate(body.gameId)
    return JSON(offer_json(offer, key=False))


class VersionOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: UUID
    """The offer's id."""
    version: int
    """The new version."""


@management.put(
    "/offers/{offer_id}",
    dependencies=[needs("games", "manage", at=scope_body("gameId", unknown=_offer_unknown))],
    responses={**MANAGED, **NOT_FOUND},
)
async def update_offer(
    offer_id: UUID, body: OffersOfferIn, state: State, principal: CurrentPrincipal
) -> VersionOut:
    """A new version of the offer (same id); 404 if the game has no such offer."""
    spec = body.to_spec()
    async with state.database.begin() as conn:
        offer = await changes.update_offer(
            conn,
            actor=principal,
            game_id=body.gameId,
            offer_id=offer_id,
            spec=spec,
            now=state.clock(),
        )
    state.offers.invalidate(body.gameId)
    return VersionOut(id=offer.id, version=offer.version)


QueryGameId = Annotated[
    str,
    Query(
        alias="game-id",
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=GAME_ID_PATTERN,
        description="the game",
    ),
]


async def _set_enabled(
    state: AppState, actor: Principal, game_id: str, offer_id: UUID, *, enabled: bool
) -> JSON:
    async with state.database.begin() as conn:
        await changes.set_enabled(
            conn,
            actor=actor,
            game_id=game_id,
            offer_id=offer_id,
            enabled=enabled,
            now=state.clock(),
        )
    state.offers.invalidate(game_id)
    return JSON({})


@management.put(
    "/offers/{offer_id}/enable",
    dependencies=[needs("games", "manage", at=scope_query("game-id", unknown=_offer_unknown))],
    responses={**MANAGED, **NOT_FOUND},
    response_model=Empty,
)
async def enable_offer(
    offer_id: UUID, game_id: QueryGameId, state: State, principal: CurrentPrincipal
) -> JSON:
    """Enable the offer: ``{}``."""
    return await _set_enabled(state, principal, game_id, offer_id, enabled=True)


@management.put(
    "/offers/{offer_id}/disable",
    dependencies=[needs("games", "manage", at=scope_query("game-id", unknown=_offer_unknown))],
    responses={**MANAGED, **NOT_FOUND},
    response_model=Empty,
)
async def disable_offer(
    offer_id: UUID, game_id: QueryGameId, state: State, principal: CurrentPrincipal
) -> JSON:
    """Disable the offer: ``{}``."""
    return await _set_enabled(state, principal, game_id, offer_id, enabled=False)


@management.get(
    OFFERS_PATH,
    dependencies=[needs("games", "read", at=scope_query("game-id"))],
    responses=MANAGED,
    response_model=OffersOfferPage,
)
async def list_offers(
    game_id: QueryGameId,
    state: State,
    _: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="page number, from 0")] = 0,
) -> JSON:
    """A page of the game's offers, oldest first, and how many pages there are."""
    if offset * limit > MAX_OFFSET:
        raise InvalidInput(f"offset: page {offset} of {limit} is beyond the last possible one")
    async with state.database.begin() as conn:
        found, total = await service.list_offers(
            conn, game_id=game_id, limit=limit, offset=offset * limit
        )
    return JSON({"offers": [offer_json(o) for o in found], "pages": math.ceil(total / limit)})


# --- the player routes (public) --------------------------------------------------------------

Answer = tuple[int, Any, list[tuple[bytes, bytes]]]


def _query(raw: bytes) -> dict[str, str]:
    """The query string's parameters; the first value of a repeated one counts."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        found.setdefault(name, value)
    return found


def _required(query: Mapping[str, str], name: str, *, game: bool = False) -> str:
    value = query.get(name, "")
    if not value:
        raise BadParameter(f"the query parameter {name} is required")
    if len(value) > MAX_NAME_LENGTH or has_control_character(value):
        raise BadParameter(f"{name} must be 1 to {MAX_NAME_LENGTH} printable characters")
    if game and not _GAME_ID.match(value):
        raise BadParameter(f"{name} must match ^[^-][a-zA-Z0-9-_]*$")
    return value


def _max_age(seconds: int) -> list[tuple[bytes, bytes]]:
    return [(b"cache-control", f"max-age={seconds}".encode())]


# With PROMOS_OFFERS_PLAYERS_NEED_KEY, each player route needs games:use on its game (a game
# server's key); a game outside the key's scope is refused with the scope it lacks.
_NEEDS_KEY = "offers_players_need_key"
QUERY_KEY = KeyWhenSet(Need("games", "use", at=scope_query("game-id")), _NEEDS_KEY)
BODY_KEY = KeyWhenSet(Need("games", "use", at=scope_body("gameId")), _NEEDS_KEY)
Caller = Principal | None


async def answer_available(state: AppState, raw_query: bytes, caller: Caller) -> Answer:
    query = _query(raw_query)
    player_id = _required(query, "player-id")
    game_id = _required(query, "game-id", game=True)
    if caller is not None:
        QUERY_KEY.need.admit(caller, Values(query=query))
    attributes = {k: v for k, v in query.items() if k not in {"player-id", "game-id"}}
    found = await player.available_offers(
        database=state.database,
        catalog=state.offers,
        histories=state.offer_histories,
        game_id=game_id,
        player_id=player_id,
        attributes=attributes,
        now=state.clock(),
        default_max_age=state.settings.offers_cache_max_age_seconds,
    )
    return 200, found.body, _max_age(found.max_age)


async def answer_offer_info(state: AppState, raw_query: bytes, caller: Caller) -> Answer:
    query = _query(raw_query)
    _required(query, "player-id")
    game_id = _required(query, "game-id", game=True)
    if caller is not None:
        QUERY_KEY.need.admit(caller, Values(query=query))
    raw_id = _required(query, "offer-id")
    try:
        offer_id = UUID(raw_id)
    except ValueError:
        raise BadParameter("offer-id must be a UUID") from None
    body, age = await player.offer_info(
        database=state.database,
        catalog=state.offers,
        game_id=game_id,
        offer_id=offer_id,
        default_max_age=state.settings.offers_cache_max_age_seconds,
    )
    return 200, body, _max_age(age)


class ClaimIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "gameId": "galaxy",
                    "playerId": "player-7",
                    "productId": "com.galaxy.gems",
                    "timestamp": 1767225600,
                    "transactionId": "GPA.3312-4456-7788",
                    "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
                }
            ]
        },
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    gameId: GameId  # noqa: N815 - the seed's field names
    """The game."""
    playerId: PlayerId  # noqa: N815
    """The player."""
    productId: Text255 | None = None  # noqa: N815
    """The store's product id paid for."""
    timestamp: Annotated[int, Field(ge=0, lt=BELOW_2_63)]
    """When the player paid (Unix seconds)."""
    transactionId: Text255  # noqa: N815
    """The payment's id: a claim counts once per transaction."""
    id: Annotated[UUID | None, Field(strict=False)] = None
    """The offer's id."""


def claim_body(claimed: Claimed) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": claimed.contents}
    if claimed.next_at is not None:
        body["nextAt"] = claimed.next_at
    return body


async def answer_claim(state: AppState, payload: ClaimIn, caller: Caller) -> Answer:
    if caller is not None:
        BODY_KEY.need.admit(caller, Values(body={"gameId": payload.gameId}))
    if payload.id is None and payload.productId is None:
        raise InvalidInput("a claim needs the offer's id or its productId")
    claimed = await player.claim_offer(
        database=state.database,
        catalog=state.offers,
        counter=state.offer_counter,
        game_id=payload.gameId,
        player_id=payload.playerId,
        offer_id=payload.id,
        product_id=payload.productId,
        transaction_id=payload.transactionId,
        purchased_at=payload.timestamp,
        now=state.clock(),
    )
    return (409 if claimed.replayed else 200), claim_body(claimed), []


class ImpressionIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "gameId": "galaxy",
                    "playerId": "player-7",
                    "impressionId": "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
                }
            ]
        },
        use_attribute_docstrings=True,
        extra="ignore",
        strict=True,
    )

    gameId: GameId  # noqa: N815 - the seed's field names
    """The game."""
    playerId: PlayerId  # noqa: N815
    """The player."""
    impressionId: Annotated[UUID, Field(strict=False)]  # noqa: N815
    """The impression's id: it counts once."""


class AvailableOffer(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: UUID
    """The offer's id."""
    productId: str | None = None  # noqa: N815 - the seed's field names
    """The store's product id."""
    cost: JsonObject | None = None
    """What the offer costs, as set."""
    contents: JsonObject
    """What the player gets, as set."""
    metadata: JsonObject
    """Free data, as set."""
    expireAt: int  # noqa: N815
    """When the player's chance ends (Unix seconds)."""


class ClaimOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    contents: JsonObject
    """What the player gets."""
    nextAt: int | None = Field(None, description="left out once the player cannot claim again")  # noqa: N815


class ImpressionOut(BaseModel):
    nextAt: int | None = Field(None, description="left out once the player cannot see it again")  # noqa: N815


def _reply(answer: Answer) -> JSON:
    status, body, extra = answer
    return JSON(body, status_code=status, headers={k.decode(): v.decode() for k, v in extra})


@players.get(
    AVAILABLE_PATH,
    responses={200: {"model": dict[str, list[AvailableOffer]]}, **BAD_REQUEST},
    description="Any query parameter besides player-id and game-id is an attribute that the "
    "offers' filters are matched against.",
)
async def available_offers(
    request: Request,
    state: State,
    caller: Annotated[Caller, Depends(QUERY_KEY)],
    player_id: Annotated[str | None, Query(alias="player-id", description="the player")] = None,  # noqa: ARG001 - for OpenAPI
    game_id: Annotated[str | None, Query(alias="game-id", description="the game")] = None,  # noqa: ARG001 - for OpenAPI
) -> JSON:
    """Per placement, the offers the player may get now (``Cache-Control: max-age``)."""
    return _reply(await answer_available(state, request.scope["query_string"], caller))


@players.get("/offer-info", responses={200: {"model": AvailableOffer}, **BAD_REQUEST, **NOT_FOUND})
async def offer_info(
    request: Request,
    state: State,
    *,
    caller: Annotated[Caller, Depends(QUERY_KEY)],
    player_id: Annotated[str | None, Query(alias="player-id", description="the player")] = None,  # noqa: ARG001 - for OpenAPI
    game_id: Annotated[str | None, Query(alias="game-id", description="the game")] = None,  # noqa: ARG001 - for OpenAPI
    offer_id: Annotated[str | None, Query(alias="offer-id", description="the offer")] = None,  # noqa: ARG001 - for OpenAPI
) -> JSON:
    """One offer as a player sees it (``Cache-Control: max-age``)."""
    return _reply(await answer_offer_info(state, request.scope["query_string"], caller))


@players.put(
    CLAIM_PATH,
    responses={
        200: {"model": ClaimOut},
        409: {"model": ClaimOut, "description": "this transactionId was claimed before"},
        **NOT_FOUND,
    },
)
async def claim(body: ClaimIn, state: State, caller: Annotated[Caller, Depends(BODY_KEY)]) -> JSON:
    """Claim an offer after payment, once per ``transactionId`` (a replay answers 409)."""
    return _reply(await answer_claim(state, body, caller))


@players.put(IMPRESSIONS_PATH, responses={200: {"model": ImpressionOut}, **NOT_FOUND})
async def impressions(
    offer_id: UUID,
    body: ImpressionIn,
    state: State,
    caller: Annotated[Caller, Depends(BODY_KEY)],
) -> JSON:
    """Count that the player saw the offer, once per ``impressionId``."""
    return _reply(await answer_impression(state, offer_id, body, caller))


async def answer_impression(
    state: AppState, offer_id: UUID, body: ImpressionIn, caller: Caller
) -> Answer:
    if caller is not None:
        BODY_KEY.need.admit(caller, Values(body={"gameId": body.gameId}))
    seen = await player.see_offer(
        database=state.database,
        catalog=state.offers,
        counter=state.offer_counter,
        game_id=body.gameId,
        player_id=body.playerId,
        offer_id=offer_id,
        impression_id=body.impressionId,
        now=state.clock(),
    )
    return 200, {} if seen.next_at is None else {"nextAt": seen.next_at}, []


# --- the lean endpoints ----------------------------------------------------------------------


def _failed(exc: PromosError) -> Answer:
    extra = [(k.lower().encode(), v.encode()) for k, v in headers_for(exc).items()]
    return status_for(exc), offers_body(exc), extra


def _limited(state: AppState, endpoint: FastEndpoint) -> FastEndpoint:
    """The endpoint behind the Offers player routes' rate limit, if that limit is on."""
    limits = state.limits
    if limits.offers is None:
        return endpoint  # off: not even a function call per request

    async def limited(scope: Scope, body: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        try:
            await limits.check_offers(client_key(scope))
        except TooManyRequests as exc:
            return _failed(exc)
        return await endpoint(scope, body, headers)

    return limited


def _impression(scope: Scope, body: bytes) -> tuple[UUID, ImpressionIn]:
    try:
        offer_id = UUID(scope["path_params"]["offer_id"])
    except ValueError:
        raise invalid_input(
            [{"loc": ("path", "offer_id"), "msg": "not a UUID", "type": "uuid_parsing"}]
        ) from None
    try:
        return offer_id, ImpressionIn.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_input(exc.errors()) from None


def fast_routes(state: AppState) -> dict[tuple[str, str], FastEndpoint]:
    """The hot player routes without the framework's cost (and with the same rate limit, and
    the same key when PROMOS_OFFERS_PLAYERS_NEED_KEY is set)."""
    keyed = QUERY_KEY.required(state)

    async def caller_of(scope: Scope, headers: Mapping[bytes, bytes]) -> Caller:
        principal = await state.authenticator.authenticate(
            header(headers, b"authorization"),
            header(headers, b"x-api-key"),
            route=route_of(scope),
            client=client_key(scope),
        )
        set_principal(scope, principal)
        return QUERY_KEY.caller(principal)

    async def available_fast(scope: Scope, _body: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        try:
            caller = await caller_of(scope, headers) if keyed else None
            return await answer_available(state, scope["query_string"], caller)
        except PromosError as exc:
            return _failed(exc)

    async def claim_fast(scope: Scope, body: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        try:
            caller = await caller_of(scope, headers) if keyed else None
            try:
                payload = ClaimIn.model_validate_json(body)
            except ValidationError as exc:
                raise invalid_input(exc.errors()) from None
            return await answer_claim(state, payload, caller)
        except PromosError as exc:
            return _failed(exc)

    async def impression_fast(scope: Scope, body: bytes, headers: Mapping[bytes, bytes]) -> Answer:
        try:
            caller = await caller_of(scope, headers) if keyed else None
            offer_id, payload = _impression(scope, body)
            return await answer_impression(state, offer_id, payload, caller)
        except PromosError as exc:
            return _failed(exc)

    return {
        ("GET", AVAILABLE_PATH): _limited(state, available_fast),
        ("PUT", CLAIM_PATH): _limited(state, claim_fast),
        ("PUT", IMPRESSIONS_PATH): _limited(state, impression_fast),
    }


# What the seed's own Basic credential (OFFERS_BASICAUTH_*) opens: these routes, no other.
MANAGEMENT_ROUTES = frozenset(
    (method, route.path)
    for route in management.routes
    if isinstance(route, APIRoute)
    for method in route.methods or ()
)

# Errors answered before a route runs (a 413, a 500) take the seed's shape on all its paths.
_SEED_PATHS = (AVAILABLE_PATH, CLAIM_PATH, IMPRESSIONS_PATH, "/offer-info")
ERROR_SHAPES: dict[str, ErrorShape] = dict.fromkeys(
    (*_SEED_PATHS, *(path for _, path in MANAGEMENT_ROUTES)), offers_body
)

# PUT /offers/claim before PUT /offers/{offer_id}.
router = APIRouter()
router.include_router(players)
router.include_router(management)
