"""``promos users create``: add a user from the shell."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.auth import service
from promos.cli._run import run
from promos.clock import utc_now
from promos.db import Database
from promos.settings import Settings


@click.group()
def users() -> None:
    """Manage users."""


@users.command("create")
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice(["admin", "sales"]), default="admin", show_default=True)
def create(username: str, password: str, role: service.Role) -> None:
    """Create a user with a password (asked for when not given)."""

    async def work(database: Database, _: Settings) -> service.User:
        conn: AsyncConnection
        async with database.begin() as conn:
            return await service.create_user(
                conn, username=username, password=password, role=role, now=utc_now()
            )

    user = run(work)
    click.echo(f"created {user.role} user {user.username!r} (id {user.id})")
