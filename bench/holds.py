"""Benchmark promo code holds: hold + confirm pairs against plain redeems, in the same run.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/holds.py [--duration 15] [--connections 64] [--codes 20000]
                                    [--workers 1]

1. Creates the database ``promos_bench_holds`` (dropping it first), migrates it, and
   generates ``--codes`` promo codes of 1000 uses each (through the service, as the API does).
2. Starts ``promos serve`` and, from ``--connections`` keep-alive connections at once, each
   looping for ``--duration`` seconds:
   - redeem: ``POST /v1/promocodes/{code}/redeem`` of a random code, a new customer each time;
   - hold + confirm: ``POST /v1/promocodes/{code}/holds`` for a new order, then
     ``POST /v1/promocode-holds/{id}/confirm`` on the same connection: one pair.
   Each phase has a warm-up of 2 s that is not counted.
3. Prints redeems/s and pairs/s, p50 and p99 of each request and of each pair, the cost of a
   pair in redeems (redeems/s over pairs/s) and the targets of issue 16 (a pair costs at most
   2 redeems; p99 <= 20 ms); then checks in SQL that every use taken is a redemption or a
   hold and that no code went below zero.
4. Also prints the CPU time each redeem and each pair cost, in ms: the server's (every
   process of its group) and PostgreSQL's (its connections to the bench database),
   read from /proc over each phase's counted seconds. On a machine shared with other work
   the rates fall with the CPU left over, while these costs stay near what they are on a
   quiet one: the figures to compare between runs there.

The client is a small asyncio HTTP/1.1 client in this process; on a small machine it shares
the CPU with the server, alike for both phases. Everything runs against 127.0.0.1; logs go to
bench/out/ (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.issue_codes import (  # noqa: E402 - after the path is set
    HOST,
    OUT,
    PROMOS,
    port_in_use,
    server_problems,
    stop,
    wait_healthy,
)
from promos import migrate  # noqa: E402
from promos.db import Database  # noqa: E402
from promos.promocodes import service  # noqa: E402
from promos.promocodes.service import GenerationSpec  # noqa: E402

DB_NAME = "promos_bench_holds"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
BENCH_URL = f"postgresql+asyncpg://postgres@{HOST}:5432/{DB_NAME}"
USES_PER_CODE = 1000
WARM_UP_SECONDS = 2.0
TARGET_PAIR_IN_REDEEMS = 2.0
TARGET_P99_MS = 20.0


@dataclass
class Phase:
    label: str
    done: int = 0  # redeems, or pairs
    refused: int = 0  # any answer but the expected one
    latencies_ms: list[float] = field(default_factory=list)  # per unit (request or pair)
    request_ms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    server_cpu: float = 0.0  # seconds of CPU over the counted time
    database_cpu: float = 0.0

    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0


# --- setting up ----------------------------------------------------------------------------------


async def _create_database() -> None:
    conn = await asyncpg.connect(SERVER_DSN, timeout=10)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        await conn.close()


async def _seed(codes: int) -> list[str]:
    database = Database(BENCH_URL)
    try:
        await migrate.upgrade(database.engine)
        spec = GenerationSpec(
            pattern="HOLD-##########",
            count=codes,
            usage_count=USES_PER_CODE,
            discount_percentage=Decimal(10),
        )
        async with database.begin() as conn:
            await service.generate(conn, spec=spec, now=datetime.now(UTC))
            found = await conn.exec_driver_sql("SELECT code FROM promocodes")
            return [row[0] for row in found]
    finally:
        await database.dispose()


def promos_env() -> dict[str, str]:
    return {**os.environ, "PROMOS_DATABASE_URL": BENCH_DSN, "PROMOS_LOG_LEVEL": "warning"}


def create_api_key() -> str:
    done = subprocess.run(
        [str(PROMOS), "api-keys", "create", "--name", "bench"],
        env=promos_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"promos api-keys create failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def promos_server(port: int, workers: int, log_path: Path) -> Iterator[int]:
    """``promos serve`` on the bench database, in its own process group, stopped on exit."""
    if port_in_use(port):
        sys.exit(f"port {port} is already in use on {HOST}: refusing to benchmark that server")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(PROMOS), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)],
            env=promos_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthy(proc, port, log_path)
            yield proc.pid  # its process group's id too (start_new_session)
        finally:
            stop(proc)


# --- the client ------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: a POST, its status and JSON body."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, auth: str
    ) -> None:
        self.reader, self.writer, self.auth = reader, writer, auth

    @classmethod
    async def open(cls, port: int, auth: str) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer, auth)

    async def post(self, path: str, body: dict[str, object] | None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else b""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {self.auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in {b"\r\n", b""}:
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return status, json.loads(payload) if payload else {}

    def close(self) -> None:
        self.writer.close()


# --- CPU --------------------------------------------------------------------------------------


def _cpu_of(pids: set[int] | None, group: int | None = None) -> dict[int, float]:
    """Seconds of CPU (user + system) so far of each process in ``pids`` or in ``group``."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        if pids is not None and pid not in pids:
            continue
        try:
            # After "(command)": state, ppid, pgrp, ..., utime and stime are the 12th and 13th.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if group is not None and int(fields[2]) != group:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


