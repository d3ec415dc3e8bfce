"""Request and response bodies of the referral API; amounts are JSON numbers both ways."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from promos.db import MAX_MONEY, MONEY_PLACES
from promos.http.pagination import PageOut
from promos.validation import Id, Identifier, Name


def as_number(value: Decimal) -> int | float:
    """An amount as a JSON number (exact: amounts have two places and stay below 10**9)."""
    return int(value) if value == value.to_integral_value() else float(value)


MoneyIn = Annotated[
    Decimal,
    Field(allow_inf_nan=False, ge=0, lt=MAX_MONEY, decimal_places=MONEY_PLACES),
]
MoneyOut = Annotated[Decimal, PlainSerializer(as_number, return_type=int | float)]
UserHash = Identifier


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProgramCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "Friends", "credit_value": 10, "target_value": 100}]
        },
        use_attribute_docstrings=True,
        extra="forbid",
    )

    name: Name
    """The program's name."""
    credit_value: MoneyIn
    """What a new user is credited on sign-up."""
    target_value: Annotated[MoneyIn, Field(gt=0)]
    """What the new user must pay in all for the referrer's reward (which is this much)."""


class ProgramUpdate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"target_value": 150}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    name: Name | None = None
    """A new name."""
    credit_value: MoneyIn | None = None
    """A new sign-up credit."""
    target_value: Annotated[MoneyIn | None, Field(gt=0)] = None
    """A new target."""


class ProgramOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The program's id."""
    name: str
    """The program's name."""
    credit_value: MoneyOut
    """The sign-up credit."""
    target_value: MoneyOut
    """The target, and the referrer's reward."""
    created_at: datetime
    """When it was made."""
    updated_at: datetime
    """When it last changed."""


class ProgramPage(PageOut):
    items: Annotated[list[ProgramOut], Field(description="this page's programs")]


class ReferralCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"referrer": "alice", "referred": "bob", "program_id": 1}]},
        use_attribute_docstrings=True,
        extra="forbid",
    )

    referrer: UserHash
    """Who referred the new user."""
    referred: UserHash
    """The new user."""
    program_id: Id | None = None
    """The program; default: the oldest."""


class ReferralOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The referral's id."""
    program: ProgramOut
    """The program it was made under."""
    referrer: str
    """Who referred."""
    referred: str
    """The new user."""
    credit_value: MoneyOut
    """The new user's sign-up credit, as it was then."""
    target_value: MoneyOut
    """The target, as it was then."""
    total_amount_paid: MoneyOut
    """What the new user has paid in all."""
    rewarded_at: datetime | None
    """When the referrer was rewarded, if yet."""
    created_at: datetime
    """When the new user signed up."""


class PaymentIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"total_amount_paid": 120.5}]}, extra="forbid"
    )

    total_amount_paid: Annotated[MoneyIn, Field(description="the user's running total")]


class PaymentOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    user_hash: str
    """The paying user."""
    total_amount_paid: MoneyOut | None
    """Their running total now."""
    acquired_credit: Annotated[
        MoneyOut, Field(description="the referrer's reward, when this payment granted it; else 0")
    ]
    referral: ReferralOut | None
    """The referral that brought them in, if any."""


class StatementOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    user_hash: str
    """The user."""
    signup_credit: MoneyOut
    """Their own sign-up credit."""
    potential_credit: MoneyOut
    """Rewards of their referrals not yet at the target."""
    acquired_credit: MoneyOut
    """Rewards earned."""
    referred_by: str | None
    """Who referred them, if anybody."""
    referrals: int
    """How many users they referred."""
    program: ProgramOut
    """The program."""


class CreditOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The entry's id."""
    referral_id: int
    """The referral it comes from."""
    user_hash: str
    """Who is credited."""
    kind: str
    """Signup (the new user's credit) or reward (the referrer's)."""
    amount: MoneyOut
    """How much."""
    created_at: datetime
    """When it was credited."""


class CreditPage(PageOut):
    items: Annotated[list[CreditOut], Field(description="this page's ledger entries")]
