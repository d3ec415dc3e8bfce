"""Benchmark generating promo codes: the service's own path against a COPY ceiling, same run.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/generate_codes.py [--codes 1000000] [--pattern ####-####-####]

1. Creates the database ``promos_bench_generate`` (dropping it first) and migrates it.
2. Ceiling: COPY of ``--codes`` pre-made rows (made before the clock starts) into
   ``promocodes``, in one transaction, then removes them again.
3. Promos: ``promos.promocodes.service.generate`` of ``--codes`` codes of ``--pattern`` over
   the default charset, in one transaction, exactly as the API and the CLI run it.
4. Prints both times and rates, the ratio, and the targets (<= 10 s, >= 0.5x the ceiling),
   then checks in SQL that the generation holds ``--codes`` distinct codes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from promos import migrate
from promos.db import Database
from promos.promocodes import service
from promos.promocodes.generate import DEFAULT_CHARSET, Drawer, code_shape
from promos.promocodes.service import GenerationSpec

HOST = "127.0.0.1"
DB_NAME = "promos_bench_generate"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_URL = f"postgresql+asyncpg://postgres@{HOST}:5432/{DB_NAME}"
TARGET_SECONDS = 10.0
TARGET_RATIO = 0.5


async def create_database() -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        await conn.close()


async def ceiling(database: Database, count: int, pattern: str) -> float:
    """Seconds to COPY ``count`` ready-made rows into ``promocodes`` and commit."""
    codes = Drawer(code_shape(pattern, DEFAULT_CHARSET)).draw(count)
    async with database.begin() as conn:
        made = await service.generate(
            conn,
            spec=GenerationSpec(
                pattern="CEILING", count=1, usage_count=1, discount_percentage=Decimal(1)
            ),
            now=datetime.now(UTC),
        )
    generation_id = made.generation.id
    rows = [(f"C{code}", generation_id, 1) for code in codes]
    started = time.perf_counter()
    async with database.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.copy_records_to_table(  # type: ignore[union-attr]
            "promocodes", records=rows, columns=["code", "generation_id", "usage_count"]
        )
    seconds = time.perf_counter() - started
    async with database.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute(  # type: ignore[union-attr]
            "DELETE FROM promocodes WHERE generation_id = $1", generation_id
        )
    async with database.autocommit() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("VACUUM ANALYZE promocodes")  # type: ignore[union-attr]
    return seconds


async def promos(database: Database, count: int, pattern: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with database.begin() as conn:
        made = await service.generate(
            conn,
            spec=GenerationSpec(
                pattern=pattern, count=count, usage_count=1, discount_percentage=Decimal(10)
            ),
            now=datetime.now(UTC),
        )
    return time.perf_counter() - started, made.generation.id


async def check(database: Database, generation_id: int) -> tuple[int, int]:
    async with database.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        row = await raw.fetchrow(  # type: ignore[union-attr]
            "SELECT count(*) AS n, count(DISTINCT code) AS d FROM promocodes "
            "WHERE generation_id = $1",
            generation_id,
        )
    return int(row["n"]), int(row["d"])


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--pattern", default="####-####-####")
    args = parser.parse_args()

    await create_database()
    database = Database(BENCH_URL, pool_size=2, max_overflow=0)
    try:
        await migrate.upgrade(database.engine)
        print(f"database {DB_NAME} migrated; {args.codes:,} codes of {args.pattern!r}")
        ceiling_s = await ceiling(database, args.codes, args.pattern)
        promos_s, generation_id = await promos(database, args.codes, args.pattern)
        stored, distinct = await check(database, generation_id)
    finally:
        await database.dispose()

    ceiling_rate, promos_rate = args.codes / ceiling_s, args.codes / promos_s
    ratio = promos_rate / ceiling_rate
    print(f"ceiling (COPY of pre-made rows): {ceiling_s:6.2f} s  {ceiling_rate:12,.0f} codes/s")
    print(f"promos generate (service):       {promos_s:6.2f} s  {promos_rate:12,.0f} codes/s")
    met = "met" if promos_s <= TARGET_SECONDS else "missed"
    print(
        f"ratio to the ceiling: {ratio:.2f}x (target >= {TARGET_RATIO}x); "
        f"time target <= {TARGET_SECONDS:.0f} s: {met}"
    )
    print(f"stored {stored:,} codes, {distinct:,} distinct")
    return 0 if stored == distinct == args.codes else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
