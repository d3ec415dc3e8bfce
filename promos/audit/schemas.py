"""Response bodies of the audit log API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    limit: int
    next_cursor: int | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last page"
    )
