"""Request and response bodies of the promo code API (native ``/v1``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from promos.http.pagination import PageOut
from promos.promocodes.generate import DEFAULT_CHARSET, MAX_CODE_LENGTH, MAX_COUNT
from promos.promocodes.service import MAX_PRODUCTS, MAX_USAGE_COUNT, GenerationSpec, Promocode
from promos.validation import STORABLE, Email, Identifier


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number is expected, not true or false")  # noqa: TRY004 - pydantic
    return value


# JSON numbers (or strings of digits) as Decimal, never through float arithmetic.
Money = Annotated[Decimal, BeforeValidator(_no_bool), Field(strict=False, allow_inf_nan=False)]
Day = Annotated[date, Field(strict=False, description="YYYY-MM-DD")]
Sku = Identifier


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class GenerateIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pattern": "SUMMER-####",
                    "count": 100,
                    "discount_percentage": 15,
                    "usage_count": 1,
                    "expires_in": "2026-08-31",
                    "products": ["SKU-1"],
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    pattern: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_CODE_LENGTH,
            pattern=STORABLE,
            description="`#` = one character drawn from `charset`; anything else is literal",
        ),
    ]
    charset: Annotated[
        str,
        Field(
            min_length=1,
            max_length=62,
            pattern=STORABLE,
            description="Letters and digits; the default leaves out 0/O and 1/I/L",
        ),
    ] = DEFAULT_CHARSET
    count: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    """How many codes."""
    prefix: Annotated[str, Field(max_length=MAX_CODE_LENGTH, pattern=STORABLE)] = ""
    """Literal text before the pattern."""
    postfix: Annotated[str, Field(max_length=MAX_CODE_LENGTH, pattern=STORABLE)] = ""
    """Literal text after the pattern."""
    discount_percentage: Money | None = None
    """Percent off, in (0, 100]; or discount_amount."""
    discount_amount: Money | None = None
    """Amount off, > 0; or discount_percentage."""
    usage_count: Annotated[int, Field(ge=1, le=MAX_USAGE_COUNT, description="uses per code")] = 1
    expires_in: Day | None = Field(default=None, description="last day the codes work (UTC)")
    products: Annotated[list[Sku], Field(max_length=MAX_PRODUCTS)] = []
    """The SKUs the codes apply to; none = all."""
    usage_by: Email | None = Field(default=None, description="the one customer allowed")
    reusable_after_cancel: bool = True
    """Whether a cancelled (rolled back) redemption's use comes back to its code."""

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
            reusable_after_cancel=self.reusable_after_cancel,
        )


class GenerationOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The generation's id."""
    pattern: str
    """The pattern the codes were drawn from."""
    charset: str
    """The characters `#` was drawn from."""
    prefix: str
    """Literal text before the pattern."""
    postfix: str
    """Literal text after the pattern."""
    count: int
    """How many codes it made."""
    discount_percentage: Decimal | None
    """Percent off."""
    discount_amount: Decimal | None
    """Amount off."""
    usage_count: int
    """Uses each code had at first."""
    expires_in: date | None
    """The last day the codes work (UTC)."""
    products: list[str]
    """The SKUs the codes apply to; none = all."""
    usage_by: str | None
    """The one customer allowed."""
    created_at: datetime
    """When it was made."""
    reusable_after_cancel: bool
    """Whether a cancelled redemption's use comes back to its code (unless the code says
    otherwise)."""


class GeneratedOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    generation: GenerationOut
    """What the codes share."""
    codes: Annotated[
        list[str],
        Field(description="The codes, up to the first 1000; list the rest by generation_id"),
    ]


class PromocodeOut(Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "code": "SUMMER-7KQ2",
                    "generation_id": 3,
                    "usage_count": 1,
                    "discount_percentage": "15",
                    "discount_amount": None,
                    "expires_in": "2026-08-31",
                    "products": ["SKU-1"],
                    "usage_by": None,
                    "created_at": "2026-03-01T12:00:00Z",
                    "reusable_after_cancel": True,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    id: int
    """The code's id."""
    code: str
    """The code."""
    generation_id: int
    """The generation it belongs to."""
    usage_count: Annotated[int, Field(description="uses left")]
    discount_percentage: Decimal | None
    """Percent off."""
    discount_amount: Decimal | None
    """Amount off."""
    expires_in: date | None
    """The last day it works (UTC)."""
    products: list[str]
    """The SKUs it applies to; none = all."""
    usage_by: str | None
    """The one customer allowed."""
    created_at: datetime
    """When it was made."""
    reusable_after_cancel: bool
    """Whether a cancelled redemption's use comes back to it (its own policy, else its
    generation's)."""

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
            reusable_after_cancel=found.reusable_after_cancel,
        )


class PromocodePage(PageOut):
    items: Annotated[list[PromocodeOut], Field(description="this page's promo codes")]


class UseIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"customer": "customer@example.com", "products": ["SKU-1"]}]
        }
    )

    customer: Annotated[Email, Field(description="who uses the code (an e-mail)")]
    products: Annotated[list[Sku], Field(max_length=MAX_PRODUCTS, description="the cart's SKUs")]