@dataclass
class CpuMeter:
    """The CPU of the server's process group and of the bench database's backends."""

    group: int
    database: asyncpg.Connection

    async def sample(self) -> tuple[dict[int, float], dict[int, float]]:
        backends = {
            row["pid"]
            for row in await self.database.fetch(
                # The server's connections only: not this one, nor autovacuum's workers
                # (which a phase's writes set off, and which would be charged to the next).
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> "
                "pg_backend_pid() AND backend_type = 'client backend'",
                DB_NAME,
            )
        }
        return _cpu_of(None, self.group), _cpu_of(backends)


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    # A process that started meanwhile spent all it has; one that ended is not counted.
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


async def _drive(
    phase: Phase,
    connections: list[Connection],
    codes: list[str],
    duration: float,
    holds: bool,
    *,
    meter: CpuMeter,
) -> None:
    counter = iter(range(10**12))
    start = time.monotonic()
    counting_from = start + WARM_UP_SECONDS
    until = counting_from + duration
    phase.request_ms = {"hold": [], "confirm": []} if holds else {"redeem": []}

    async def loop(conn: Connection) -> None:
        while (began := time.monotonic()) < until:
            n = next(counter)
            code = random.choice(codes)
            body = {"customer": f"c{n}@example.com", "products": []}
            counted = began >= counting_from
            if not holds:
                status, _ = await conn.post(f"/v1/promocodes/{code}/redeem", body)
                took = (time.monotonic() - began) * 1000
                ok = status == 201
                if counted:
                    phase.request_ms["redeem"].append(took)
            else:
                status, held = await conn.post(
                    f"/v1/promocodes/{code}/holds", {**body, "order": f"o-{n}", "ttl_seconds": 600}
                )
                middle = time.monotonic()
                ok = status == 201
                if ok:
                    status, _ = await conn.post(f"/v1/promocode-holds/{held['id']}/confirm", None)
                    ok = status == 200
                if counted:
                    phase.request_ms["hold"].append((middle - began) * 1000)
                    phase.request_ms["confirm"].append((time.monotonic() - middle) * 1000)
                took = (time.monotonic() - began) * 1000
            if counted:
                phase.latencies_ms.append(took)
                if ok:
                    phase.done += 1
                else:
                    phase.refused += 1

    async def counted_cpu() -> tuple[dict[int, float], dict[int, float]]:
        await asyncio.sleep(counting_from - time.monotonic())
        return await meter.sample()

    first = asyncio.create_task(counted_cpu())
    await asyncio.gather(*(loop(c) for c in connections))
    phase.seconds = time.monotonic() - counting_from
    (server_before, db_before), (server_after, db_after) = await first, await meter.sample()
    phase.server_cpu = _spent(server_before, server_after)
    phase.database_cpu = _spent(db_before, db_after)


async def _run(args: argparse.Namespace, codes: list[str], secret: str, server: int) -> list[Phase]:
    connections = [await Connection.open(args.port, secret) for _ in range(args.connections)]
    meter = CpuMeter(server, await asyncpg.connect(BENCH_DSN, timeout=10))
    try:
        phases = []
        for label, holds in (("redeem", False), ("hold + confirm", True)):
            print(f"{label}: {args.connections} connections, {args.duration} s")
            phase = Phase(label)
            await _drive(phase, connections, codes, args.duration, holds, meter=meter)
            phases.append(phase)
        return phases
    finally:
        await meter.database.close()
        for conn in connections:
            conn.close()


