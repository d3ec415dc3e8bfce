"""``promos api-keys``: keys for services (the secret shown once), listed, shown, revoked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from promos.auth import changes, service
from promos.auth.errors import InvalidScope
from promos.auth.schemas import ApiKeyOut, NewApiKeyOut
from promos.auth.scopes import Scope, parse_scope
from promos.cli._output import ROW_ID, json_option, show_list, show_one
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.db import Database
from promos.pagination import every_item
from promos.settings import Settings

COLUMNS = (
    "id",
    "name",
    "prefix",
    "role",
    "scopes",
    "revoked",
    "expires_at",
    "last_used_at",
    "last_used_from",
    "request_count",
)


def _scopes(_ctx: click.Context, _param: click.Parameter, given: tuple[str, ...]) -> list[Scope]:
    try:
        return [parse_scope(text) for text in given]
    except InvalidScope as exc:
        raise click.BadParameter(exc.message) from None


@click.group("api-keys")
def api_keys() -> None:
    """Manage API keys.

    Changes are in the audit log, made by cli:<your uid>."""


@api_keys.command("create")
@click.option("--name", required=True, help="What the key is for, e.g. the calling service")
@click.option("--role", type=click.Choice(["admin", "sales"]), default="sales", show_default=True)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    callback=_scopes,
    help="All the key may do, once per scope: KIND:ACTION or KIND:ACTION:ID,ID "
    "(e.g. promocodes:use, games:use:galaxy); none: every scope of its role",
)
@click.option(
    "--expires-at",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]),
    help="When it stops working by itself, in UTC (e.g. 2027-01-31 or 2027-01-31T18:00); "
    "none: never",
)
@json_option
def create(
    name: str,
    role: service.Role,
    scopes: list[Scope],
    expires_at: datetime | None,
    *,
    as_json: bool,
) -> None:
    """Create an API key and print its secret (it is stored only as a digest)."""

    async def work(database: Database, _: Settings) -> service.NewApiKey:
        async with database.begin() as conn:
            return await changes.create_api_key(
                conn,
                actor=cli_actor(),
                name=name,
                role=role,
                scopes=scopes or None,
                expires_at=expires_at.replace(tzinfo=UTC) if expires_at else None,
                now=utc_now(),
            )

    new = run(work)
    held = ", ".join(new.key.scopes) if new.key.scopes else f"every scope of {new.key.role}"
    _secret(new, f"API key {new.key.id} ({new.key.role}: {held}) for {new.key.name!r}", as_json)


@api_keys.command("rotate")
@click.argument("key_id", type=ROW_ID)
@click.option(
    "--grace-seconds",
    type=click.IntRange(0, int(service.MAX_ROTATION_GRACE.total_seconds())),
    required=True,
    help="How long the old secret still works (0: not at all; at most 30 days), for the "
    "services using it to get the new one",
)
@json_option
def rotate(key_id: int, grace_seconds: int, *, as_json: bool) -> None:
    """Give an API key a new secret and print it; the old one works --grace-seconds longer.

    A running server's cache of verified credentials trusts the old one for up to
    PROMOS_AUTH_CACHE_SECONDS more, never past its grace."""

    async def work(database: Database, _: Settings) -> service.NewApiKey:
        async with database.begin() as conn:
            return await changes.rotate_api_key(
                conn,
                actor=cli_actor(),
                key_id=key_id,
                grace=timedelta(seconds=grace_seconds),
                now=utc_now(),
            )

    new = run(work)
    _secret(new, f"API key {new.key.id} ({new.key.name!r}) rotated", as_json)


def _secret(new: service.NewApiKey, what: str, as_json: bool) -> None:
    """A new secret: the key as JSON with it, or a line on stderr and the secret alone."""
    if as_json:
        out = NewApiKeyOut(**ApiKeyOut.model_validate(new.key).model_dump(), key=new.secret)
        show_one(out, as_json=True)
        return
    click.echo(f"{what}; keep its secret, it is not shown again:", err=True)
    click.echo(new.secret)


@api_keys.command("list")
@json_option
def list_keys(*, as_json: bool) -> None:
    """List every API key, revoked ones too (a key's first characters, never its secret)."""

    async def work(database: Database, _: Settings) -> list[service.ApiKey]:
        async with database.begin() as conn:
            return await every_item(
                lambda key: service.list_api_keys(conn, limit=1000, after_key=key)
            )

    show_list((ApiKeyOut.model_validate(k) for k in run(work)), columns=COLUMNS, as_json=as_json)


@api_keys.command("show")
@click.argument("key_id", type=ROW_ID)
@json_option
def show(key_id: int, *, as_json: bool) -> None:
    """Show an API key (never its secret)."""

    async def work(database: Database, _: Settings) -> service.ApiKey:
        async with database.begin() as conn:
            return await service.get_api_key(conn, key_id)

    show_one(ApiKeyOut.model_validate(run(work)), as_json=as_json)


@api_keys.command("revoke")
@click.argument("key_id", type=ROW_ID)
@json_option
def revoke(key_id: int, *, as_json: bool) -> None:
    """Revoke an API key, for good.

    A running server's cache of verified credentials trusts it for up to
    PROMOS_AUTH_CACHE_SECONDS more."""

    async def work(database: Database, _: Settings) -> service.ApiKey:
        async with database.begin() as conn:
            return await changes.revoke_api_key(
                conn, actor=cli_actor(), key_id=key_id, now=utc_now()
            )

    key = run(work)
    if as_json:
        show_one(ApiKeyOut.model_validate(key), as_json=True)
    else:
        click.echo(f"revoked API key {key.id} ({key.name!r})")
