"""``promos brand-users``: the discount generator's users of its get_code route."""

from __future__ import annotations

import sys

import click

from promos.brands import changes, service
from promos.brands.schemas import BrandUserOut, NewBrandUserOut
from promos.cli._output import json_option, show_list, show_one
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.db import Database
from promos.settings import Settings

COLUMNS = ("user_id", "created_at")


@click.group("brand-users")
def brand_users() -> None:
    """Manage the discount generator's brand users.

    Changes are in the audit log, made by cli:<your uid>."""


@brand_users.command("create")
@click.option("--user-id", required=True, help="The user's id, e.g. 2341")
@click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read an existing secret from standard input instead of making a new one",
)
@json_option
def create(user_id: str, *, secret_stdin: bool, as_json: bool) -> None:
    """Create a brand user and print its secret (stored only as a digest)."""
    secret = sys.stdin.readline().strip() if secret_stdin else None

    async def work(database: Database, _: Settings) -> service.NewBrandUser:
        async with database.begin() as conn:
            return await changes.create_brand_user(
                conn, actor=cli_actor(), user_id=user_id, secret=secret, now=utc_now()
            )

    new = run(work)
    if as_json:
        out = NewBrandUserOut(
            user_id=new.user.user_id, created_at=new.user.created_at, secret=new.secret
        )
        show_one(out, as_json=True)
        return
    click.echo(
        f"brand user {new.user.user_id!r}; keep the secret, it is not shown again:", err=True
    )
    click.echo(new.secret)


@brand_users.command("list")
@json_option
def list_brand_users(*, as_json: bool) -> None:
    """List every brand user (never a secret)."""

    async def work(database: Database, _: Settings) -> list[service.BrandUser]:
        async with database.begin() as conn:
            return await service.list_brand_users(conn)

    found = run(work)
    show_list((BrandUserOut.model_validate(u) for u in found), columns=COLUMNS, as_json=as_json)


@brand_users.command("show")
@click.argument("user_id")
@json_option
def show(user_id: str, *, as_json: bool) -> None:
    """Show a brand user (never the secret)."""

    async def work(database: Database, _: Settings) -> service.BrandUser:
        async with database.begin() as conn:
            return await service.get_brand_user(conn, user_id)

    show_one(BrandUserOut.model_validate(run(work)), as_json=as_json)


@brand_users.command("delete")
@click.argument("user_id")
def delete(user_id: str) -> None:
    """Delete a brand user.

    Its secret stops working; the codes it was given stay issued to it."""

    async def work(database: Database, _: Settings) -> service.BrandUser:
        async with database.begin() as conn:
            return await changes.delete_brand_user(
                conn, actor=cli_actor(), user_id=user_id, now=utc_now()
            )

    run(work)
    click.echo(f"deleted brand user {user_id!r}")
