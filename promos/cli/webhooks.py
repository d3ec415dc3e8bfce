"""``promos webhooks prune``: drop the delivery log and events no one needs any more."""

from __future__ import annotations

from datetime import timedelta

import click

from promos.cli._run import run
from promos.clock import utc_now
from promos.db import Database
from promos.events import service
from promos.settings import Settings


@click.group()
def webhooks() -> None:
    """Webhook deliveries and events."""


@webhooks.command("prune")
@click.option(
    "--older-than-days", type=click.IntRange(min=1), default=30, show_default=True, metavar="N"
)
@click.option(
    "--batch",
    type=click.IntRange(1, 100_000),
    default=10_000,
    show_default=True,
    help="Rows deleted per transaction",
)
def prune(older_than_days: int, batch: int) -> None:
    """Delete delivered and cancelled deliveries created more than N days ago (a delivery a
    replay repeats stays), their attempts, and the events no delivery refers to any more."""
    before = utc_now() - timedelta(days=older_than_days)

    async def work(database: Database, _settings: Settings) -> tuple[int, int, int]:
        deliveries = attempts = events = 0
        # Short transactions: the dispatchers go on delivering meanwhile.
        while True:
            async with database.begin() as conn:
                pruned = await service.prune_deliveries(conn, before=before, limit=batch)
            deliveries, attempts = deliveries + pruned.deliveries, attempts + pruned.attempts
            if pruned.deliveries < batch:
                break
        while True:
            async with database.begin() as conn:
                gone = await service.prune_events(conn, before=before, limit=batch)
            events += gone
            if gone < batch:
                break
        return deliveries, attempts, events

    deliveries, attempts, events = run(work)
    click.echo(
        f"pruned {deliveries} deliveries, {attempts} attempts and {events} events "
        f"created before {before:%Y-%m-%d %H:%M} UTC"
    )
