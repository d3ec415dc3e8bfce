"""Request and response bodies of the code pool API (native ``/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from promos.codes.service import Rules
from promos.http.pagination import PageOut
from promos.validation import MAX_PER_CUSTOMER, MAX_TIME_LIMIT_DAYS, Identifier, Name

CustomerId = Identifier


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RulesIn(Strict):
    max_per_customer: Annotated[int | None, Field(ge=1, le=MAX_PER_CUSTOMER)] = None
    time_limit_days: Annotated[int | None, Field(ge=1, le=MAX_TIME_LIMIT_DAYS)] = None

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
    max_per_customer: int | None
    time_limit_days: int | None


class BatchCreate(Strict):
    client_id: Annotated[UUID, Field(strict=False)]
    name: Name
    rules: RulesIn = RulesIn()


class BatchOut(Out):
    id: UUID
    client_id: UUID
    name: str
    rules: RulesOut
    expired: bool
    created_at: datetime


class BatchPage(PageOut):
    items: Annotated[list[BatchOut], Field(description="this page's batches")]


class StatsOut(Out):
    batch_id: UUID
    total: int
    issued: int
    left: int


class IssueIn(Strict):
    client_id: Annotated[UUID, Field(strict=False)]
    customer_id: CustomerId


class IssuedOut(Out):
    code: str
    batch_id: UUID
    client_id: UUID
    customer_id: str
    issued_at: datetime


class IssuedPage(PageOut):
    items: Annotated[list[IssuedOut], Field(description="this page's codes")]


class ImportOut(BaseModel):
    batch_id: UUID
    added: int
