"""``promos serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import click

from promos.cli._protocol import ConnectionLimits, PromosConfig
from promos.cli._run import run, settings
from promos.cli._uvicorn import run_server
from promos.db import Database
from promos.observability.logs import log_config
from promos.observability.multiproc import metrics_directory
from promos.settings import Settings


@click.command()
@click.option("--host", help="Address to listen on [default: PROMOS_HOST or 127.0.0.1]")
@click.option("--port", type=int, help="Port to listen on [default: PROMOS_PORT or 8000]")
@click.option("--workers", type=int, help="Worker processes [default: PROMOS_WORKERS or 1]")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API. An embedded SQLite database is migrated first; PostgreSQL must be."""
    config = settings()
    count = workers or config.workers

    async def nothing(_database: Database, _settings: Settings) -> None:
        return None

    run(nothing)  # migrates an embedded SQLite database; refuses an un-migrated PostgreSQL one
    server_config = PromosConfig(
        "promos.app:app_from_env",
        factory=True,
        host=host or config.host,
        port=port or config.port,
        workers=count,
        loop="uvloop",
        # httptools, with limits on what a request's head may hold and on how slowly a client
        # may send: 431, 408 or a closed connection (promos/cli/_protocol.py).
        connection_limits=ConnectionLimits.from_settings(config),
        log_level=config.log_level,
        # JSON lines (or text on a terminal) for uvicorn's lines too; Promos logs each request
        # itself (promos.access), with the route template instead of the raw path.
        log_config=log_config(config),
        access_log=False,
        proxy_headers=True,
        # Whose X-Forwarded-For names the client (rate limits count per client address).
        forwarded_allow_ips=config.forwarded_allow_ips,
        timeout_graceful_shutdown=config.shutdown_timeout_seconds,
    )
    with metrics_directory(count):  # before any worker starts: /metrics sums them all
        run_server(server_config)  # on SIGTERM: stop listening, finish the requests begun, exit
