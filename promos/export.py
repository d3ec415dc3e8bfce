"""Exports of any size in flat memory: rows read in keyset chunks, rendered as CSV per chunk.

Each chunk is one short read transaction (``chunks``): nothing is held open between them,
so a slow reader of an export ties up no database connection, and every chunk starts where
the last one ended by key (never by offset), so each read costs the same. An export is
therefore not one snapshot: a row changed while it runs shows as it was when its chunk was
read. The native API streams ``csv_stream`` as the response body; the command line writes it
to a file; both read through the domains' own readers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.db import Database

K = TypeVar("K")
R = TypeVar("R")

CHUNK_ROWS = 5000
MEDIA_TYPE = "text/csv; charset=utf-8"

# A chunk reader: up to ``limit`` rows whose key comes after ``after`` (None: from the start),
# in key order.
Reader = Callable[[AsyncConnection, K | None, int], Awaitable[Sequence[R]]]


async def chunks(
    database: Database,
    read: Reader[K, R],
    *,
    key: Callable[[R], K],
    chunk_rows: int = CHUNK_ROWS,
) -> AsyncIterator[Sequence[R]]:
    """Every row ``read`` finds, a chunk at a time, each chunk read in its own transaction."""
    after: K | None = None
    while True:
        async with database.begin() as conn:
            rows = await read(conn, after, chunk_rows)
        if rows:
            yield rows
        if len(rows) < chunk_rows:
            return
        after = key(rows[-1])


async def read_first(rows: AsyncIterator[Sequence[R]]) -> AsyncIterator[Sequence[R]]:
    """``rows``, with its first chunk read now, before any answer starts: what fails there (a
    filter value the database refuses, the database itself) is answered as an error in the
    API's shape, not as a stream cut after its header."""
    first = await anext(rows, None)

    async def all_of_them() -> AsyncIterator[Sequence[R]]:
        if first is None:
            return
        yield first
        async for chunk in rows:
            yield chunk

    return all_of_them()


@dataclass(frozen=True, slots=True)
class CsvTable(Generic[R]):
    """The columns of an export, and how one row of it becomes their cells: text, numbers,
    UUIDs and ``None`` (an empty cell) as they are, times through ``iso``, lists ``words``."""

    header: tuple[str, ...]
    values: Callable[[R], Iterable[object]]


def iso(value: date | None) -> str | None:
    """A time (UTC) or a day as an ISO 8601 cell."""
    return None if value is None else value.isoformat()


def words(values: Iterable[object]) -> str:
    """A list as one cell, space-separated (SKUs hold no spaces)."""
    return " ".join(map(str, values))


async def csv_stream(table: CsvTable[R], rows: AsyncIterator[Sequence[R]]) -> AsyncIterator[bytes]:
    """The header, then each chunk of ``rows`` as UTF-8 CSV (RFC 4180: CRLF, quoted as needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.header)
    yield buffer.getvalue().encode()
    async for chunk in rows:
        buffer.seek(0)
        buffer.truncate()
        # The csv module writes None as an empty cell, anything else as str() makes it.
        writer.writerows(map(table.values, chunk))
        yield buffer.getvalue().encode()


async def write_csv(
    table: CsvTable[R], rows: AsyncIterator[Sequence[R]], sink: Callable[[bytes], object]
) -> int:
    """Write the CSV of ``rows`` to ``sink``; how many rows it held."""
    total = 0

    async def counted() -> AsyncIterator[Sequence[R]]:
        nonlocal total
        async for chunk in rows:
            total += len(chunk)
            yield chunk

    async for data in csv_stream(table, counted()):
        sink(data)
    return total
