"""``GET /healthcheck``: the app is up and its database answers (Offers' documented shape)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from promos.http.deps import State
from promos.http.responses import JSON

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class Healthy(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    healthy: bool
    """True: the database answers."""


class Unhealthy(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    healthy: bool
    """False."""
    error: str
    """DatabaseError."""
    code: str
    """OFF-000."""
    description: str
    """What failed."""


@router.get(
    "/healthcheck",
    response_model=Healthy,
    responses={500: {"model": Unhealthy, "description": "The database does not answer."}},
)
async def healthcheck(state: State) -> JSON:
    """200 with ``{"healthy": true}`` when the database answers, 500 otherwise."""
    try:
        # A read: on SQLite it does not queue behind a writer (a large generation).
        async with state.database.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is unhealthy
        log.warning("healthcheck: database unreachable: %s", type(exc).__name__)
        return JSON(
            {
                "healthy": False,
                "error": "DatabaseError",
                "code": "OFF-000",
                "description": f"the database is unreachable ({type(exc).__name__})",
            },
            status_code=500,
        )
    return JSON({"healthy": True})
