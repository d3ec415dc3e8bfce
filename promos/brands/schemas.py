"""Bodies of the brand user admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

UserId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._~-]+$")]


class BrandUserIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"user_id": "shop-42"}]},
        use_attribute_docstrings=True,
        extra="forbid",
        strict=True,
    )

    user_id: UserId
    """The user's id, as the discount generator's get_code route takes it."""
    secret: Annotated[
        str | None,
        Field(
            min_length=16,
            max_length=255,
            pattern=r"^[A-Za-z0-9._~-]+$",
            description="Carry over an existing secret; leave out to get a random one",
        ),
    ] = None


class NewBrandUserOut(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    user_id: str
    """The user's id."""
    created_at: datetime
    """When it was made."""
    secret: Annotated[str, Field(description="Shown this once; stored only as a digest")]