class ValidateIn(UseIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer": "customer@example.com",
                    "products": ["SKU-1"],
                    "at": "2026-03-01T12:00:00Z",
                }
            ]
        }
    )

    at: Annotated[
        datetime | None, Field(strict=False, description="when (default: now), with timezone")
    ] = None


class RedemptionOut(Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "code": "SUMMER-7KQ2",
                    "customer": "customer@example.com",
                    "redeemed_at": "2026-03-02T09:30:00Z",
                    "rolled_back_at": None,
                    "usage_count": 0,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    id: int
    """The redemption's id."""
    code: str
    """The code used."""
    customer: str | None
    """Who used it."""
    redeemed_at: datetime
    """When."""
    rolled_back_at: datetime | None
    """When it was rolled back, if it was."""
    usage_count: Annotated[int, Field(description="uses the code has left")]


MAX_HOLD_SECONDS = 7 * 24 * 3600
DEFAULT_HOLD_SECONDS = 900


class HoldIn(UseIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer": "customer@example.com",
                    "order": "order-1042",
                    "products": ["SKU-1"],
                    "ttl_seconds": 900,
                }
            ]
        }
    )

    order: Annotated[
        Identifier, Field(description="the checkout's order: one live hold per order and code")
    ]
    ttl_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_HOLD_SECONDS,
            description="how long the hold lasts; cut to PROMOS_PROMOCODE_HOLD_MAX_SECONDS",
        ),
    ] = DEFAULT_HOLD_SECONDS


class HoldOut(Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 8,
                    "code": "SUMMER-7KQ2",
                    "customer": "customer@example.com",
                    "order": "order-1042",
                    "status": "held",
                    "created_at": "2026-03-02T09:30:00Z",
                    "expires_at": "2026-03-02T09:45:00Z",
                    "ended_at": None,
                    "usage_count": 0,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    id: int
    """The hold's id; its redemption's once confirmed."""
    code: str
    """The code held."""
    customer: str
    """Who holds it."""
    order: str
    """For which order."""
    status: Literal["held", "confirmed", "released", "expired"]
    """held (its use taken until expires_at), confirmed (a redemption), released or expired
    (its use given back)."""
    created_at: datetime
    """When it was taken."""
    expires_at: datetime
    """When it lapses unless confirmed."""
    ended_at: datetime | None
    """When it was confirmed, released, or found expired (an expired hold not yet found has
    none)."""
    usage_count: Annotated[int, Field(description="uses the code has left now")]


class PromocodePatch(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reusable_after_cancel": False}]})

    reusable_after_cancel: Annotated[
        bool | None,
        Field(
            description="whether a cancelled redemption's use comes back to this code; "
            "null: as its generation says"
        ),
    ]


class RollbackOut(RedemptionOut):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "code": "SUMMER-7KQ2",
                    "customer": "customer@example.com",
                    "redeemed_at": "2026-03-02T09:30:00Z",
                    "rolled_back_at": "2026-03-03T10:00:00Z",
                    "usage_count": 1,
                    "use_given_back": True,
                }
            ]
        }
    )

    use_given_back: Annotated[
        bool,
        Field(description="whether the use came back to the code (its reusable_after_cancel)"),
    ]


class OrderCancelledOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    order: str
    """The order."""
    holds: list[HoldOut]
    """Its holds that were still held: released now (or found expired)."""
    redemptions: list[RollbackOut]
    """Its redemptions that stood: rolled back now."""


class ReturnIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"products": ["SKU-1"]}]})

    products: Annotated[
        list[Sku],
        Field(min_length=1, max_length=MAX_PRODUCTS, description="the SKUs returned"),
    ]


class ReturnsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "redemption": {
                        "id": 7,
                        "code": "SUMMER-7KQ2",
                        "customer": "customer@example.com",
                        "redeemed_at": "2026-03-02T09:30:00Z",
                        "rolled_back_at": None,
                        "usage_count": 0,
                    },
                    "products": ["SKU-1", "SKU-2"],
                    "returned": ["SKU-1"],
                    "kept": ["SKU-2"],
                    "returned_now": ["SKU-1"],
                    "use_stands": True,
                    "use_given_back": None,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    redemption: RedemptionOut
    """The redemption as it stands."""
    products: list[str]
    """The products it was taken for (empty: its redeem or hold named none)."""
    returned: list[str]
    """Every product returned so far."""
    kept: list[str]
    """Its products not returned."""
    returned_now: list[str]
    """What this request returned anew (empty: nothing changed)."""
    use_stands: bool
    """Whether the use still counts: false once rolled back or ended by a return."""
    use_given_back: bool | None
    """When a return ended the use: whether it came back to the code (its
    reusable_after_cancel); null otherwise."""


class OrderReturnedOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    order: str
    """The order."""
    redemptions: list[ReturnsOut]
    """Its redemptions whose cart held a product returned, in id order."""
