"""``promos migrate``: bring the database schema up to date."""

from __future__ import annotations

import click

from promos import migrate as migrations
from promos.cli._run import run
from promos.db import Database
from promos.settings import Settings


@click.command()
def migrate() -> None:
    """Apply every pending migration to PROMOS_DATABASE_URL."""

    async def work(database: Database, _: Settings) -> set[str]:
        await migrations.upgrade(database.engine)
        return await migrations.current_revisions(database.engine)

    click.echo(f"database schema is at revision {', '.join(sorted(run(work, prepare=False)))}")
