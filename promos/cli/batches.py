"""``promos batches``: the code pools' batches, listed, shown with their counts, expired; their
lapsed holds ended."""

from __future__ import annotations

from uuid import UUID

import click

from promos.cli._output import json_option, show_list, show_one
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.codes import changes, service
from promos.codes.schemas import BatchOut, StatsOut
from promos.codes.service import BatchStats
from promos.codes.sweeper import HoldSweeper
from promos.db import Database
from promos.settings import Settings

COLUMNS = ("id", "client_id", "name", "expired", "created_at")


class BatchShown(BatchOut):
    """A batch with its counts, as ``batches show`` prints it."""

    stats: StatsOut


@click.group()
def batches() -> None:
    """Manage code pool batches.

    Changes are in the audit log, made by cli:<your uid>."""


@batches.command("list")
@click.option(
    "--client",
    "client_id",
    type=click.UUID,
    help="Only the batches among whose clients this one is",
)
@json_option
def list_batches(client_id: UUID | None, *, as_json: bool) -> None:
    """List batches, oldest first."""

    async def work(database: Database, _: Settings) -> list[BatchOut]:
        async with database.begin() as conn:
            found = await service.list_batches(conn, client_id=client_id)
            clients = await service.clients_of_batches(conn, [b.id for b in found])
        return [BatchOut.of(b, clients.get(b.id, [])) for b in found]

    show_list(run(work), columns=COLUMNS, as_json=as_json)


@batches.command("show")
@click.argument("batch_id", type=click.UUID)
@json_option
def show(batch_id: UUID, *, as_json: bool) -> None:
    """Show a batch: its rules, and how many codes it holds, issued and left."""

    async def work(database: Database, _: Settings) -> tuple[BatchOut, BatchStats]:
        async with database.begin() as conn:
            batch = await service.get_batch(conn, batch_id)
            clients = await service.batch_clients(conn, batch_id)
            return BatchOut.of(batch, clients), await service.batch_stats(conn, batch_id)

    batch, stats = run(work)
    shown = BatchShown(**batch.model_dump(), stats=StatsOut.model_validate(stats))
    show_one(shown, as_json=as_json)


@batches.command("expire")
@click.argument("batch_id", type=click.UUID)
@json_option
def expire(batch_id: UUID, *, as_json: bool) -> None:
    """Expire a batch: no more codes are issued from it.

    Its codes, and who was issued which, stay."""

    async def work(database: Database, _: Settings) -> BatchOut:
        async with database.begin() as conn:
            expired = await changes.expire_batch(
                conn, actor=cli_actor(), batch_id=batch_id, now=utc_now()
            )
            return BatchOut.of(expired, await service.batch_clients(conn, batch_id))

    batch = run(work)
    if as_json:
        show_one(batch, as_json=True)
    else:
        click.echo(f"expired batch {batch.id} ({batch.name!r})")


@batches.command("end-lapsed-holds")
def end_lapsed_holds() -> None:
    """End every lapsed pool code hold now: its code goes back to its pool or is burnt.

    The server does this every PROMOS_POOL_HOLD_SWEEP_SECONDS; run it from cron where that
    is 0."""

    async def work(database: Database, _: Settings) -> int:
        return await HoldSweeper(database, utc_now, every_seconds=0).sweep()

    ended = run(work)
    click.echo(f"ended {ended} lapsed hold{'' if ended == 1 else 's'}")
