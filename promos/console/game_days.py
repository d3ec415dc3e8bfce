"""A game's claims and impressions per day for its page, the days that are over held a while.

As the dashboard does (``promos.console.dashboard``): counting 30 days of a busy game's claims
is a range of hundreds of thousands of index entries, today's a thirtieth of it. The 29 days
before today are counted once, kept in the process for ``CLOSED_DAYS_HELD`` (or until a new
day begins), and each view counts today's rows only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.console.dashboard import CLOSED_DAYS_HELD, DAYS, closed_days
from promos.daily import Daily, Days
from promos.offers import activity

MAX_HELD = 1_000  # games whose closed days are held; past it the memory starts over

Count = Callable[..., Awaitable[Daily]]


@dataclass(frozen=True, slots=True)
class GameDays:
    claims: Daily
    impressions: Daily


class HeldGameDays:
    """Per game and measure, the counts of the days that are over and when they were counted."""

    def __init__(self) -> None:
        self._closed: dict[tuple[str, str], tuple[datetime, Daily]] = {}

    async def read(self, conn: AsyncConnection, game_id: str, *, now: datetime) -> GameDays:
        return GameDays(
            await self._daily(conn, game_id, "claims", activity.game_claims_per_day, now),
            await self._daily(conn, game_id, "impressions", activity.game_impressions_per_day, now),
        )

    async def _daily(
        self, conn: AsyncConnection, game_id: str, key: str, count: Count, now: datetime
    ) -> Daily:
        before = closed_days(now)
        held = self._closed.get((game_id, key))
        if held is None or held[1].days != before or not _fresh(held[0], now):
            if len(self._closed) >= MAX_HELD:
                self._closed.clear()
            held = (now, await count(conn, game_id=game_id, days=before))
            self._closed[(game_id, key)] = held
        today = await count(conn, game_id=game_id, days=Days(now.date(), 1))
        return Daily(Days(now.date(), DAYS), held[1].counts + today.counts)


def _fresh(counted_at: datetime, now: datetime) -> bool:
    return counted_at <= now < counted_at + CLOSED_DAYS_HELD
