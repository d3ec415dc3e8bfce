"""``promos brand-users create``: a user of the discount generator's get_code route."""

from __future__ import annotations

import sys

import click

from promos.brands import service
from promos.cli._run import run
from promos.clock import utc_now
from promos.db import Database
from promos.settings import Settings


@click.group("brand-users")
def brand_users() -> None:
    """Manage the discount generator's brand users."""


@brand_users.command("create")
@click.option("--user-id", required=True, help="The user's id, e.g. 2341")
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read an existing secret from standard input instead of making a new one",
)
def create(user_id: str, secret_stdin: bool) -> None:
    """Create a brand user and print its secret (stored only as a digest)."""
    secret = sys.stdin.readline().strip() if secret_stdin else None

    async def work(database: Database, _: Settings) -> service.NewBrandUser:
        async with database.begin() as conn:
            return await service.create_brand_user(
                conn, user_id=user_id, secret=secret, now=utc_now()
            )

    new = run(work)
    click.echo(
        f"brand user {new.user.user_id!r}; keep the secret, it is not shown again:", err=True
    )
    click.echo(new.secret)
