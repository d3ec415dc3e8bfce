"""How an issue finds a free code of one client in a batch of several: the index, measured.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/free_codes_by_client.py [--codes 1000000] [--repeat 20]

Creates the PostgreSQL database ``promos_bench_clients`` (dropping it first), migrates it,
and seeds one batch of ``--codes`` codes of two clients: the first client holds 99 % of
them, the second the last 1 % (an upload whose second client's rows come last), and one
batch whose two clients' rows alternate. Then, for each index on the free codes, prints the
time and the buffers that the issuing statement's free-code read takes for the second client
(``_TAKE``'s ``free`` CTE: ``FOR UPDATE SKIP LOCKED``, 64 codes), median of ``--repeat``
runs, each rolled back:

- ``(batch_id, client_id, seq)``: ix_codes_free as migration 0009_batch_clients makes it;
- ``(batch_id, seq)``: ix_codes_free before it, which finds the batch's free codes and
  filters out the other client's.

Everything runs against 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg

HOST = "127.0.0.1"
DB_NAME = "promos_bench_clients"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
PROMOS = Path(sys.executable).with_name("promos")

FREE = (
    "SELECT client_id, code, seq FROM codes "
    "WHERE batch_id = $1 AND client_id = $2 AND issued_at IS NULL AND seq >= 0 "
    "ORDER BY seq LIMIT 64 FOR UPDATE SKIP LOCKED"
)
INDEXES = {
    "(batch_id, client_id, seq)": "CREATE INDEX ix_codes_free ON codes "
    "(batch_id, client_id, seq) WHERE issued_at IS NULL",
    "(batch_id, seq)": "CREATE INDEX ix_codes_free ON codes (batch_id, seq) "
    "WHERE issued_at IS NULL",
}


async def create_database() -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()


def migrate() -> None:
    env = {**os.environ, "PROMOS_DATABASE_URL": BENCH_DSN.replace("://", "+asyncpg://", 1)}
    subprocess.run([str(PROMOS), "migrate"], env=env, check=True, capture_output=True)


async def seed(codes: int) -> dict[str, tuple[UUID, UUID]]:
    """Two batches of ``codes`` codes: (batch, the second client) of each."""
    first, second = uuid4(), uuid4()
    last, alternating = uuid4(), uuid4()
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO clients (id, created_at) VALUES ($1, now())",
                [(first,), (second,)],
            )
            for batch_id in (last, alternating):
                await conn.execute(
                    "INSERT INTO batches (id, client_id, name, expired, created_at) "
                    "VALUES ($1, $2, 'bench', false, now())",
                    batch_id,
                    first,
                )
                await conn.executemany(
                    "INSERT INTO batch_clients (client_id, batch_id) VALUES ($1, $2)",
                    [(first, batch_id), (second, batch_id)],
                )
            # The second client's rows come last: 1 % of the batch.
            await conn.execute(
                "INSERT INTO codes (batch_id, client_id, code, seq) "
                "SELECT $1, CASE WHEN g > $4 * 0.99 THEN $3::uuid ELSE $2::uuid END, "
                "'L' || lpad(g::text, 10, '0'), g FROM generate_series(1, $4) AS g",
                last,
                first,
                second,
                codes,
            )
            # The two clients' rows alternate.
            await conn.execute(
                "INSERT INTO codes (batch_id, client_id, code, seq) "
                "SELECT $1, CASE WHEN g % 2 = 0 THEN $3::uuid ELSE $2::uuid END, "
                "'A' || lpad(g::text, 10, '0'), g FROM generate_series(1, $4) AS g",
                alternating,
                first,
                second,
                codes,
            )
        await conn.execute("VACUUM ANALYZE codes")
    finally:
        await conn.close()
    return {"second client's rows last": (last, second), "rows alternating": (alternating, second)}


async def measure(batch_id: UUID, client_id: UUID, repeat: int) -> tuple[float, int, str]:
    """Median milliseconds of the read, its shared buffers, and the index it used."""
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        times: list[float] = []
        buffers = 0
        plan = ""
        for _ in range(repeat):
            tx = conn.transaction()
            await tx.start()
            started = time.perf_counter()
            rows = await conn.fetch(FREE, batch_id, client_id)
            times.append((time.perf_counter() - started) * 1000)
            assert len(rows) == 64
            await tx.rollback()
        tx = conn.transaction()
        await tx.start()
        explained = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {FREE}", batch_id, client_id)
        await tx.rollback()
        for (line,) in explained:
            if "Buffers: shared" in line and not buffers:
                buffers = sum(int(p.split("=")[1]) for p in line.split(":")[1].split()[1:])
            if "Index" in line and "using" in line and not plan:
                plan = line.strip().removeprefix("->").strip().split("  (")[0]
        return statistics.median(times), buffers, plan
    finally:
        await conn.close()


async def swap_index(definition: str) -> None:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        await conn.execute("DROP INDEX IF EXISTS ix_codes_free")
        await conn.execute(definition)
        await conn.execute("ANALYZE codes")
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    await create_database()
    migrate()
    started = time.monotonic()
    cases = await seed(args.codes)
    print(f"seeded 2 batches of {args.codes:,} codes in {time.monotonic() - started:.1f} s")
    print(f"{'index':30} {'batch':28} {'ms (median)':>12} {'buffers':>8}  plan")
    for name, definition in INDEXES.items():
        await swap_index(definition)
        for case, (batch_id, client_id) in cases.items():
            ms, buffers, plan = await measure(batch_id, client_id, args.repeat)
            print(f"{name:30} {case:28} {ms:12.2f} {buffers:8}  {plan}")
    await swap_index(INDEXES["(batch_id, client_id, seq)"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1_000_000, help="codes per batch")
    parser.add_argument("--repeat", type=int, default=20, help="reads per measurement")
    asyncio.run(main(parser.parse_args()))
