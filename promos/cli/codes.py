"""``promos codes``: load a CSV file of codes into a new batch, or export a batch's codes,
streaming both ways."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO
from uuid import UUID

import click
import orjson
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from promos.cli._output import output_option, write_export, wrote
from promos.cli._run import cli_actor, run
from promos.clock import utc_now
from promos.codes import changes, csv_import, export, service
from promos.codes.service import Batch, Rules
from promos.db import Database
from promos.errors import PromosError
from promos.settings import Settings


@click.group()
def codes() -> None:
    """Manage code pools: import and export codes.

    Imports are in the audit log, made by cli:<your uid>."""


@codes.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch", "batch_name", required=True, help="Name of the new batch")
@click.option("--client", "client_id", required=True, type=click.UUID, help="The client's UUID")
@click.option("--rules", "rules_json", help='e.g. \'{"maxpercustomer": 2, "timelimit": 30}\'')
def import_codes(file: Path, batch_name: str, client_id: UUID, rules_json: str | None) -> None:
    """Import FILE (CSV, header `code` or `client_id,code`) as a new batch: all rows or none."""
    try:
        rules = Rules.from_json(orjson.loads(rules_json) if rules_json else None)
    except orjson.JSONDecodeError:
        raise click.BadParameter("must be a JSON object", param_hint="--rules") from None
    except PromosError as exc:
        raise click.BadParameter(exc.message, param_hint="--rules") from None

    with (
        file.open("rb") as handle,
        Progress(
            TextColumn("[bold]importing"),
            BarColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[rows]} codes"),
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("import", total=file.stat().st_size, rows=0)

        def lines(stream: IO[bytes]) -> Iterator[bytes]:
            for line in stream:
                progress.advance(task, len(line))
                yield line

        async def work(database: Database, _: Settings) -> tuple[Batch, int]:
            now = utc_now()
            async with database.begin() as conn:
                batch, added = await csv_import.import_batch(
                    conn,
                    lines(handle),
                    name=batch_name,
                    rules=rules,
                    now=now,
                    client_id=client_id,
                    on_progress=lambda n: progress.update(task, rows=n),
                )
                await changes.record_import(
                    conn, actor=cli_actor(), batch=batch, added=added, now=now
                )
            return batch, added

        batch, added = run(work)
    click.echo(f"batch {batch.id} ({batch.name!r}): {added} codes imported")


@codes.command("export")
@click.argument("batch_id", type=click.UUID)
@output_option
def export_codes(batch_id: UUID, output: Path | None) -> None:
    """Write a batch's codes as CSV.

    Every code of BATCH_ID, by client and code, with the columns code, client_id,
    customer_id, issued_at (the last two empty for a code not issued yet). To standard
    output unless -o FILE."""

    async def work(database: Database, _: Settings) -> int:
        async with database.begin() as conn:
            await service.get_batch(conn, batch_id)
        return await write_export(
            export.BATCH_CODES, export.batch_codes(database, batch_id), output
        )

    wrote(run(work), "codes", output)
