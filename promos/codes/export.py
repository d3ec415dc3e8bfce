"""A batch's codes as CSV: ``code,client_id,customer_id,issued_at``, one row per code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from uuid import UUID

from promos.codes import service
from promos.codes.service import PoolCode
from promos.db import Database
from promos.export import CHUNK_ROWS, CsvTable, chunks, iso

BATCH_CODES: CsvTable[PoolCode] = CsvTable(
    header=("code", "client_id", "customer_id", "issued_at"),
    values=lambda c: (c.code, c.client_id, c.customer_id, iso(c.issued_at)),
)


async def batch_codes(
    database: Database, batch_id: UUID, *, chunk_rows: int = CHUNK_ROWS
) -> AsyncIterator[Sequence[PoolCode]]:
    """Every code of the batch, by client and code, in chunks of short reads (of the clients
    the batch held when the export began)."""
    async with database.begin() as conn:
        clients = await service.batch_clients(conn, batch_id)
    rows = chunks(
        database,
        lambda conn, after, limit: service.batch_codes(
            conn, batch_id=batch_id, clients=clients, after=after, limit=limit
        ),
        key=lambda c: (c.client_id, c.code),
        chunk_rows=chunk_rows,
    )
    async for chunk in rows:
        yield chunk
