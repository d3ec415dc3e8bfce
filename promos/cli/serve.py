"""``promos serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import logging
import logging.config

import click

from promos import __version__
from promos.app import bootstrap_admin
from promos.cli._address import base_url
from promos.cli._protocol import ConnectionLimits, PromosConfig
from promos.cli._run import run, settings
from promos.cli._uvicorn import run_server
from promos.clock import utc_now
from promos.datadir import describe
from promos.db import Database
from promos.home import pages
from promos.observability.logs import log_config
from promos.observability.multiproc import metrics_directory
from promos.settings import Settings

log = logging.getLogger(__name__)


@click.command()
@click.option("--host", help="Address to listen on [default: PROMOS_HOST or 127.0.0.1]")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="Port to listen on [default: PROMOS_PORT or 8000]",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Worker processes [default: PROMOS_WORKERS or 1]",
)
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API. An embedded SQLite database is migrated first; PostgreSQL must be."""
    config = settings()
    if not logging.getLogger().handlers:  # unless whoever runs this configured logging
        # This process's lines (the admin bootstrap's, the first ones) as the server's.
        logging.config.dictConfig(log_config(config))
    count = workers or config.workers

    async def prepare(database: Database, config: Settings) -> None:
        await bootstrap_admin(database, config, utc_now())

    # Once, before any worker starts: migrates an embedded SQLite database (refuses an
    # un-migrated PostgreSQL one) and creates the first admin, or says why not.
    run(prepare)
    host, port = host or config.host, port or config.port
    _announce(base_url(host, port), config, count)
    server_config = PromosConfig(
        "promos.app:app_from_env",
        factory=True,
        host=host,
        port=port,
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
        # uvicorn's 5 s restarts a worker still importing on a busy machine, again and again.
        timeout_worker_healthcheck=config.worker_healthcheck_seconds,
    )
    with metrics_directory(count):  # before any worker starts: /metrics sums them all
        run_server(server_config)  # on SIGTERM: stop listening, finish the requests begun, exit


def _announce(url: str, config: Settings, workers: int) -> None:
    """Where to go, and which database this is: the first lines a newcomer reads."""
    processes = "1 process" if workers == 1 else f"{workers} worker processes"
    log.info("Promos %s starting at %s (%s)", __version__, url, processes)
    for page in pages(config):
        log.info("%s: %s%s", page.title, url, page.path)
    log.info("database: %s", describe(config.database_url))
