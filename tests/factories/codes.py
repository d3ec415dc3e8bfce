"""Batches and codes, made through the code pool service."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from promos.codes import service
from promos.codes.service import Batch, Rules
from promos.db import Database

CLIENT = UUID("217be7c8-679c-4e08-bffc-db3451bdcdbf")


async def make_batch(
    database: Database,
    *,
    now: datetime,
    codes: int = 10,
    client_id: UUID = CLIENT,
    name: str = "Summer Sale",
    rules: Rules | None = None,
    prefix: str | None = None,
) -> Batch:
    """A batch holding ``codes`` unique codes named ``<prefix>-<n>``."""
    prefix = prefix or uuid4().hex[:8].upper()
    async with database.begin() as conn:
        batch = await service.create_batch(
            conn, client_id=client_id, name=name, rules=rules or Rules(), now=now
        )
        await service.add_codes(conn, batch, ((n + 2, f"{prefix}-{n}") for n in range(codes)))
    return batch


async def add_client_codes(
    database: Database, batch: Batch, *, client_id: UUID, codes: int, prefix: str, now: datetime
) -> None:
    """Add ``codes`` codes ``<prefix>-<n>`` of ``client_id`` to the batch, as an Ango upload
    whose rows name that client does."""
    async with database.begin() as conn:
        await service.add_client_codes(
            conn, batch, ((n + 2, client_id, f"{prefix}-{n}") for n in range(codes)), now=now
        )
