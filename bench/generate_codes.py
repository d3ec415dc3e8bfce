"""Benchmark generating promo codes: the service's own path against a COPY ceiling, same run.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/generate_codes.py [--codes 1000000] [--pattern ####-####-####]
    .venv/bin/python bench/generate_codes.py --stall [--sqlite] [--pattern BENCH-##########]

1. Creates the database ``promos_bench_generate`` (dropping it first) and migrates it.
2. Ceiling: COPY of ``--codes`` pre-made rows (made before the clock starts) into
   ``promocodes``, in one transaction, then removes them again.
3. Promos: ``promos.promocodes.service.generate`` of ``--codes`` codes of ``--pattern`` over
   the default charset, in one transaction, exactly as the API and the CLI run it.
4. Prints both times and rates, the ratio, and the targets (<= 6 s, issue 19; >= 0.5x the
   ceiling), with the load average (the machine is shared: the ratio tells more), then
   checks in SQL that the generation holds ``--codes`` distinct codes.

``--stall`` measures instead how long a generation holds up the other requests of its
process: it starts ``promos serve`` (one process) on ``--port`` over that database (or, with
``--sqlite``, a fresh SQLite file), asks it for ``--codes`` codes through
``POST /v1/promocodes`` from one thread, and meanwhile requests ``GET --probe`` (default
``/healthcheck``, which asks the database too) over and over from another: p50, p99 and max
of those requests, before the generation (idle) and while it runs, against the ~100 ms target.
The time is the client's, on 127.0.0.1, so an upper bound of the server's. ``--probe /``
(the home page, no database) times the event loop alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

from promos import migrate
from promos.db import Database
from promos.promocodes import service
from promos.promocodes.generate import DEFAULT_CHARSET, Drawer, code_shape
from promos.promocodes.service import GenerationSpec

HOST = "127.0.0.1"
DB_NAME = "promos_bench_generate"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_URL = f"postgresql+asyncpg://postgres@{HOST}:5432/{DB_NAME}"
TARGET_SECONDS = 6.0
TARGET_RATIO = 0.5
STALL_TARGET_MS = 100.0
PROMOS = Path(sys.executable).with_name("promos")
SERVER_START_SECONDS = 60.0
GENERATION_SECONDS = 600.0
IDLE_REQUESTS = 200


async def create_database(name: str = DB_NAME) -> None:
    """Create the database ``name`` afresh (dropping it first)."""
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
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


def promos_cli(url: str, *args: str) -> str:
    """Run a ``promos`` command against ``url``; its stdout."""
    done = subprocess.run(
        [str(PROMOS), *args],
        env={**os.environ, "PROMOS_DATABASE_URL": url, "PROMOS_LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"promos {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


@contextmanager
def promos_server(url: str, port: int) -> Iterator[int]:
    """``promos serve`` (one process, its own process group) on ``url``, healthy on entry;
    its pid."""
    with socket.socket() as sock:
        if sock.connect_ex((HOST, port)) == 0:
            sys.exit(f"port {port} is in use on {HOST}: choose another with --port")
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, with the server
    proc = subprocess.Popen(
        [str(PROMOS), "serve", "--host", HOST, "--port", str(port), "--workers", "1"],
        env={**os.environ, "PROMOS_DATABASE_URL": url, "PROMOS_LOG_LEVEL": "warning"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}/healthcheck", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                sys.exit(f"promos serve did not become healthy:\n{log.read().decode()[-2000:]}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def _spread(name: str, samples: list[float]) -> str:
    return (
        f"{name} ({len(samples):,} requests): p50 {_ms(samples, 0.5):.1f} ms, "
        f"p99 {_ms(samples, 0.99):.1f} ms, max {max(samples) * 1000:.1f} ms"
    )


def stall(url: str, *, codes: int, pattern: str, port: int, probe: str) -> int:
    """Time ``GET probe`` while the same server generates ``codes`` codes."""
    promos_cli(url, "migrate")
    key = promos_cli(url, "api-keys", "create", "--name", "bench", "--role", "sales").split()[-1]
    outcome: dict[str, object] = {}

    def generate() -> None:
        started = time.perf_counter()
        response = httpx.post(
            f"http://{HOST}:{port}/v1/promocodes",
            json={"pattern": pattern, "count": codes, "discount_percentage": 10},
            headers={"Authorization": f"Bearer {key}"},
            timeout=GENERATION_SECONDS,
        )
        outcome["seconds"] = time.perf_counter() - started
        outcome["status"] = response.status_code

    base = f"http://{HOST}:{port}"
    with (
        promos_server(url, port),
        httpx.Client(base_url=base, timeout=GENERATION_SECONDS) as client,
    ):
        idle = []
        for _ in range(IDLE_REQUESTS):
            moment = time.perf_counter()
            client.get(probe).raise_for_status()
            idle.append(time.perf_counter() - moment)
        worker = threading.Thread(target=generate)
        worker.start()
        during = []
        while worker.is_alive():
            moment = time.perf_counter()
            client.get(probe).raise_for_status()
            during.append(time.perf_counter() - moment)
        worker.join()
    backend = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    print(
        f"{codes:,} codes of {pattern!r} on {backend}: HTTP {outcome['status']} "
        f"after {outcome['seconds']:.1f} s"
    )
    print(_spread(f"GET {probe}, idle", idle))
    print(_spread(f"GET {probe}, while generating", during))
    worst = max(during) * 1000
    met = "met" if worst <= STALL_TARGET_MS else "missed"
    print(f"worst wait {worst:.0f} ms (target <= {STALL_TARGET_MS:.0f} ms): {met}")
    return 0 if outcome["status"] == 201 else 1


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--pattern", default=None)
    parser.add_argument("--stall", action="store_true")
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--probe", default="/healthcheck")
    args = parser.parse_args()
    if args.stall:
        pattern = args.pattern or "BENCH-##########"
        options = {"codes": args.codes, "pattern": pattern, "port": args.port, "probe": args.probe}
        if args.sqlite:
            with tempfile.TemporaryDirectory() as folder:
                return stall(f"sqlite:///{folder}/bench.db", **options)
        await create_database()
        return stall(f"postgresql://postgres@{HOST}:5432/{DB_NAME}", **options)
    args.pattern = args.pattern or "####-####-####"
    print(f"start: {load_average()}")

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
    print(f"stored {stored:,} codes, {distinct:,} distinct; {load_average()}")
    return 0 if stored == distinct == args.codes else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
