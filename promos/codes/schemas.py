"""Request and response bodies of the code pool API (native ``/v1``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from promos.codes.service import Batch, Rules
from promos.http.pagination import PageOut
from promos.validation import MAX_PER_CUSTOMER, MAX_TIME_LIMIT_DAYS, Identifier, Name

CustomerId = Identifier


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
