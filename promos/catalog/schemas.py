"""Bodies of specials and upgrade programs (native ``/v1`` and the Promos seed's CRUD)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from promos.catalog.service import SpecialSpec, UpgradeProgramSpec
from promos.http.pagination import PageOut
from promos.promocodes.schemas import Money, Sku
from promos.validation import Name

Description = Annotated[str, Field(max_length=10_000)]
When = Annotated[
    datetime | None, Field(strict=False, description="ISO 8601 with a timezone; null = open")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SpecialIn(Strict):
    """A product on offer: exactly one of a special `price`, a percentage or an amount off."""

    sku: Sku
    title: Name
    description: Description = ""
    price: Money | None = None
    discount_percentage: Money | None = None
    discount_amount: Money | None = None
    starts_at: When = None
    ends_at: When = None

    def to_spec(self) -> SpecialSpec:
        return SpecialSpec(**self.model_dump())


class SpecialOut(Out):
    id: int
    sku: str
    title: str
    description: str
    price: Decimal | None
    discount_percentage: Decimal | None
    discount_amount: Decimal | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UpgradeProgramIn(Strict):
    """Upgrading from one product to another, with a percentage or an amount off."""

    from_sku: Sku
    to_sku: Sku
    title: Name
    description: Description = ""
    discount_percentage: Money | None = None
    discount_amount: Money | None = None
    starts_at: When = None
    ends_at: When = None

    def to_spec(self) -> UpgradeProgramSpec:
        return UpgradeProgramSpec(**self.model_dump())


class UpgradeProgramOut(Out):
    id: int
    from_sku: str
    to_sku: str
    title: str
    description: str
    discount_percentage: Decimal | None
    discount_amount: Decimal | None
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SpecialPage(PageOut):
    items: Annotated[list[SpecialOut], Field(description="this page's specials")]


class UpgradeProgramPage(PageOut):
    items: Annotated[list[UpgradeProgramOut], Field(description="this page's upgrade programs")]
