"""``promos users``: add, list, show and disable users, reset a password or two-factor sign-in."""

from __future__ import annotations

import click

from promos.auth import changes, service
from promos.auth.schemas import UserOut
from promos.cli._output import json_option, show_list, show_one
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.db import Database
from promos.settings import Settings

COLUMNS = ("id", "username", "role", "disabled", "two_factor", "created_at")


@click.group()
def users() -> None:
    """Manage users.

    Changes are in the audit log, made by cli:<your uid>."""


@users.command("create")
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", type=click.Choice(["admin", "sales"]), default="admin", show_default=True)
@json_option
def create(username: str, password: str, role: service.Role, *, as_json: bool) -> None:
    """Create a user with a password (asked for when not given)."""

    async def work(database: Database, _: Settings) -> service.User:
        async with database.begin() as conn:
            return await changes.create_user(
                conn,
                actor=cli_actor(),
                username=username,
                password=password,
                role=role,
                now=utc_now(),
            )

    user = run(work)
    if as_json:
        show_one(UserOut.model_validate(user), as_json=True)
    else:
        click.echo(f"created {user.role} user {user.username!r} (id {user.id})")


@users.command("list")
@json_option
def list_users(*, as_json: bool) -> None:
    """List every user, disabled ones too."""

    async def work(database: Database, _: Settings) -> list[service.User]:
        async with database.begin() as conn:
            return await service.list_users(conn)

    show_list((UserOut.model_validate(u) for u in run(work)), columns=COLUMNS, as_json=as_json)


@users.command("show")
@click.argument("username")
@json_option
def show(username: str, *, as_json: bool) -> None:
    """Show a user."""

    async def work(database: Database, _: Settings) -> service.User:
        async with database.begin() as conn:
            return await service.get_user_by_name(conn, username)

    show_one(UserOut.model_validate(run(work)), as_json=as_json)


@users.command("disable")
@click.argument("username")
@json_option
def disable(username: str, *, as_json: bool) -> None:
    """Disable a user.

    Their password and sign-in tokens stop working (a running server's cache of verified
    credentials trusts them for up to PROMOS_AUTH_CACHE_SECONDS more)."""

    async def work(database: Database, _: Settings) -> service.User:
        async with database.begin() as conn:
            user = await service.get_user_by_name(conn, username)
            return await changes.disable_user(
                conn, actor=cli_actor(), user_id=user.id, now=utc_now()
            )

    user = run(work)
    if as_json:
        show_one(UserOut.model_validate(user), as_json=True)
    else:
        click.echo(f"disabled user {user.username!r} (id {user.id})")


@users.command("reset-password")
@click.argument("username")
@click.option(
    "--password",
    prompt="New password",
    hide_input=True,
    confirmation_prompt=True,
    help="The new password; asked for (twice) when not given",
)
def reset_password(username: str, password: str) -> None:
    """Set a user's password (an admin's reset).

    Every sign-in token of USERNAME's is revoked (a running server's cache of verified
    credentials trusts them for up to PROMOS_AUTH_CACHE_SECONDS more)."""

    async def work(database: Database, _: Settings) -> int:
        async with database.begin() as conn:
            user = await service.get_user_by_name(conn, username)
            return await changes.reset_password(
                conn, actor=cli_actor(), user_id=user.id, password=password, now=utc_now()
            )

    revoked = run(work)
    click.echo(f"new password set for {username!r}; {revoked} sign-in token(s) revoked")


@users.command("reset-2fa")
@click.argument("username")
def reset_two_factor(username: str) -> None:
    """Turn off USERNAME's two-factor sign-in (a lost device, no recovery code left).

    They sign in with their password alone until they enrol again (an admin who must have
    two-factor sign-in can then only enrol). A running server's cache of verified
    credentials may take up to PROMOS_AUTH_CACHE_SECONDS to see it."""

    async def work(database: Database, _: Settings) -> service.User:
        async with database.begin() as conn:
            user = await service.get_user_by_name(conn, username)
            return await changes.reset_two_factor(
                conn, actor=cli_actor(), user_id=user.id, now=utc_now()
            )

    user = run(work)
    if user.two_factor:
        click.echo(f"two-factor sign-in turned off for {username!r}")
    else:
        click.echo(f"{username!r} had no two-factor sign-in: nothing to turn off")
