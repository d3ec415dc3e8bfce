"""Benchmark the CSV exports: time, and the server's memory while it streams 1,000,000 rows.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/export_codes.py [--codes 1000000] [--port 8093] [--reuse]

1. Creates the database ``promos_bench_export`` (dropping it first) and migrates it, then
   seeds by SQL: a batch of ``--codes`` codes (one in ten issued to a customer), a batch of
   a tenth of that (to compare memory with), ``--other-codes`` codes of another client in a
   third batch (rows an export must not walk), and a generation of ``--codes`` promo codes.
   ``--reuse`` keeps the database of an earlier run.
2. Starts ``promos serve`` (one process) on ``--port`` and takes an API key from the CLI.
3. Downloads each export over HTTP (``GET /v1/batches/{id}/codes.csv``,
   ``GET /v1/promocodes.csv?generation_id=``), reading the body as it streams and counting
   its rows, while a thread samples the server's resident memory (VmRSS) every 20 ms.
4. Runs ``promos codes export`` to a file, sampling that command's memory the same way.
5. Prints, per export: rows, seconds, rows/s, MB, the server's RSS before, at its peak and
   after; checks every row count against SQL. And the ceiling, in the same run:
   PostgreSQL's own ``COPY (SELECT ...) TO STDOUT`` of the large batch's rows.

Flat memory means: the peak during the 1,000,000-row export is no higher than during the
100,000-row one, give or take the noise of a few MB.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
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
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from uuid import UUID, uuid4

import asyncpg

HOST = "127.0.0.1"
DB_NAME = "promos_bench_export"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
PROMOS = Path(sys.executable).with_name("promos")
SAMPLE_SECONDS = 0.02
READ_BYTES = 64 * 1024
SERVER_START_SECONDS = 60.0


@dataclass(frozen=True)
class Seeded:
    large: UUID
    small: UUID
    generation_id: int


@dataclass(frozen=True)
class Measured:
    rows: int
    seconds: float
    megabytes: float
    rss_before: int
    rss_peak: int
    rss_after: int


# --- the database ------------------------------------------------------------------------------


async def _seed(codes: int, other: int) -> Seeded:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        async with conn.transaction():
            clients = [uuid4(), uuid4()]
            for client in clients:
                await conn.execute(
                    "INSERT INTO clients (id, created_at) VALUES ($1, now())", client
                )
            large, small, elsewhere = uuid4(), uuid4(), uuid4()
            for batch, client, name in (
                (large, clients[0], "large"),
                (small, clients[0], "small"),
                (elsewhere, clients[1], "other"),
            ):
                await conn.execute(
                    "INSERT INTO batches (id, client_id, name, expired, created_at) "
                    "VALUES ($1, $2, $3, false, now())",
                    batch,
                    client,
                    name,
                )
                # A batch's clients are what its export reads first.
                await conn.execute(
                    "INSERT INTO batch_clients (client_id, batch_id) VALUES ($1, $2)",
                    client,
                    batch,
                )
            for batch, client, prefix, count in (
                (large, clients[0], "L", codes),
                (small, clients[0], "S", codes // 10),
                (elsewhere, clients[1], "O", other),
            ):
                # One in ten issued, so that the customer and time columns are not all empty.
                await conn.execute(
                    "INSERT INTO codes (client_id, code, batch_id, seq, customer_id, issued_at) "
                    "SELECT $1, $2 || md5(g::text), $3, g, "
                    "CASE WHEN g % 10 = 0 THEN 'customer-' || g END, "
                    "CASE WHEN g % 10 = 0 THEN now() END "
                    "FROM generate_series(1, $4) AS g",
                    client,
                    prefix,
                    batch,
                    count,
                )
            generation_id = await conn.fetchval(
                "INSERT INTO promocode_generations (pattern, charset, prefix, postfix, count, "
                "discount_percentage, usage_count, created_at) "
                "VALUES ('############', 'X', '', '', $1, 20, 1, now()) RETURNING id",
                codes,
            )
            await conn.execute(
                "INSERT INTO promocodes (code, generation_id, usage_count) "
                "SELECT 'P' || md5(g::text), $1, 1 FROM generate_series(1, $2) AS g",
                generation_id,
                codes,
            )
        await conn.execute("VACUUM ANALYZE codes, promocodes")
    finally:
        await conn.close()
    return Seeded(large=large, small=small, generation_id=generation_id)


async def _existing() -> Seeded:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        ids = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM batches")}
        generation_id = await conn.fetchval("SELECT max(id) FROM promocode_generations")
    finally:
        await conn.close()
    return Seeded(large=ids["large"], small=ids["small"], generation_id=generation_id)


async def _recreate() -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        await conn.close()


async def _copy_ceiling(batch: UUID) -> tuple[int, float]:
    """PostgreSQL's own CSV of the same rows (COPY ... TO STDOUT), read and thrown away: the
    ceiling of any export of them, in rows and seconds."""
    conn = await asyncpg.connect(BENCH_DSN)
    size = 0

    async def sink(data: bytes) -> None:
        nonlocal size
        size += data.count(b"\n")

    try:
        started = time.perf_counter()
        await conn.copy_from_query(
            "SELECT code, client_id, customer_id, issued_at FROM codes WHERE batch_id = $1 "
            "ORDER BY client_id, code",
            batch,
            output=sink,
            format="csv",
            header=True,
        )
        return size - 1, time.perf_counter() - started
    finally:
        await conn.close()


async def _count(query: str, *args: object) -> int:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        return int(await conn.fetchval(query, *args))
    finally:
        await conn.close()


# --- the server --------------------------------------------------------------------------------


def env() -> dict[str, str]:
    return {**os.environ, "PROMOS_DATABASE_URL": BENCH_DSN, "PROMOS_LOG_LEVEL": "warning"}


def promos(*args: str) -> str:
    done = subprocess.run(
        [str(PROMOS), *args], env=env(), capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        sys.exit(f"promos {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def rss_kib(pid: int) -> int:
    """The process's resident memory, in KiB (0 once it has ended)."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@contextmanager
