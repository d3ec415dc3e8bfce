"""Schema migrations with Alembic, driven by the app's own database connection."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from promos.errors import PromosError

MIGRATIONS = Path(__file__).parent / "migrations"


class NotMigrated(PromosError):
    code = "not_migrated"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the package's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    """The migrations, read once per process: Alembic reads and compiles every file each time."""
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> set[str]:
    """The newest revision of each domain's branch (each domain's migrations branch off 0001)."""
    return set(_scripts().get_heads())


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the schema up to the newest revision of every branch."""

    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), "heads")

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revisions(engine: AsyncEngine) -> set[str]:
    def read(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Refuse to go on with a schema older (or newer) than this code expects."""
    current, heads = await current_revisions(engine), head_revisions()
    if current != heads:
        raise NotMigrated(
            f"the database schema is at revision {_names(current)}, this Promos needs "
            f"{_names(heads)}: run `promos migrate` (with the same PROMOS_DATABASE_URL) first"
        )


def _names(revisions: set[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"


async def prepare(engine: AsyncEngine) -> None:
    """Migrate an embedded SQLite database; require any other to be migrated already."""
    if engine.dialect.name == "sqlite":
        # One already at every head (each start but the first) is left as it is.
        if await current_revisions(engine) != head_revisions():
            await upgrade(engine)
    else:
        await ensure_migrated(engine)
