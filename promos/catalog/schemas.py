"""Bodies of specials and upgrade programs (native ``/v1`` and the Promos seed's CRUD)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from promos.catalog.service import SpecialSpec, UpgradeProgramSpec
from promos.http.pagination import PageOut
from promos.promocodes.schemas import Money, Sku
from promos.validation import TEXT, Name

Description = Annotated[str, Field(max_length=10_000, pattern=TEXT)]
When = Annotated[
    datetime | None, Field(strict=False, description="ISO 8601 with a timezone; null = open")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SpecialIn(Strict):
    """A product on offer: exactly one of a special `price`, a percentage or an amount off."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "sku": "SKU-1",
                    "title": "Half price",
                    "description": "This week only",
                    "discount_percentage": 50,
                    "starts_at": "2026-03-01T00:00:00Z",
                    "ends_at": "2026-03-08T00:00:00Z",
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    sku: Sku
    """The product on offer."""
    title: Name
    """A title for people."""
    description: Description = ""
    """Free text."""
    price: Money | None = None
    """The special price (or a discount)."""
    discount_percentage: Money | None = None
    """Percent off (or a price or an amount)."""
    discount_amount: Money | None = None
    """Amount off (or a price or a percentage)."""
    starts_at: When = None
    ends_at: When = None

    def to_spec(self) -> SpecialSpec:
        return SpecialSpec(**self.model_dump())


class SpecialOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The special's id."""
    sku: str
    """The product on offer."""
    title: str
    """A title for people."""
    description: str
    """Free text."""
    price: Decimal | None
    """The special price, if that is the offer."""
    discount_percentage: Decimal | None
    """Percent off, if that."""
    discount_amount: Decimal | None
    """Amount off, if that."""
    starts_at: datetime | None
    """From when; null: already."""
    ends_at: datetime | None
    """Until when; null: no end."""
    created_at: datetime
    """When it was made."""
    updated_at: datetime
    """When it last changed."""


class UpgradeProgramIn(Strict):
    """Upgrading from one product to another, with a percentage or an amount off."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from_sku": "SKU-BASIC",
                    "to_sku": "SKU-PRO",
                    "title": "Go pro",
                    "discount_amount": 20,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    from_sku: Sku
    """The product upgraded from."""
    to_sku: Sku
    """The product upgraded to."""
    title: Name
    """A title for people."""
    description: Description = ""
    """Free text."""
    discount_percentage: Money | None = None
    """Percent off (or an amount)."""
    discount_amount: Money | None = None
    """Amount off (or a percentage)."""
    starts_at: When = None
    ends_at: When = None

    def to_spec(self) -> UpgradeProgramSpec:
        return UpgradeProgramSpec(**self.model_dump())


class UpgradeProgramOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The program's id."""
    from_sku: str
    """The product upgraded from."""
    to_sku: str
    """The product upgraded to."""
    title: str
    """A title for people."""
    description: str
    """Free text."""
    discount_percentage: Decimal | None
    """Percent off, if that."""
    discount_amount: Decimal | None
    """Amount off, if that."""
    starts_at: datetime | None
    """From when; null: already."""
    ends_at: datetime | None
    """Until when; null: no end."""
    created_at: datetime
    """When it was made."""
    updated_at: datetime
    """When it last changed."""


class SpecialPage(PageOut):
    items: Annotated[list[SpecialOut], Field(description="this page's specials")]


class UpgradeProgramPage(PageOut):
    items: Annotated[list[UpgradeProgramOut], Field(description="this page's upgrade programs")]
