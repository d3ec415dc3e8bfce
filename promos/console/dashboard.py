"""The dashboard's figures: each domain's counts per day over the last 30 days, and the pools
running low, gathered from the services (no SQL here) and held for a few seconds.

Holding them (``PROMOS_CONSOLE_DASHBOARD_SECONDS``) makes a busy console read the database
once per period, whoever opens the page; the page says when the figures were read.

The 29 days before today are over: their counts are kept in the process and read again only
once they are an hour old (``CLOSED_DAYS_HELD``) or a new day has begun, so that a view
counts today's rows only. Counting 30 days of a million-row table is a range of hundreds of
thousands of index entries (about 0.2 s for all the figures on the bench's data); today's is
a thirtieth of it. What changes a day that is over (a redemption rolled back later, a batch
or promo code deleted) shows within the hour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.clock import Clock
from promos.codes import activity as codes
from promos.codes.activity import LowPool
from promos.daily import Daily, Days
from promos.db import Database
from promos.events import activity as events
from promos.offers import activity as offers
from promos.promocodes import activity as promocodes
from promos.referrals import activity as referrals

DAYS = 30
CLOSED_DAYS_HELD = timedelta(hours=1)
PERIODS = (("Today", 1), ("7 days", 7), ("30 days", 30))

Count = Callable[..., Awaitable[Daily]]


@dataclass(frozen=True, slots=True)
class Measure:
    key: str
    title: str
    count: Count
    # Shown to admins only, as the API's routes for it are admin-only.
    admin_only: bool = False
    # The console page that lists what is counted, if one does.
    link: str | None = None


MEASURES: tuple[Measure, ...] = (
    Measure("codes-issued", "Codes issued", codes.issued_per_day),
    Measure("redemptions", "Promo code redemptions", promocodes.redemptions_per_day),
    Measure("referral-signups", "Referral sign-ups", referrals.signups_per_day),
    Measure("referral-rewards", "Referral rewards", referrals.rewards_per_day),
    Measure("offer-claims", "Offer claims", offers.claims_per_day),
    Measure("offer-impressions", "Offer impressions", offers.impressions_per_day),
    Measure(
        "failing-deliveries",
        "Failing webhook deliveries",
        events.failing_deliveries_per_day,
        admin_only=True,
        link="/admin/webhooks/deliveries?status=failing",
    ),
)


@dataclass(frozen=True, slots=True)
class Figure:
    measure: Measure
    daily: Daily


@dataclass(frozen=True, slots=True)
class Figures:
    read_at: datetime
    figures: tuple[Figure, ...]
    low_pools: tuple[LowPool, ...]
    low_below: int

    def for_role(self, *, is_admin: bool) -> tuple[Figure, ...]:
        """The figures a person with this role may see."""
        return tuple(f for f in self.figures if is_admin or not f.measure.admin_only)


def closed_days(now: datetime) -> Days:
    """The days of the dashboard that are over: the 29 before today."""
    return Days(now.date() - timedelta(days=1), DAYS - 1)


async def read(
    conn: AsyncConnection,
    *,
    now: datetime,
    low_below: int,
    closed: Mapping[str, Daily] | None = None,
) -> Figures:
    """Every figure of the dashboard, counted now; ``closed`` holds counts of the days that
    are over, by measure, where they were counted before (they are counted if not)."""
    before, today = closed_days(now), Days(now.date(), 1)
    figures = []
    for measure in MEASURES:
        earlier = (closed or {}).get(measure.key)
        if earlier is None or earlier.days != before:
            earlier = await measure.count(conn, days=before)
        current = await measure.count(conn, days=today)
        daily = Daily(Days(now.date(), DAYS), earlier.counts + current.counts)
        figures.append(Figure(measure, daily))
    low = await codes.pools_running_low(conn, below=low_below, now=now)
    return Figures(read_at=now, figures=tuple(figures), low_pools=tuple(low), low_below=low_below)


def _closed_of(figures: Figures) -> dict[str, Daily]:
    before = closed_days(figures.read_at)
    return {f.measure.key: Daily(before, f.daily.counts[: before.count]) for f in figures.figures}


class HeldFigures:
    """The figures, read again once they are ``seconds`` old (by the app's clock)."""

    def __init__(self, database: Database, clock: Clock, *, seconds: float, low_below: int) -> None:
        self._database = database
        self._clock = clock
        self._hold = timedelta(seconds=seconds)
        self._low_below = low_below
        self._held: Figures | None = None
        # The counts of the days that are over, and when they were counted.
        self._closed: dict[str, Daily] = {}
        self._closed_at: datetime | None = None

    async def get(self) -> Figures:
        now = self._clock()
        held = self._held
        if held is not None and held.read_at <= now < held.read_at + self._hold:
            return held
        closed = self._closed
        if self._closed_at is None or not (
            self._closed_at <= now < self._closed_at + CLOSED_DAYS_HELD
        ):
            closed = {}
        async with self._database.read() as conn:
            fresh = await read(conn, now=now, low_below=self._low_below, closed=closed)
        if not closed or any(d.days != closed_days(now) for d in closed.values()):
            self._closed, self._closed_at = _closed_of(fresh), now
        self._held = fresh
        return fresh
