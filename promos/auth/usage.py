"""Each API key's use, counted in memory and added to its row in batches, not per request.

A request costs two dictionary writes. Every ``PROMOS_API_KEY_USAGE_FLUSH_SECONDS`` (and when
the app stops) each process adds what it counted to ``api_keys``: ``request_count`` grows by
its count, ``last_used_at`` becomes the flush's time (so it is late by up to that interval),
``last_used_from`` the address of the key's last request in this process. Several processes
add their counts alike; a process killed without stopping loses at most one interval's.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import datetime

from sqlalchemy import bindparam, func, update

from promos.auth.tables import api_keys
from promos.clock import Clock
from promos.db import Database

log = logging.getLogger(__name__)


class KeyUsage:
    """What this process's API keys did since the last flush."""

    def __init__(self, database: Database, clock: Clock, *, flush_seconds: float) -> None:
        self._database = database
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._counts: dict[int, int] = {}
        self._addresses: dict[int, str] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, key_id: int, address: str | None) -> None:
        """One request made with the key, from that address (None: unknown)."""
        self._counts[key_id] = self._counts.get(key_id, 0) + 1
        if address is not None:
            self._addresses[key_id] = address

    async def flush(self) -> int:
        """Add what was counted to the keys' rows; how many keys were used."""
        counts, addresses = self._counts, self._addresses
        if not counts:
            return 0
        self._counts, self._addresses = {}, {}
        await _add(self._database, self._clock(), counts, addresses)
        return len(counts)

    def start(self) -> None:
        """Flush every ``flush_seconds`` in the background, until ``stop``."""
        if self._task is None and self._flush_seconds > 0:
            self._task = asyncio.create_task(self._run(), name="promos-key-usage")

    async def stop(self) -> None:
        """Stop the background flushes, and flush what is left."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - stopping goes on; the counts are what is lost
            log.warning("could not record the API keys' usage at shutdown: its counts are lost")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception:  # the counts of a failed flush are lost; the next one goes on
                log.exception("could not record the API keys' usage")


async def _add(
    database: Database, now: datetime, counts: dict[int, int], addresses: dict[int, str]
) -> None:
    statement = (
        update(api_keys)
        .where(api_keys.c.id == bindparam("key_id"))
        .values(
            request_count=api_keys.c.request_count + bindparam("added"),
            last_used_at=now,
            last_used_from=func.coalesce(
                bindparam("address", type_=api_keys.c.last_used_from.type),
                api_keys.c.last_used_from,
            ),
        )
    )
    rows = [
        {"key_id": key_id, "added": added, "address": addresses.get(key_id)}
        for key_id, added in sorted(counts.items())  # in id order: two processes never deadlock
    ]
    async with database.begin() as conn:
        await conn.execute(statement, rows)
