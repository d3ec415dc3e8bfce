"""Promo codes, made through the promo code service."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from promos.db import Database
from promos.promocodes import service
from promos.promocodes.service import Generated, GenerationSpec


async def make_promocodes(database: Database, *, now: datetime, **overrides: Any) -> Generated:
    """A generation of one 12-character code with 20% off and 3 uses (unless overridden)."""
    spec = GenerationSpec(
        pattern="############", count=1, usage_count=3, discount_percentage=Decimal(20)
    )
    async with database.begin() as conn:
        return await service.generate(conn, spec=replace(spec, **overrides), now=now)


async def make_promocode(database: Database, *, now: datetime, **overrides: Any) -> str:
    """One promo code (see ``make_promocodes``); returns the code."""
    return (await make_promocodes(database, now=now, **overrides)).codes[0]
