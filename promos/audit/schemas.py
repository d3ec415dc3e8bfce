"""Response bodies of the audit log API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from promos.http.pagination import PageOut


class ActorOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    kind: str
    """User or api_key."""
    id: int
    """The user's or API key's id."""
    name: str
    """The user name or the key's name, as it was then."""
    role: str
    """Admin or sales, as it was then."""


class TargetOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    type: str
    """What kind of thing, e.g. special."""
    id: str
    """Its id."""


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    id: int
    """The entry's id (later entries have larger ids)."""
    at: datetime
    """When the change was made."""
    actor: ActorOut
    """Who made it."""
    action: str
    """What was done, e.g. special.update."""
    target: TargetOut
    """What it was done to."""
    before: dict[str, Any] | None = Field(description="the target before the change, if any")
    after: dict[str, Any] | None = Field(description="the target after the change, if any")


class AuditPage(PageOut):
    items: Annotated[list[AuditEntryOut], Field(description="this page's entries")]
