"""``promos serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import asyncio

import click
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from promos import migrate
from promos.cli._run import database_unusable, settings
from promos.db import Database
from promos.errors import PromosError


@click.command()
@click.option("--host", help="Address to listen on [default: PROMOS_HOST or 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on [default: PROMOS_PORT or 8000]")
@click.option("--workers", type=int, help="Worker processes [default: PROMOS_WORKERS or 1]")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API. An embedded SQLite database is migrated first; PostgreSQL must be."""
    config = settings()

    async def check() -> None:
        database = Database(config.database_url, pool_size=1, max_overflow=0)
        try:
            await migrate.prepare(database.engine)
        finally:
            await database.dispose()

    try:
        asyncio.run(check())
    except PromosError as exc:
        raise click.ClickException(exc.message) from None
    except (OSError, SQLAlchemyError) as exc:
        raise database_unusable(exc) from None
    uvicorn.run(
        "promos.app:app_from_env",
        factory=True,
        host=host or config.host,
        port=port or config.port,
        workers=workers or config.workers,
        loop="uvloop",
        http="httptools",
        log_level=config.log_level,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )
