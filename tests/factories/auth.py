"""Users and API keys, made through the auth service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from promos.auth import service
from promos.auth.scopes import parse_scope
from promos.db import Database


async def make_user(
    database: Database,
    *,
    now: datetime,
    username: str = "sally",
    password: str = "sales password",
    role: service.Role = "sales",
) -> service.User:
    async with database.begin() as conn:
        return await service.create_user(
            conn, username=username, password=password, role=role, now=now
        )


async def make_api_key(
    database: Database,
    *,
    now: datetime,
    name: str = "shop",
    role: service.Role = "sales",
    scopes: Sequence[str] | None = None,
) -> str:
    """A key's secret; ``scopes`` as their text (None: every scope of its role)."""
    parsed = None if scopes is None else [parse_scope(s) for s in scopes]
    async with database.begin() as conn:
        made = await service.create_api_key(conn, name=name, role=role, now=now, scopes=parsed)
    return made.secret
