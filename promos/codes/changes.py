"""Changes to code pools made by both the native routes and the command line, each with its
audit row in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.codes import csv_import, holds, service
from promos.codes.service import Batch, Rules


async def create_batch(
    conn: AsyncConnection,
    *,
    actor: Principal,
    client_id: UUID,
    name: str,
    rules: Rules,
    now: datetime,
) -> Batch:
    """A new, empty batch of the client's."""
    batch = await service.create_batch(conn, client_id=client_id, name=name, rules=rules, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="batch.create",
        target_type="batch",
        target_id=batch.id,
        after=batch,
        at=now,
    )
    return batch


async def add_codes(
    conn: AsyncConnection,
    *,
    actor: Principal,
    batch_id: UUID,
    lines: Iterable[bytes],
    now: datetime,
) -> int:
    """Add a code file's codes to the batch: all of them, or none if any row is wrong."""
    batch = await service.get_batch(conn, batch_id)
    added = await csv_import.import_into(conn, batch, lines, now=now)
    # How many codes, not which: the codes themselves are the pool, not its configuration.
    await audit.record(
        conn,
        actor=actor,
        action="batch.codes_add",
        target_type="batch",
        target_id=batch_id,
        after={"added": added},
        at=now,
    )
    return added


async def expire_batch(
    conn: AsyncConnection, *, actor: Principal, batch_id: UUID, now: datetime
) -> Batch:
    """Stop issuing from the batch, without touching its codes."""
    before = await service.get_batch(conn, batch_id, for_update=True)
    expired = await service.expire_batch(conn, batch_id)
    await audit.record(
        conn,
        actor=actor,
        action="batch.expire",
        target_type="batch",
        target_id=batch_id,
        before=before,
        after=expired,
        at=now,
    )
    return expired


async def record_import(
    conn: AsyncConnection, *, actor: Principal, batch: Batch, added: int, now: datetime
) -> None:
    """The audit row of a new batch made from a file of codes: the batch and how many codes
    (not which: the codes are the pool, not its configuration), as Ango's upload records it."""
    await audit.record(
        conn,
        actor=actor,
        action="batch.import",
        target_type="batch",
        target_id=batch.id,
        after={"batch": batch, "added": added},
        at=now,
    )


async def set_released_codes(
    conn: AsyncConnection, *, actor: Principal, batch_id: UUID, returned: bool, now: datetime
) -> bool:
    """Return the codes of the batch's holds that end from now on to the pool, or burn them."""
    await service.get_batch(conn, batch_id, for_update=True)
    before = await holds.returns_released_codes(conn, batch_id)
    await holds.set_returns_released_codes(conn, batch_id, returned)
    await audit.record(
        conn,
        actor=actor,
        action="batch.hold_settings",
        target_type="batch",
        target_id=batch_id,
        before={"return_released_codes": before},
        after={"return_released_codes": returned},
        at=now,
    )
    return returned
