"""Referral programs' funnels for the console, with the days that are over held in the process.

A funnel counts each step on the day it happened, and a day that is over never changes
(sign-ups, first payments and rewards are each written once, at their time), so its counts
are kept and a view counts today's rows only: a thirtieth of the work on a program busy every
day. They are counted again when a new day begins and once they are an hour old (a
transaction committed just after midnight with a time just before it), as the dashboard's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.clock import Clock
from promos.daily import Days
from promos.referrals.activity import Funnel, program_funnel

DAYS = 30
HELD = timedelta(hours=1)
PROGRAMS_HELD = 256  # programs whose days that are over are kept (the most recently shown)


@dataclass(frozen=True, slots=True)
class _Closed:
    funnel: Funnel
    counted_at: datetime


class HeldFunnels:
    """Each program's funnel of the last 30 UTC days, today counted at every view."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._closed: OrderedDict[int, _Closed] = OrderedDict()

    async def get(self, conn: AsyncConnection, program_id: int) -> Funnel:
        now = self._clock()
        before, today = Days(now.date() - timedelta(days=1), DAYS - 1), Days(now.date(), 1)
        held = self._closed.get(program_id)
        if (
            held is None
            or held.funnel.signups.days != before
            or not held.counted_at <= now < held.counted_at + HELD
        ):
            held = _Closed(await program_funnel(conn, program_id, days=before), now)
        self._closed[program_id] = held
        self._closed.move_to_end(program_id)
        while len(self._closed) > PROGRAMS_HELD:
            self._closed.popitem(last=False)
        return held.funnel.then(await program_funnel(conn, program_id, days=today))
