"""Users and API keys, made through the auth service."""

from __future__ import annotations

from datetime import datetime

from promos.auth import service
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
    database: Database, *, now: datetime, name: str = "shop", role: service.Role = "sales"
) -> str:
    async with database.begin() as conn:
        return (await service.create_api_key(conn, name=name, role=role, now=now)).secret
