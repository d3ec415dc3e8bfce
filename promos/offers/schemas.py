"""Request and response bodies of the native games and offers API (``/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from promos.http.pagination import PageOut
from promos.offers.filters import filters_json
from promos.offers.service import Game, Offer, OfferSpec, make_spec
from promos.validation import MAX_NAME_LENGTH, PRINTABLE, Name

# The seed's game id, ^[^-][a-zA-Z0-9-_]*$, without control characters (no database holds NUL).
GAME_ID_PATTERN = r"^[^\x00-\x1f\x7f-][a-zA-Z0-9_-]*$"
GameId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=GAME_ID_PATTERN)]
PlayerId = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE)]
Text255 = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE)]
Every = Annotated[
    str, Field(max_length=64, description='a Go duration: "300ms", "1.5h", "2h45m" or ""')
]
JsonObject = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CapIn(Strict):
    every: Every
    max: Annotated[int, Field(ge=0, le=2**31 - 1)]


class TriggerIn(Strict):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    from_: Annotated[int, Field(alias="from", ge=-(2**63) + 1, le=2**63 - 1)]
    to: Annotated[int, Field(ge=-(2**63) + 1, le=2**63 - 1)]


class GameIn(Strict):
    name: Name
    metadata: JsonObject | None = None


class GameOut(BaseModel):
    id: str
    name: str
    metadata: JsonObject

    @classmethod
    def of(cls, game: Game) -> GameOut:
        return cls(id=game.id, name=game.name, metadata=game.metadata)


class GamePage(PageOut):
    items: Annotated[list[GameOut], Field(description="this page's games")]


class OfferIn(Strict):
    name: Name
    product_id: Text255 | None = None
    cost: JsonObject | None = None
    contents: JsonObject
    metadata: JsonObject | None = None
    placement: Text255
    period: CapIn
    frequency: CapIn
    trigger: TriggerIn
    filters: JsonObject | None = None

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
    every: str
    max: int


class TriggerOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: int = Field(alias="from")
    to: int


class OfferOut(BaseModel):
    id: UUID
    key: UUID
    game_id: str
    version: int
    enabled: bool
    name: str
    product_id: str | None
    cost: JsonObject | None
    contents: JsonObject
    metadata: JsonObject
    placement: str
    period: CapOut
    frequency: CapOut
    trigger: TriggerOut
    filters: JsonObject
    created_at: datetime
    updated_at: datetime

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