# --- reporting -------------------------------------------------------------------------------


def _ms(values: list[float], pct: float) -> float:
    """Nearest-rank percentile, in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def print_results(redeem: Phase, pairs: Phase) -> None:
    print()
    print(f"{'':16} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} {'refused':>8}")
    for phase in (redeem, pairs):
        print(
            f"{phase.label:16} {phase.rate():9.0f} {_ms(phase.latencies_ms, 50):8.1f} "
            f"{_ms(phase.latencies_ms, 99):8.1f} {phase.refused:8}"
        )
    for name, values in (*redeem.request_ms.items(), *pairs.request_ms.items()):
        print(f"  {name:14} {'':9} {_ms(values, 50):8.1f} {_ms(values, 99):8.1f}")
    print()
    print(f"{'CPU ms per unit':16} {'server':>9} {'database':>9} {'both':>8}")
    for phase in (redeem, pairs):
        server, database = (
            (phase.server_cpu / phase.done * 1000, phase.database_cpu / phase.done * 1000)
            if phase.done
            else (float("nan"), float("nan"))
        )
        print(f"{phase.label:16} {server:9.2f} {database:9.2f} {server + database:8.2f}")
    if redeem.done and pairs.done:
        per_redeem = (redeem.server_cpu + redeem.database_cpu) / redeem.done
        per_pair = (pairs.server_cpu + pairs.database_cpu) / pairs.done
        print(f"a pair costs {per_pair / per_redeem:.2f} redeems of CPU (server and database)")
    cost = redeem.rate() / pairs.rate() if pairs.rate() else float("inf")
    worst_p99 = max(_ms(v, 99) for v in pairs.request_ms.values())
    print()
    print(
        f"a hold + confirm costs {cost:.2f} redeems (target <= {TARGET_PAIR_IN_REDEEMS}): "
        f"{'met' if cost <= TARGET_PAIR_IN_REDEEMS else 'NOT met'}"
    )
    print(
        f"p99 of a hold or a confirm {worst_p99:.1f} ms, of a redeem "
        f"{_ms(redeem.request_ms['redeem'], 99):.1f} ms (target <= {TARGET_P99_MS:.0f} ms): "
        f"{'met' if worst_p99 <= TARGET_P99_MS else 'NOT met'}"
    )


async def _check() -> bool:
    conn = await asyncpg.connect(BENCH_DSN, timeout=10)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) * $1 - sum(usage_count) FROM promocodes) AS taken, "
            "(SELECT count(*) FROM promocode_redemptions) AS redeemed, "
            "(SELECT count(*) FROM promocode_holds WHERE status = 'held') AS held, "
            "(SELECT count(*) FROM promocodes WHERE usage_count < 0) AS negative",
            USES_PER_CODE,
        )
    finally:
        await conn.close()
    passed = row["taken"] == row["redeemed"] + row["held"] and row["negative"] == 0
    print(
        f"check: {row['taken']} uses taken = {row['redeemed']} redemptions + {row['held']} "
        f"holds held, {row['negative']} codes below zero: {'ok' if passed else 'FAILED'}"
    )
    return passed


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--codes", type=int, default=20_000, help="promo codes to spread over")
    parser.add_argument("--workers", type=int, default=1, help="promos serve --workers")
    parser.add_argument("--port", type=int, default=8767, help="promos serve --port")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    asyncio.run(_create_database())
    codes = asyncio.run(_seed(args.codes))
    print(f"database {DB_NAME}: {len(codes):,} codes of {USES_PER_CODE} uses")
    secret = create_api_key()
    log_path = OUT / "holds_server.log"
    with promos_server(args.port, args.workers, log_path) as server:
        redeem, pairs = asyncio.run(_run(args, codes, secret, server))
    print_results(redeem, pairs)
    problems = server_problems(log_path)
    if problems:
        print(f"server log: {len(problems)} error lines, e.g. {problems[0]}")
    return 0 if asyncio.run(_check()) and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
