"""Request and response bodies of the referral API; amounts are JSON numbers both ways."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from promos.db import MAX_MONEY, MONEY_PLACES
from promos.http.pagination import PageOut
from promos.validation import Identifier, Name


def as_number(value: Decimal) -> int | float:
    """An amount as a JSON number (exact: amounts have two places and stay below 10**9)."""
    return int(value) if value == value.to_integral_value() else float(value)


MoneyIn = Annotated[
    Decimal,
    Field(allow_inf_nan=False, ge=0, le=MAX_MONEY, decimal_places=MONEY_PLACES),
]
MoneyOut = Annotated[Decimal, PlainSerializer(as_number, return_type=int | float)]
UserHash = Identifier


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProgramCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    credit_value: MoneyIn
    target_value: Annotated[MoneyIn, Field(gt=0)]


class ProgramUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    credit_value: MoneyIn | None = None
    target_value: Annotated[MoneyIn | None, Field(gt=0)] = None


class ProgramOut(Out):
    id: int
    name: str
    credit_value: MoneyOut
    target_value: MoneyOut
    created_at: datetime
    updated_at: datetime


class ProgramPage(PageOut):
    items: Annotated[list[ProgramOut], Field(description="this page's programs")]


class ReferralCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    referrer: UserHash
    referred: UserHash
    program_id: Annotated[int | None, Field(ge=1)] = None


class ReferralOut(Out):
    id: int
    program: ProgramOut
    referrer: str
    referred: str
    credit_value: MoneyOut
    target_value: MoneyOut
    total_amount_paid: MoneyOut
    rewarded_at: datetime | None
    created_at: datetime


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total_amount_paid: Annotated[MoneyIn, Field(description="the user's running total")]


class PaymentOut(Out):
    user_hash: str
    total_amount_paid: MoneyOut | None
    acquired_credit: Annotated[
        MoneyOut, Field(description="the referrer's reward, when this payment granted it; else 0")
    ]
    referral: ReferralOut | None


class StatementOut(Out):
    user_hash: str
    signup_credit: MoneyOut
    potential_credit: MoneyOut
    acquired_credit: MoneyOut
    referred_by: str | None
    referrals: int
    program: ProgramOut


class CreditOut(Out):
    id: int
    referral_id: int
    user_hash: str
    kind: str
    amount: MoneyOut
    created_at: datetime


class CreditPage(PageOut):
    items: Annotated[list[CreditOut], Field(description="this page's ledger entries")]
