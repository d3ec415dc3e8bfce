"""Response bodies of the audit log API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from promos.http.pagination import PageOut


class ActorOut(BaseModel):
    kind: str
    id: int
    name: str
    role: str


class TargetOut(BaseModel):
    type: str
    id: str


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: ActorOut
    action: str
    target: TargetOut
    before: dict[str, Any] | None = Field(description="the target before the change, if any")
    after: dict[str, Any] | None = Field(description="the target after the change, if any")


class AuditPage(PageOut):
    items: Annotated[list[AuditEntryOut], Field(description="this page's entries")]
