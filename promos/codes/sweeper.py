"""Ending lapsed pool code holds in the background, so that their codes come back (or are
burnt) and their customers' rules stop counting them though nobody asks about them.

Nothing depends on it for correctness: a lapsed hold reads as expired and is never confirmed
whether or not it has been ended (``promos.codes.holds``). Every process sweeps every
PROMOS_POOL_HOLD_SWEEP_SECONDS; on PostgreSQL two sweeps skip each other's holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from promos.clock import Clock
from promos.codes import holds
from promos.db import Database

log = logging.getLogger(__name__)


class HoldSweeper:
    """Ends lapsed pool code holds every ``every_seconds`` (0: never), until stopped."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        every_seconds: float,
        on_events: Callable[[], None] | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._every_seconds = every_seconds
        self._on_events = on_events
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """End every hold lapsed by now, ``holds.SWEEP_LIMIT`` per transaction; how many."""
        total = 0
        while True:
            async with self._database.begin() as conn:
                ended = await holds.end_lapsed(conn, now=self._clock())
            total += ended
            if ended and self._on_events is not None:
                self._on_events()  # their pool_code.hold_expired events, if any is wanted
            if ended < holds.SWEEP_LIMIT:
                return total

    def start(self) -> None:
        if self._task is None and self._every_seconds > 0:
            self._task = asyncio.create_task(self._run(), name="promos-pool-hold-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_seconds)
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again; a lapsed hold stays expired
                log.exception("could not end the lapsed pool code holds")
