"""Running one async unit of work against the configured database, for CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from promos import migrate
from promos.db import Database
from promos.errors import PromosError
from promos.settings import Settings

T = TypeVar("T")


def settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def run(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Open the database (migrating an embedded SQLite one), run ``work``, close it."""
    config = settings()

    async def main() -> T:
        database = Database(config.database_url, pool_size=2, max_overflow=0)
        try:
            await migrate.prepare(database.engine)
            return await work(database, config)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except PromosError as exc:
        raise click.ClickException(exc.message) from None
    except (OSError, SQLAlchemyError) as exc:
        raise database_unusable(exc) from None


def database_unusable(exc: Exception) -> click.ClickException:
    """A one-line error for a database that cannot be reached or used."""
    cause = getattr(exc, "orig", None) or exc
    return click.ClickException(f"cannot use the database at PROMOS_DATABASE_URL: {cause}")
