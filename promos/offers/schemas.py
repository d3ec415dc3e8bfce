"""Request and response bodies of the native games and offers API (``/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from promos.http.pagination import PageOut
from promos.offers.filters import filters_json
from promos.offers.rules import Explanation, Verdict
from promos.offers.service import Game, Offer, OfferSpec, make_spec
from promos.validation import (
    BELOW_2_63,
    HIDDEN,
    MAX_NAME_LENGTH,
    PRINTABLE,
    STORABLE,
    JsonDocument,
    Name,
)

# The seed's game id, ^[^-][a-zA-Z0-9-_]*$, without control characters (no database holds NUL)
# or any other hidden one.
GAME_ID_PATTERN = rf"^[^{HIDDEN}-][a-zA-Z0-9_-]*$"
GameId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=GAME_ID_PATTERN)]
PlayerId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE)]
Text255 = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE)]
Every = Annotated[
    str,
    Field(
        max_length=64,
        pattern=STORABLE,
        description='a Go duration: "300ms", "1.5h", "2h45m" or ""',
    ),
]
JsonObject = dict[str, Any]
# What a request's free-form objects must be: storable, and not nested too deep.
JsonObjectIn = JsonDocument


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CapIn(Strict):
    model_config = ConfigDict(use_attribute_docstrings=True)

    every: Every
    max: Annotated[int, Field(ge=0, le=2**31 - 1)]
    """At most this many (0: no limit on the count)."""


class TriggerIn(Strict):
    model_config = ConfigDict(
        use_attribute_docstrings=True, extra="forbid", strict=True, populate_by_name=True
    )

    from_: Annotated[int, Field(alias="from", gt=-BELOW_2_63, lt=BELOW_2_63)]
    """From this point (inclusive)."""
    to: Annotated[int, Field(gt=-BELOW_2_63, lt=BELOW_2_63)]
    """Up to this point (inclusive)."""


class GameIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "Galaxy", "metadata": {"cacheMaxAge": 60}}]},
        use_attribute_docstrings=True,
    )

    name: Name
    """The game's name."""
    metadata: JsonObjectIn | None = None
    """CacheMaxAge (seconds) and allowInefficientQueries, and free data."""


class GameOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    """The game's id."""
    name: str
    """The game's name."""
    metadata: JsonObject
    """Its settings and free data."""

    @classmethod
    def of(cls, game: Game) -> GameOut:
        return cls(id=game.id, name=game.name, metadata=game.metadata)


class GamePage(PageOut):
    items: Annotated[list[GameOut], Field(description="this page's games")]


class OfferIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Gems pack",
                    "product_id": "com.galaxy.gems",
                    "contents": {"gems": 500},
                    "placement": "store",
                    "period": {"every": "24h", "max": 1},
                    "frequency": {"every": "1h", "max": 3},
                    "trigger": {"from": 0, "to": 4000000000},
                    "filters": {"country": {"eq": "BR"}},
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    name: Name
    """The offer's name."""
    product_id: Text255 | None = None
    """The store's product id (a product id or a cost, or both)."""
    cost: JsonObjectIn | None = None
    """What the offer costs, free-form."""
    contents: JsonObjectIn
    """What the player gets, free-form."""
    metadata: JsonObjectIn | None = None
    """Free data."""
    placement: Text255
    """Where in the game it shows."""
    period: CapIn
    """At most `max` claims per `every`."""
    frequency: CapIn
    """At most `max` impressions per `every`."""
    trigger: TriggerIn
    """The window of the player's progress (or time) it is offered in."""
    filters: JsonObjectIn | None = None
    """Attributes a player must match, e.g. {"country": {"eq": "BR"}}."""

    def to_spec(self) -> OfferSpec:
        return make_spec(
            name=self.name,
            product_id=self.product_id,
            cost=self.cost,
            contents=self.contents,
            metadata=self.metadata,
            placement=self.placement,
            period=(self.period.every, self.period.max),
            frequency=(self.frequency.every, self.frequency.max),
            trigger=(self.trigger.from_, self.trigger.to),
            filters=self.filters,
        )


class CapOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    every: str
    """A Go duration, e.g. 24h; "" for ever."""
    max: int
    """At most this many per `every` (0: no limit)."""


class TriggerOut(BaseModel):
    model_config = ConfigDict(
        use_attribute_docstrings=True, populate_by_name=True, serialize_by_alias=True
    )

    from_: int = Field(alias="from")
    """From this point (inclusive)."""
    to: int
    """Up to this point (inclusive)."""


class OfferOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: UUID
    """The offer's id, the same across its versions."""
    key: UUID
    """This version's own id."""
    game_id: str
    """The game."""
    version: int
    """1 for a new offer, one more per update."""
    enabled: bool
    """Whether players can get it."""
    name: str
    """The offer's name."""
    product_id: str | None
    """The store's product id."""
    cost: JsonObject | None
    """What it costs, as set."""
    contents: JsonObject
    """What the player gets, as set."""
    metadata: JsonObject
    """Free data, as set."""
    placement: str
    """Where in the game it shows."""
    period: CapOut
    """At most `max` claims per `every`."""
    frequency: CapOut
    """At most `max` impressions per `every`."""
    trigger: TriggerOut
    """The window it is offered in."""
    filters: JsonObject
    """Attributes a player must match."""
    created_at: datetime
    """When the offer was made."""
    updated_at: datetime
    """When this version was made."""

    @classmethod
    def of(cls, offer: Offer) -> OfferOut:
        spec = offer.spec
        return cls(
            id=offer.id,
            key=offer.key,
            game_id=offer.game_id,
            version=offer.version,
            enabled=offer.enabled,
            name=spec.name,
            product_id=spec.product_id,
            cost=spec.cost,
            contents=spec.contents,
            metadata=spec.metadata,
            placement=spec.placement,
            period=CapOut(every=spec.period.every, max=spec.period.max),
            frequency=CapOut(every=spec.frequency.every, max=spec.frequency.max),
            trigger=TriggerOut(from_=spec.trigger_from, to=spec.trigger_to),
            filters=filters_json(spec.filters),
            created_at=offer.created_at,
            updated_at=offer.updated_at,
        )


class OfferPage(PageOut):
    items: Annotated[list[OfferOut], Field(description="this page's offers")]


# The names the player route reads itself: never attributes there, so refused here.
_NOT_ATTRIBUTES = frozenset({"player-id", "game-id"})
MAX_ATTRIBUTES = 100
AttributeName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=STORABLE)]
AttributeValue = Annotated[str, Field(max_length=1024, pattern=STORABLE)]


class ExplanationIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"player_id": "player-7", "attributes": {"country": "BR", "level": "12"}}]
        },
        use_attribute_docstrings=True,
    )

    player_id: PlayerId
    """The player, as `player-id` of `/available-offers`."""
    attributes: Annotated[
        dict[AttributeName, AttributeValue], Field(max_length=MAX_ATTRIBUTES)
    ] = {}
    """The attributes `/available-offers` would be sent (its other query parameters)."""

    @field_validator("attributes")
    @classmethod
    def _no_route_parameters(cls, value: dict[str, str]) -> dict[str, str]:
        named = sorted(_NOT_ATTRIBUTES & set(value))
        if named:
            raise ValueError(f"{', '.join(named)} is not an attribute (it names the request)")
        return value


class ExplainedOffer(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: UUID
    """The offer's id."""
    name: str
    """The offer's name."""
    placement: str
    """Where in the game it shows."""
    version: int
    """Its current version."""
    shown: bool
    """Whether `/available-offers` gives it to the player now."""
    rule: Literal["enabled", "trigger", "filter", "period", "frequency"] | None
    """The first rule that leaves it out (null when shown)."""
    reason: str | None
    """That rule, in words (null when shown)."""
    claims: int
    """How many times the player claimed it."""
    impressions: int
    """How many times the player saw it."""

    @classmethod
    def of(cls, verdict: Verdict) -> ExplainedOffer:
        offer = verdict.offer
        return cls(
            id=offer.id,
            name=offer.spec.name,
            placement=offer.spec.placement,
            version=offer.version,
            shown=verdict.shown,
            rule=verdict.rule,
            reason=verdict.reason,
            claims=verdict.history.claim_count,
            impressions=verdict.history.impression_count,
        )


class ExplanationOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    game_id: str
    """The game."""
    player_id: str
    """The player."""
    attributes: dict[str, str]
    """The attributes matched against the filters."""
    at: datetime
    """The moment the rules were applied (now)."""
    available: dict[str, list[JsonObject]]
    """What `/available-offers` answers: the offers shown, by placement."""
    offers: list[ExplainedOffer]
    """Every offer of the game, oldest first: shown, or the rule that left it out."""

    @classmethod
    def of(cls, explanation: Explanation) -> ExplanationOut:
        return cls(
            game_id=explanation.game.id,
            player_id=explanation.player_id,
            attributes=explanation.attributes,
            at=explanation.at,
            available=explanation.available(),
            offers=[ExplainedOffer.of(v) for v in explanation.verdicts],
        )
