"""What commands print: human tables, or with ``--json`` one JSON document per line; and
the CSV files of exports.

The JSON of an object is the native API's (its response model), so that a script reads the
same fields from ``promos ... --json`` as from ``/v1``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from promos.export import CsvTable, write_csv

R = TypeVar("R")

# A row id, as the database stores it (BIGINT): a bigger number is refused as a usage error.
ROW_ID = click.IntRange(1, 2**63 - 1)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="One JSON document per line, for scripts"
)


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr); as wide as it likes when it is not a terminal, so that
    piped tables are never folded."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 10_000, highlight=False)


def _text(value: Any) -> Text:
    # Text, not markup: a value such as "[bold]" is shown as it is.
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, list | tuple):
        return Text(" ".join(str(v) for v in value))
    return Text(str(value))


def json_line(item: BaseModel) -> None:
    click.echo(orjson.dumps(item.model_dump(mode="json")))


def show_list(items: Iterable[BaseModel], *, columns: Sequence[str], as_json: bool) -> None:
    """``items`` as a table of these fields, or as JSON Lines."""
    if as_json:
        for item in items:
            json_line(item)
        return
    table = Table(*columns, box=None, header_style="bold")
    for item in items:
        data = item.model_dump(mode="json")
        table.add_row(*(_text(data.get(c)) for c in columns))
    console().print(table)


def show_one(item: BaseModel, *, as_json: bool) -> None:
    """One object: every field, one a line, or one line of JSON."""
    if as_json:
        json_line(item)
        return
    table = Table(box=None, show_header=False)
    for name, value in _flat(item.model_dump(mode="json")):
        table.add_row(Text(name, style="bold"), _text(value))
    console().print(table)


def _flat(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Nested objects as dotted names (``rules.max_per_customer``), one value a line."""
    for name, value in data.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="Write the CSV to FILE instead of standard output",
)


async def write_export(
    table: CsvTable[R], rows: AsyncIterator[Sequence[R]], output: Path | None
) -> int:
    """The CSV of ``rows`` on standard output, or in ``output``: there only once it is whole
    (written beside it, then renamed), so a failed export never leaves half a file."""
    if output is None or str(output) == "-":
        return await write_csv(table, rows, lambda data: click.echo(data, nl=False))
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("wb") as sink:
            written = await write_csv(table, rows, sink.write)
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


def wrote(count: int, what: str, output: Path | None) -> None:
    """Say on standard error what an export wrote (standard output may be the CSV itself)."""
    where = "standard output" if output is None or str(output) == "-" else str(output)
    click.echo(f"wrote {count} {what} to {where}", err=True)
