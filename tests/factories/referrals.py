"""Referral programs and referrals, made through the referral service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from promos.db import Database
from promos.referrals import service
from promos.referrals.service import Program, Referral


async def make_program(
    database: Database,
    *,
    now: datetime,
    name: str = "Friends",
    credit_value: Decimal = Decimal("10.00"),
    target_value: Decimal = Decimal("100.00"),
    reward_hold_days: int = 0,
) -> Program:
    async with database.begin() as conn:
        return await service.create_program(
            conn,
            name=name,
            credit_value=credit_value,
            target_value=target_value,
            reward_hold_days=reward_hold_days,
            now=now,
        )


async def make_referral(
    database: Database,
    *,
    now: datetime,
    referrer: str = "alice",
    referred: str = "bob",
    program: Program | None = None,
    callback: str | None = None,
) -> Referral:
    async with database.begin() as conn:
        registration = await service.register(
            conn,
            referrer=referrer,
            referred=referred,
            program_id=program.id if program is not None else None,
            now=now,
            callback=callback,
        )
    return registration.referral