def server(port: int) -> Iterator[int]:
    """``promos serve`` in one process of its own group; its pid, healthy on entry."""
    with socket.socket() as sock:
        if sock.connect_ex((HOST, port)) == 0:
            sys.exit(f"port {port} is in use on {HOST}: choose another with --port")
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, with the server
    proc = subprocess.Popen(
        [str(PROMOS), "serve", "--host", HOST, "--port", str(port), "--workers", "1"],
        env=env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not _healthy(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("promos serve did not become healthy")
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


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthcheck")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --- measuring ---------------------------------------------------------------------------------


class PeakRss:
    """Samples a process's RSS every ``SAMPLE_SECONDS`` in a thread, while in the block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_kib(self.pid))
            if self._done.wait(SAMPLE_SECONDS):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


def download(port: int, path: str, key: str, pid: int) -> Measured:
    """Stream ``path``'s CSV, counting rows, while sampling the server's RSS."""
    before = rss_kib(pid)
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    size = lines = 0
    with PeakRss(pid) as rss:
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            if response.status != 200:
                sys.exit(f"GET {path}: {response.status} {response.read()[:500]!r}")
            while chunk := response.read(READ_BYTES):
                size += len(chunk)
                lines += chunk.count(b"\n")
        finally:
            conn.close()
            seconds = time.perf_counter() - started
    return Measured(
        rows=lines - 1,
        seconds=seconds,
        megabytes=size / 1e6,
        rss_before=before,
        rss_peak=rss.peak,
        rss_after=rss_kib(pid),
    )


def report(name: str, m: Measured, expected: int) -> None:
    ok = "ok" if m.rows == expected else f"WRONG: {expected} in the database"
    print(
        f"{name:<34} {m.rows:>9,} rows ({ok}) in {m.seconds:6.2f} s = {m.rows / m.seconds:>9,.0f}"
        f" rows/s, {m.megabytes:6.1f} MB; server RSS {m.rss_before / 1024:6.1f} MiB before,"
        f" {m.rss_peak / 1024:6.1f} at peak (+{(m.rss_peak - m.rss_before) / 1024:.1f}),"
        f" {m.rss_after / 1024:6.1f} after"
    )


def cli_export(batch: UUID) -> tuple[int, float, float]:
    """``promos codes export`` to a file: rows, seconds, the command's peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "codes.csv"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [str(PROMOS), "codes", "export", str(batch), "-o", str(out)],
            env=env(),
            stderr=subprocess.DEVNULL,
        )
        with PeakRss(proc.pid) as rss:
            if proc.wait(timeout=600) != 0:
                sys.exit(f"promos codes export failed ({proc.returncode})")
        seconds = time.perf_counter() - started
        with out.open("rb") as handle:
            rows = sum(1 for _ in handle) - 1
    return rows, seconds, rss.peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--other-codes", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8093)
    parser.add_argument("--reuse", action="store_true", help="keep the last run's database")
    args = parser.parse_args()

    if args.reuse:
        seeded = asyncio.run(_existing())
    else:
        asyncio.run(_recreate())
        promos("migrate")
        started = time.monotonic()
        seeded = asyncio.run(_seed(args.codes, args.other_codes))
        print(f"seeded in {time.monotonic() - started:.1f} s")
    key = promos("api-keys", "create", "--name", "bench").strip().splitlines()[-1]
    count_batch = "SELECT count(*) FROM codes WHERE batch_id = $1"
    with server(args.port) as pid:
        # A first small request loads what a first request loads (imports, the pool).
        download(args.port, f"/v1/batches/{seeded.small}/codes.csv", key, pid)
        for name, path, expected in (
            (
                "batch codes, a tenth (same client)",
                f"/v1/batches/{seeded.small}/codes.csv",
                asyncio.run(_count(count_batch, seeded.small)),
            ),
            (
                "batch codes",
                f"/v1/batches/{seeded.large}/codes.csv",
                asyncio.run(_count(count_batch, seeded.large)),
            ),
            (
                "promo codes of a generation",
                f"/v1/promocodes.csv?generation_id={seeded.generation_id}",
                asyncio.run(
                    _count(
                        "SELECT count(*) FROM promocodes WHERE generation_id = $1",
                        seeded.generation_id,
                    )
                ),
            ),
            (
                "batch codes, again",
                f"/v1/batches/{seeded.large}/codes.csv",
                asyncio.run(_count(count_batch, seeded.large)),
            ),
        ):
            report(name, download(args.port, path, key, pid), expected)
    rows, seconds = asyncio.run(_copy_ceiling(seeded.large))
    print(
        f"{'ceiling: COPY TO STDOUT, same rows':<34} {rows:>9,} rows in {seconds:6.2f} s = "
        f"{rows / seconds:>9,.0f} rows/s"
    )
    rows, seconds, peak = cli_export(seeded.large)
    print(
        f"{'promos codes export -o FILE':<34} {rows:>9,} rows in {seconds:6.2f} s "
        f"(start-up included); the command's peak RSS {peak:.1f} MiB"
    )


if __name__ == "__main__":
    main()
