"""Referrals at a glance: sign-ups and rewards per day, each through an index on its time;
and a program's funnel by day."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.daily import Daily, DailyAmounts, Days, per_day, per_day_summed
from promos.referrals.tables import referrals


async def signups_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many referred users signed up on each of ``days``."""
    return await per_day(conn, referrals.c.created_at, days=days)


async def rewards_per_day(conn: AsyncConnection, *, days: Days) -> Daily:
    """How many referrers earned their reward (a referred user reached the target) on each
    of ``days``."""
    return await per_day(conn, referrals.c.rewarded_at, days=days)


@dataclass(frozen=True, slots=True)
class Funnel:
    """A program's referrals by the day each step happened (not by sign-up cohort)."""

    signups: Daily
    paid: Daily
    # Reaching the target and granting the reward are one statement: one count.
    rewarded: Daily
    signup_credit: DailyAmounts
    rewards: DailyAmounts

    def then(self, later: Funnel) -> Funnel:
        """This funnel's days followed by ``later``'s (the days right after them)."""
        return Funnel(
            self.signups.then(later.signups),
            self.paid.then(later.paid),
            self.rewarded.then(later.rewarded),
            self.signup_credit.then(later.signup_credit),
            self.rewards.then(later.rewards),
        )

    def rows(self) -> list[tuple[str, int, int, int, Decimal, Decimal]]:
        """Day by day, newest first: sign-ups, paid, rewarded, sign-up credit, rewards."""
        return [
            (day.isoformat(), signups, paid, rewarded, credit, reward)
            for day, signups, paid, rewarded, credit, reward in zip(
                self.signups.days.dates(),
                self.signups.counts,
                self.paid.counts,
                self.rewarded.counts,
                self.signup_credit.amounts,
                self.rewards.amounts,
                strict=True,
            )
        ][::-1]


async def program_funnel(conn: AsyncConnection, program_id: int, *, days: Days) -> Funnel:
    """Each day's referred sign-ups (and their sign-up credit), users who paid for the first
    time, and users who reached the target (and the rewards granted), in one program; each
    an index range of ``(program_id, time)``."""
    r = referrals.c
    mine = r.program_id == program_id
    signups, credit = await per_day_summed(
        conn, r.created_at, mine, days=days, summed=r.credit_value
    )
    paid = await per_day(conn, r.first_paid_at, mine, r.first_paid_at.is_not(None), days=days)
    rewarded, rewards = await per_day_summed(
        conn, r.rewarded_at, mine, r.rewarded_at.is_not(None), days=days, summed=r.target_value
    )
    return Funnel(signups, paid, rewarded, credit, rewards)
