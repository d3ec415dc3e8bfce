"""Request and response bodies of the referral API; amounts are JSON numbers both ways."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from promos.db import MAX_MONEY, MONEY_PLACES
from promos.http.pagination import PageOut
from promos.referrals.service import MAX_HOLD_DAYS, Referral
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
HoldDays = Annotated[int, Field(ge=0, le=MAX_HOLD_DAYS, strict=True)]


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
    reward_hold_days: HoldDays = 0
    """Days an earned reward stays pending (a refund voids it) before it is granted."""


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
    reward_hold_days: HoldDays | None = None
    """A new hold, in days."""


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
    reward_hold_days: int
    """Days an earned reward stays pending before it is granted (0: at once)."""
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


RewardStatus = Literal["waiting", "pending", "granted", "voided", "reversed"]


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
    """When the new user reached the target and earned the referrer's reward, if yet."""
    granted_at: datetime | None
    """When that reward is (or was) granted: ``rewarded_at`` plus the hold."""
    reversed_at: datetime | None
    """When a refund voided or clawed back the reward, if it did."""
    reward_hold_days: int
    """The hold, as it was at sign-up."""
    reward_status: RewardStatus
    """The referrer's reward now: waiting (target not reached), pending, granted, voided
    (refunded while pending) or reversed (clawed back once granted)."""
    created_at: datetime
    """When the new user signed up."""

    @classmethod
    def at(cls, referral: Referral, now: datetime) -> ReferralOut:
        """The referral, its reward's status read from the clock at ``now``."""
        return cls.model_validate(
            {
                **{f: getattr(referral, f) for f in Referral.__dataclass_fields__},
                "program": ProgramOut.model_validate(referral.program),
                "reward_status": referral.reward_state(now),
            }
        )


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
    pending_credit: Annotated[
        MoneyOut,
        Field(description="the referrer's reward, when this payment earned it but it is held"),
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
    """Rewards of their referrals not granted yet: not at the target, or pending."""
    pending_credit: MoneyOut
    """The part of ``potential_credit`` earned but held until the hold's end."""
    acquired_credit: MoneyOut
    """Rewards granted, less those clawed back."""
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
    """``signup`` (the new user's credit), ``potential`` (the referrer's, at sign-up),
    ``acquired`` (the reward earned), ``voided`` (a pending reward refunded) or ``clawback``
    (a granted reward refunded)."""
    amount: MoneyOut
    """How much."""
    created_at: datetime
    """When it was written."""
    available_at: datetime | None
    """When it counts: a held reward (and its void) from the hold's end; null: at once."""


class RefundIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 30}]}, extra="forbid")

    amount: Annotated[MoneyIn, Field(gt=0, description="what was given back to the user (above 0)")]


class RefundOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The refund's id (the same when sent again with its Idempotency-Key)."""
    user_hash: str
    """The refunded user."""
    total_amount_paid: MoneyOut
    """Their running total after the refund (never below 0)."""
    reversal: Literal["voided", "clawback"] | None
    """What this refund did to the referrer's reward: voided it (pending), clawed it back
    (granted), or nothing (null: the total stays at the target, not earned, or already
    reversed)."""
    reversed_credit: MoneyOut
    """The reward this refund took back; else 0."""
    referral: ReferralOut
    """The referral, after the refund."""


class CreditPage(PageOut):
    items: Annotated[list[CreditOut], Field(description="this page's ledger entries")]
