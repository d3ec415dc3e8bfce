"""Request and response bodies of the code pool API (native ``/v1``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from promos.codes.service import Batch, Rules
from promos.http.pagination import PageOut
from promos.validation import MAX_PER_CUSTOMER, MAX_TIME_LIMIT_DAYS, Identifier, Name

CustomerId = Identifier
# What becomes of the code of a hold released or lapsed: burnt, or returned to the pool.
ReleasedCodes = Literal["burn", "return"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RulesIn(Strict):
    model_config = ConfigDict(use_attribute_docstrings=True)

    max_per_customer: Annotated[int | None, Field(ge=1, le=MAX_PER_CUSTOMER)] = None
    """At most this many codes per customer in the batch; null: no limit."""
    time_limit_days: Annotated[int | None, Field(ge=1, le=MAX_TIME_LIMIT_DAYS)] = None
    """Count only the codes of the last this many days; null: all time."""

    def to_rules(self) -> Rules:
        return Rules.from_json(
            {
                k: v
                for k, v in (
                    ("maxpercustomer", self.max_per_customer),
                    ("timelimit", self.time_limit_days),
                )
                if v is not None
            }
        )


class Out(BaseModel):
    """A response body read straight from a service's dataclass."""

    model_config = ConfigDict(from_attributes=True)


class RulesOut(Out):
    model_config = ConfigDict(use_attribute_docstrings=True)

    max_per_customer: int | None
    """At most this many codes per customer in the batch."""
    time_limit_days: int | None
    """Counted over the last this many days."""


class BatchCreate(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b",
                    "name": "Summer sale",
                    "rules": {"max_per_customer": 1, "time_limit_days": 30},
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    client_id: Annotated[UUID, Field(strict=False)]
    """The client (your own id for it; nothing to register first)."""
    name: Name
    """A name for people."""
    rules: RulesIn = RulesIn()
    """The per-customer rules."""


class BatchOut(Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a",
                    "client_id": "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b",
                    "clients": [
                        "217be7c8-679c-4e08-bffc-db3451bdcdbf",
                        "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b",
                    ],
                    "name": "Summer sale",
                    "rules": {"max_per_customer": 1, "time_limit_days": 30},
                    "expired": False,
                    "created_at": "2026-03-01T12:00:00Z",
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    id: UUID
    """The batch's id."""
    client_id: UUID
    """The client it belongs to: the one it was made for, or the client of its upload's first
    row."""
    clients: list[UUID]
    """Every client whose codes it may hand out, by id: its own client, and each client named
    by a row of its uploads. An issue names one of them."""
    name: str
    """A name for people."""
    rules: RulesOut
    """The per-customer rules."""
    expired: bool
    """Whether issuing from it has stopped."""
    created_at: datetime
    """When it was made."""

    @classmethod
    def of(cls, batch: Batch, clients: Sequence[UUID]) -> Self:
        """The body of ``batch``, whose clients are ``clients``."""
        return cls.model_validate(
            {
                "id": batch.id,
                "client_id": batch.client_id,
                "clients": list(clients),
                "name": batch.name,
                "rules": RulesOut.model_validate(batch.rules),
                "expired": batch.expired,
                "created_at": batch.created_at,
            }
        )


class BatchPage(PageOut):
    items: Annotated[list[BatchOut], Field(description="this page's batches")]


class StatsOut(Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a",
                    "total": 1000,
                    "issued": 250,
                    "left": 750,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    batch_id: UUID
    """The batch."""
    total: int
    """Codes it holds."""
    issued: int
    """Codes handed out."""
    left: int
    """Codes left to hand out."""


class IssueIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b",
                    "customer_id": "customer-1001",
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    client_id: Annotated[UUID, Field(strict=False)]
    """One of the batch's clients (its `clients`): the code handed out is one of this client's."""
    customer_id: CustomerId
    """Who gets the code (your own id for them)."""


class IssuedOut(Out):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "SUMMER-0001",
                    "batch_id": "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a",
                    "client_id": "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b",
                    "customer_id": "customer-1001",
                    "issued_at": "2026-03-01T12:05:00Z",
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    code: str
    """The code."""
    batch_id: UUID
    """The batch it came from."""
    client_id: UUID
    """The client."""
    customer_id: str
    """Who got it."""
    issued_at: datetime
    """When."""


class IssuedPage(PageOut):
    items: Annotated[list[IssuedOut], Field(description="this page's codes")]


class ImportOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    batch_id: UUID
    """The batch the codes went into."""
    added: int
    """How many codes were added."""


# --- holds -------------------------------------------------------------------------------------

MAX_HOLD_SECONDS = 7 * 24 * 3600
DEFAULT_HOLD_SECONDS = 900


class PoolHoldIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b",
                    "customer_id": "customer-1001",
                    "order": "order-5531",
                    "ttl_seconds": 900,
                }
            ]
        },
        use_attribute_docstrings=True,
    )

    client_id: Annotated[UUID, Field(strict=False)]
    """One of the batch's clients (its `clients`): the code held is one of this client's."""
    customer_id: CustomerId
    """Who the code is held for (your own id for them)."""
    order: Identifier
    """The checkout's order: one live hold per order and batch."""
    ttl_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_HOLD_SECONDS,
            description="how long the hold lasts; cut to PROMOS_POOL_HOLD_MAX_SECONDS",
        ),
    ] = DEFAULT_HOLD_SECONDS


class PoolHoldOut(Out):
    model_config = ConfigDict(from_attributes=True, use_attribute_docstrings=True)

    id: int
    """The hold's id (a confirmed hold keeps it)."""
    batch_id: UUID
    """The batch its code came from."""
    client_id: UUID
    """The code's client."""
    code: str
    """The code held."""
    customer_id: str
    """Who holds it."""
    order: str
    """The order it is held for."""
    status: Literal["held", "confirmed", "released", "expired"]
    """`held`; `confirmed` (the code is the customer's, issued); `released`; `expired`
    (past `expires_at`, whether or not its code was returned or burnt yet)."""
    created_at: datetime
    """When it was held (the code's `issued_at`)."""
    expires_at: datetime
    """When it lapses unless confirmed."""
    ended_at: datetime | None
    """When it was confirmed, released, or ended as expired (null for a lapsed hold whose
    code has not been returned or burnt yet)."""
    returned: bool | None
    """For a released or expired hold that has ended: whether its code went back to the pool
    (true) or was burnt (false); null otherwise."""


class PoolHoldPage(PageOut):
    items: Annotated[list[PoolHoldOut], Field(description="this page's live holds")]


class HoldSettingsIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"released_codes": "return"}]},
        use_attribute_docstrings=True,
    )

    released_codes: ReleasedCodes
    """What becomes of the code of a hold released or expired from now on: `burn` (never
    issued again: a code a customer has seen may be shared) or `return` (free again)."""


class HoldSettingsOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    batch_id: UUID
    """The batch."""
    released_codes: ReleasedCodes
    """What becomes of a released or expired hold's code: `burn` (default) or `return`."""
