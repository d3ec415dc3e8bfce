"""Request and response bodies of the promo code API (native ``/v1``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from promos.promocodes.generate import DEFAULT_CHARSET, MAX_CODE_LENGTH, MAX_COUNT
from promos.promocodes.service import MAX_PRODUCTS, MAX_USAGE_COUNT, GenerationSpec, Promocode
from promos.validation import Identifier


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true or false")  # noqa: TRY004 - pydantic
    return value


# JSON numbers (or strings of digits) as Decimal, never through float arithmetic.
Money = Annotated[Decimal, BeforeValidator(_no_bool), Field(strict=False, allow_inf_nan=False)]
Day = Annotated[date, Field(strict=False, description="YYYY-MM-DD")]
Sku = Identifier
Email = Annotated[str, Field(min_length=3, max_length=255, pattern=r"^[^\s@]+@[^\s@]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class GenerateIn(Strict):
    pattern: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_CODE_LENGTH,
            description="`#` = one character drawn from `charset`; anything else is literal",
        ),
    ]
    charset: Annotated[
        str,
        Field(
            min_length=1,
            max_length=62,
            description="Letters and digits; the default leaves out 0/O and 1/I/L",
        ),
    ] = DEFAULT_CHARSET
    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    prefix: Annotated[str, Field(max_length=MAX_CODE_LENGTH)] = ""
    postfix: Annotated[str, Field(max_length=MAX_CODE_LENGTH)] = ""
    discount_percentage: Money | None = None
    discount_amount: Money | None = None
    usage_count: Annotated[int, Field(ge=1, le=MAX_USAGE_COUNT, description="uses per code")] = 1
    expires_in: Day | None = Field(default=None, description="last day the codes work (UTC)")
    products: Annotated[list[Sku], Field(max_length=MAX_PRODUCTS)] = []
    usage_by: Email | None = Field(default=None, description="the one customer allowed")

    def to_spec(self) -> GenerationSpec:
        return GenerationSpec(
            pattern=self.pattern,
            charset=self.charset,
            count=self.count,
            prefix=self.prefix,
            postfix=self.postfix,
            discount_percentage=self.discount_percentage,
            discount_amount=self.discount_amount,
            usage_count=self.usage_count,
            expires_in=self.expires_in,
            products=tuple(self.products),
            usage_by=self.usage_by,
        )


class GenerationOut(Out):
    id: int
    pattern: str
    charset: str
    prefix: str
    postfix: str
    count: int
    discount_percentage: Decimal | None
    discount_amount: Decimal | None
    usage_count: int
    expires_in: date | None
    products: list[str]
    usage_by: str | None
    created_at: datetime


class GeneratedOut(BaseModel):
    generation: GenerationOut
    codes: Annotated[
        list[str],
        Field(description="The codes, up to the first 1000; list the rest by generation_id"),
    ]


class PromocodeOut(Out):
    id: int
    code: str
    generation_id: int
    usage_count: Annotated[int, Field(description="uses left")]
    discount_percentage: Decimal | None
    discount_amount: Decimal | None
    expires_in: date | None
    products: list[str]
    usage_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, found: Promocode) -> PromocodeOut:
        """The code with its generation's terms."""
        g = found.generation
        return cls(
            id=found.id,
            code=found.code,
            generation_id=g.id,
            usage_count=found.usage_count,
            discount_percentage=g.discount_percentage,
            discount_amount=g.discount_amount,
            expires_in=g.expires_in,
            products=list(g.products),
            usage_by=g.usage_by,
            created_at=g.created_at,
        )


class PromocodePage(BaseModel):
    items: list[PromocodeOut]
    limit: int
    offset: int


class UseIn(Strict):
    customer: Annotated[Email, Field(description="who uses the code (an e-mail)")]
    products: Annotated[list[Sku], Field(max_length=MAX_PRODUCTS, description="the cart's SKUs")]


class ValidateIn(UseIn):
    at: Annotated[
        datetime | None, Field(strict=False, description="when (default: now), with timezone")
    ] = None


class RedemptionOut(Out):
    id: int
    code: str
    customer: str | None
    redeemed_at: datetime
    rolled_back_at: datetime | None
    usage_count: Annotated[int, Field(description="uses the code has left")]
