"""``promos citus``: distribute Promos' tables over a Citus cluster (docs/deployment.md)."""

from __future__ import annotations

import click

from promos import citus as placement
from promos.cli._run import run
from promos.db import Database
from promos.settings import Settings


@click.group()
def citus() -> None:
    """Promos on a Citus cluster: PROMOS_DATABASE_URL names its coordinator."""


@citus.command()
@click.option(
    "--shard-count",
    type=click.IntRange(1, 4096),
    default=None,
    help="Shards per distributed table (default: Citus' own, citus.shard_count)",
)
def distribute(shard_count: int | None) -> None:
    """Distribute the migrated tables: code pools by client, offers by game, the small tables
    as reference tables. Run after `promos migrate`; run again, it does what is left."""

    async def work(database: Database, _: Settings) -> list[str]:
        try:
            return await placement.distribute(database.engine, shard_count=shard_count)
        except placement.NotCitus as exc:
            raise click.ClickException(str(exc)) from None

    done = run(work)
    for line in done:
        click.echo(line)
    click.echo(f"{len(done)} placed" if done else "every table and function is placed already")
