"""Specials and upgrade programs, made through the catalog service."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from promos.catalog import service
from promos.catalog.service import Special, SpecialSpec, UpgradeProgram, UpgradeProgramSpec
from promos.db import Database


async def make_special(database: Database, *, now: datetime, **overrides: Any) -> Special:
    spec = SpecialSpec(sku="SKU12345", title="Summer special", price=Decimal("9.99"))
    async with database.begin() as conn:
        return await service.create_special(conn, spec=replace(spec, **overrides), now=now)


async def make_upgrade_program(
    database: Database, *, now: datetime, **overrides: Any
) -> UpgradeProgram:
    spec = UpgradeProgramSpec(
        from_sku="SKU12345", to_sku="SKU67890", title="Go pro", discount_percentage=Decimal(15)
    )
    async with database.begin() as conn:
        return await service.create_upgrade_program(conn, spec=replace(spec, **overrides), now=now)
