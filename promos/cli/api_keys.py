"""``promos api-keys create``: a key for a service, shown once."""

from __future__ import annotations

import click

from promos.auth import service
from promos.cli._run import run
from promos.clock import utc_now
from promos.db import Database
from promos.settings import Settings


@click.group("api-keys")
def api_keys() -> None:
    """Manage API keys."""


@api_keys.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. the calling service")
@click.option("--role", type=click.Choice(["admin", "sales"]), default="sales", show_default=True)
def create(name: str, role: service.Role) -> None:
    """Create an API key and print its secret (it is stored only as a digest)."""

    async def work(database: Database, _: Settings) -> service.NewApiKey:
        async with database.begin() as conn:
            return await service.create_api_key(conn, name=name, role=role, now=utc_now())

    new = run(work)
    click.echo(
        f"API key {new.key.id} ({new.key.role}) for {new.key.name!r}; "
        "keep it, it is not shown again:",
        err=True,
    )
    click.echo(new.secret)
