"""``promos migrate``: bring the database schema up to date."""

from __future__ import annotations

import asyncio

import click

from promos import migrate as migrations
from promos.cli._run import settings
from promos.db import Database


@click.command()
def migrate() -> None:
    """Apply every pending migration to PROMOS_DATABASE_URL."""
    config = settings()

    async def main() -> str | None:
        database = Database(config.database_url, pool_size=1, max_overflow=0)
        try:
            await migrations.upgrade(database.engine)
            return await migrations.current_revision(database.engine)
        finally:
            await database.dispose()

    click.echo(f"database schema is at revision {asyncio.run(main())}")
