"""``promos codes import``: load a CSV file of codes into a new batch, streaming."""

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

from promos.cli._run import run
from promos.clock import utc_now
from promos.codes import csv_import
from promos.codes.service import Batch, Rules
from promos.db import Database
from promos.errors import PromosError
from promos.settings import Settings


@click.group()
def codes() -> None:
    """Manage code pools."""


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
            async with database.begin() as conn:
                return await csv_import.import_batch(
                    conn,
                    lines(handle),
                    name=batch_name,
                    rules=rules,
                    now=utc_now(),
                    client_id=client_id,
                    on_progress=lambda n: progress.update(task, rows=n),
                )

        batch, added = run(work)
    click.echo(f"batch {batch.id} ({batch.name!r}): {added} codes imported")
