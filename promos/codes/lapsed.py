"""Lapsed pool code holds ended for the issues and holds they refuse, so that no job has to
run first.

A lapsed hold keeps its code out of the pool (and counted for its customer's rule) until
something ends it (``promos.codes.holds``). ``issue_codes`` asks here when it refuses a
request for lack of a code or by the rule: the lapsed holds that may be why are ended, and
the request is served again; the issuing statements themselves never look at holds. A new
hold finding the pool exhausted does the same (``hold_code``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes import holds
from promos.codes.errors import CustomerLimitReached, PoolExhausted
from promos.codes.service import IssueRequest
from promos.codes.tables import codes, pool_code_holds
from promos.db import Database

# Lapsed holds to end: of (batch, client, any customer) or (batch, any client, customer).
_Lapsed = tuple[UUID, UUID | None, str | None]


async def ended_for(
    conn: AsyncConnection,
    refused: Sequence[tuple[IssueRequest, PoolExhausted | CustomerLimitReached]],
    *,
    now: datetime,
) -> bool:
    """End the lapsed pool code holds that refused these requests: of their batch and client
    (the pool exhausted) or of their batch and customer (the rule); whether to serve them
    again: there were some, or an exhausted pool has a free code by now (a sweep ended them).

    Each ends under its row lock, once (``holds.end_lapsed``), its code returned to the pool
    or burnt in the same transaction. On a connection outside a transaction, in a transaction
    of its own, committed before the requests are served again, which waits for a sweep
    ending the same holds (so that they are ended when it returns); in the caller's
    transaction, skipping those (it may hold quota rows that the sweep waits for)."""
    wanted: set[_Lapsed] = set()
    for req, outcome in refused:
        if isinstance(outcome, PoolExhausted):
            wanted.add((req.batch_id, req.client_id, None))
        else:
            wanted.add((req.batch_id, None, req.customer_id))
    lapsed = await _lapsed(conn, {batch_id for batch_id, _, _ in wanted}, now=now)
    found: set[_Lapsed] = {
        target
        for row in lapsed
        for target in (
            _lapsed_of(row.batch_id, client_id=row.client_id),
            _lapsed_of(row.batch_id, customer_id=row.customer_id),
        )
        if target in wanted
    }
    if not found:
        # A sweep may have ended them between the refusal and this read: their codes are back.
        return await _freed(conn, wanted)
    sync = conn.sync_connection
    if sync is not None and sync.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        async with conn.engine.begin() as own:
            await _end(own, found, now=now, wait=True)
    else:
        await _end(conn, found, now=now, wait=False)
    return True


async def _freed(conn: AsyncConnection, wanted: set[_Lapsed]) -> bool:
    """Whether a pool refused for lack of a code has a free one by now."""
    for batch_id, client_id, _ in sorted(wanted, key=str):
        if client_id is None:
            continue
        free = await conn.execute(
            select(codes.c.seq)
            .where(
                codes.c.batch_id == batch_id,
                codes.c.client_id == client_id,
                codes.c.issued_at.is_(None),
            )
            .limit(1)
        )
        if free.first() is not None:
            return True
    return False


def _lapsed_of(
    batch_id: UUID, *, client_id: UUID | None = None, customer_id: str | None = None
) -> _Lapsed:
    return (batch_id, client_id, customer_id)


async def _end(conn: AsyncConnection, targets: set[_Lapsed], *, now: datetime, wait: bool) -> None:
    for batch_id, client_id, customer_id in sorted(targets, key=str):
        await holds.end_lapsed(
            conn,
            now=now,
            batch_id=batch_id,
            client_id=client_id,
            customer_id=customer_id,
            wait=wait,
        )


async def hold_code(
    database: Database,
    *,
    batch_id: UUID,
    client_id: UUID,
    customer_id: str,
    order: str,
    ttl: timedelta,
    now: datetime,
    idempotency_key: str | None = None,
) -> holds.PoolHold:
    """``holds.hold_code`` in a transaction of its own; when the pool is exhausted while
    lapsed holds of the batch and client still keep codes, they end first (in a transaction
    of their own, which holds nothing else: so it may wait for a sweep ending them) and the
    hold is asked again, once."""

    async def ask() -> holds.PoolHold:
        async with database.begin() as conn:
            return await holds.hold_code(
                conn,
                batch_id=batch_id,
                client_id=client_id,
                customer_id=customer_id,
                order=order,
                ttl=ttl,
                now=now,
                idempotency_key=idempotency_key,
            )

    try:
        return await ask()
    except PoolExhausted:
        async with database.begin() as conn:
            found = await _lapsed(conn, {batch_id}, now=now)
            if not any(row.client_id == client_id for row in found):
                raise
            await holds.end_lapsed(conn, now=now, batch_id=batch_id, client_id=client_id, wait=True)
    return await ask()


async def _lapsed(conn: AsyncConnection, batch_ids: set[UUID], *, now: datetime) -> list[Any]:
    """The (batch, client, customer) of the batches' lapsed holds, each once."""
    rows = await conn.execute(
        select(
            pool_code_holds.c.batch_id, pool_code_holds.c.client_id, pool_code_holds.c.customer_id
        )
        .where(
            pool_code_holds.c.batch_id.in_(batch_ids),
            pool_code_holds.c.status == holds.HELD,
            pool_code_holds.c.expires_at <= now,
        )
        .distinct()
    )
    return list(rows)
