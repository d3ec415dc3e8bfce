"""``promos worker``: deliver the outbox's webhooks and callbacks in a process of its own."""

from __future__ import annotations

import asyncio
import logging.config
import signal

import click

from promos.cli._run import run
from promos.cli._run import settings as settings_from_env
from promos.clock import utc_now
from promos.db import Database
from promos.events.dispatcher import Dispatcher
from promos.observability.logs import log_config
from promos.settings import Settings


@click.command()
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
def worker(once: bool) -> None:
    """Deliver webhooks and billing callbacks until stopped (SIGTERM or Ctrl-C).

    Servers deliver too unless PROMOS_WEBHOOK_DISPATCHER=false; any number of workers and
    servers can run at once on PostgreSQL (they never take the same delivery).
    """
    if not logging.getLogger().handlers:  # unless whoever runs this configured logging
        # The dispatcher's warnings in the server's format (JSON lines, text on a terminal).
        logging.config.dictConfig(log_config(settings_from_env()))

    async def work(database: Database, settings: Settings) -> int:
        dispatcher = Dispatcher.from_settings(settings, database, utc_now)
        if once:
            try:
                return await deliver_due(dispatcher)
            finally:
                await dispatcher.close()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        dispatcher.start()
        await stop.wait()
        await dispatcher.stop()
        return 0

    sent = run(work)
    if once:
        click.echo(f"attempted {sent} deliveries")


async def deliver_due(dispatcher: Dispatcher) -> int:
    """Every delivery due now (a failed one is due again only after its backoff)."""
    total = 0
    while sent := await dispatcher.deliver_due():
        total += sent
    return total
