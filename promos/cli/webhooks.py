"""``promos webhooks``: subscriptions listed, shown and deleted; the delivery log pruned."""

from __future__ import annotations

from datetime import timedelta

import click

from promos.cli._output import ROW_ID, json_option, show_list, show_one
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.db import Database
from promos.events import changes, service
from promos.events.schemas import SubscriptionOut
from promos.events.service import Subscription
from promos.pagination import every_item
from promos.settings import Settings

COLUMNS = ("id", "url", "events", "active", "created_at")


@click.group()
def webhooks() -> None:
    """Manage webhook subscriptions, deliveries and events.

    Changes are in the audit log, made by cli:<your uid>."""


@webhooks.command("list")
@json_option
def list_subscriptions(*, as_json: bool) -> None:
    """List every webhook subscription, deleted ones too (never a secret)."""

    async def work(database: Database, _: Settings) -> list[Subscription]:
        async with database.begin() as conn:
            return await every_item(
                lambda key: service.list_subscriptions(conn, limit=1000, after_key=key)
            )

    found = run(work)
    show_list((SubscriptionOut.model_validate(s) for s in found), columns=COLUMNS, as_json=as_json)


@webhooks.command("show")
@click.argument("subscription_id", type=ROW_ID)
@json_option
def show(subscription_id: int, *, as_json: bool) -> None:
    """Show a webhook subscription (never its secret)."""

    async def work(database: Database, _: Settings) -> Subscription:
        async with database.begin() as conn:
            return await service.get_subscription(conn, subscription_id)

    show_one(SubscriptionOut.model_validate(run(work)), as_json=as_json)


@webhooks.command("delete")
@click.argument("subscription_id", type=ROW_ID)
@json_option
def delete(subscription_id: int, *, as_json: bool) -> None:
    """Delete (stop) a webhook subscription.

    No new deliveries; its pending ones are cancelled; its delivery log stays (as
    DELETE /v1/webhooks/{id} does)."""

    async def work(database: Database, _: Settings) -> Subscription:
        async with database.begin() as conn:
            return await changes.delete_subscription(
                conn, actor=cli_actor(), subscription_id=subscription_id, now=utc_now()
            )

    stopped = run(work)
    if as_json:
        show_one(SubscriptionOut.model_validate(stopped), as_json=True)
    else:
        click.echo(f"deleted webhook subscription {stopped.id} ({stopped.url})")


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
