"""Benchmark promo code holds: hold + confirm pairs against plain redeems, in the same run.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/holds.py [--duration 15] [--connections 64] [--codes 20000]
                                    [--workers 1] [--client wrk|python|both] [--port 8767]

1. Creates the database ``promos_bench_holds`` (dropping it first), migrates it, and
   generates ``--codes`` promo codes of 1000 uses each (through the service, as the API does).
2. Starts ``promos serve`` and, from ``--connections`` keep-alive connections at once, each
   looping for ``--duration`` seconds:
   - redeem: ``POST /v1/promocodes/{code}/redeem`` of a random code, a new customer each time;
   - hold + confirm: ``POST /v1/promocodes/{code}/holds`` for a new order, then
     ``POST /v1/promocode-holds/{id}/confirm``: one pair.
   Each phase has a warm-up of 2 s that is not counted, after which the tables the phase
   writes are analysed (as autovacuum does on a default server), and starts after a ``VACUUM
   (ANALYZE)`` of the codes: the pairs do not pay for the dead row versions of the redeems
   before them (on a server without autovacuum, they did: more, the faster the redeems).
   The load comes from wrk (``--client wrk``, the default: bench/holds.lua, one thread), or
   from a small asyncio client in this process (``--client python``: it shares the CPU with
   the server, twice wrk's CPU per request), or both one after the
   other on the same server (``--client both``). wrk sends a hold's confirm as the next
   request of whichever connection is free first, and gives one latency histogram of the
   holds and confirms together; the Python client sends it on the hold's connection and
   times each request and each pair.
3. Prints redeems/s and pairs/s, p50 and p99 of each request and of each pair, the cost of a
   pair in redeems (redeems/s over pairs/s) and the targets of issue 16 (a pair costs at most
   2 redeems; p99 <= 20 ms); then checks in SQL that every use taken is a redemption or a
   hold and that no code went below zero.
4. Also prints the CPU time each redeem and each pair cost, in ms: the server's (every
   process of its group) and PostgreSQL's (its connections to the bench database),
   read from /proc over each phase's counted seconds. On a machine shared with other work
   the rates fall with the CPU left over, while these costs stay near what they are on a
   quiet one: the figures to compare between runs there. And the WAL written per unit
   (``pg_current_wal_lsn``: the whole server's, so other work on it counts too), and the
   client's own CPU per unit (wrk's, or this process's for the Python client).

Everything runs against 127.0.0.1; logs and the codes' file for wrk go to bench/out/
(ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import shutil
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
WRK = shutil.which("wrk") or "/usr/bin/wrk"
WRK_SCRIPT = ROOT / "bench" / "holds.lua"


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
    client_cpu: float = 0.0  # wrk's, or this process's (the Python client)
    wal_bytes: int = 0
    # wrk's percentiles of the requests (a pair's two together); the Python client's
    # are computed from latencies_ms and request_ms instead.
    wrk_ms: tuple[float, float] | None = None

    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def unit_ms(self, pct: float) -> float:
        if self.wrk_ms is not None:
            return self.wrk_ms[0 if pct == 50 else 1]
        return _ms(self.latencies_ms, pct)

    def measured(self, before: Sample, after: Sample) -> None:
        self.server_cpu = _spent(before.server, after.server)
        self.database_cpu = _spent(before.database, after.database)
        self.wal_bytes = after.wal - before.wal


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


@dataclass(frozen=True)
class Sample:
    server: dict[int, float]  # CPU seconds by process
    database: dict[int, float]
    wal: int  # bytes, pg_current_wal_lsn()


@dataclass
class CpuMeter:
    """The CPU of the server's process group and of the bench database's backends."""

    group: int
    database: asyncpg.Connection

    async def sample(self) -> Sample:
        wal = await self.database.fetchval("SELECT pg_current_wal_lsn() - '0/0'")
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
        return Sample(_cpu_of(None, self.group), _cpu_of(backends), int(wal))


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

    client_from = 0.0

    async def counted_cpu() -> Sample:
        nonlocal client_from
        await asyncio.sleep(counting_from - time.monotonic())
        await _analyze_written(meter.database)
        client_from = time.process_time()
        return await meter.sample()

    first = asyncio.create_task(counted_cpu())
    await asyncio.gather(*(loop(c) for c in connections))
    phase.seconds = time.monotonic() - counting_from
    phase.client_cpu = time.process_time() - client_from
    phase.measured(await first, await meter.sample())


async def _vacuum(conn: asyncpg.Connection) -> None:
    """Each phase from the same start: the codes' dead row versions of the phase before
    removed (the server may run without autovacuum), outside the counted time. Only the
    codes: the other tables only grow, and ``promocode_holds`` analysed while empty (as it
    is before the pairs) would have the lean statements' generic plans, prepared on the
    first executions, read it whole for each hold (a seq scan per hold, kept while nothing
    analyses the table again)."""
    await conn.execute("VACUUM (ANALYZE) promocodes")


async def _analyze_written(conn: asyncpg.Connection) -> None:
    """After the warm-up, the tables the phase writes analysed, as autovacuum does on a
    default server once a table has grown by a tenth (this one may run without): the lean
    statements' generic plans, made on their first executions while the tables were nearly
    empty, are made again for their real size (an ANALYZE invalidates them). Without it a
    group's generic plan may read ``promocode_holds`` whole, each group, for the rest of the
    phase: 2,063 sequential scans reading 19 million rows in one 10 s run."""
    await conn.execute("ANALYZE promocode_holds, promocode_redemptions")


def _wrk(
    args: argparse.Namespace, mode: str, run: str, seconds: float, *, secret: str, codes_file: Path
) -> dict[str, Any]:
    """One run of wrk with bench/holds.lua; its JSON summary."""
    done = subprocess.run(
        [
            WRK,
            "-t1",
            f"-c{args.connections}",
            f"-d{round(seconds)}s",
            "--latency",
            "-s",
            str(WRK_SCRIPT),
            f"http://{HOST}:{args.port}",
            "--",
            mode,
            run,
            str(codes_file),
        ],
        env={**os.environ, "AUTH": f"Bearer {secret}"},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    found = re.search(r"^JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    summary: dict[str, Any] = json.loads(found.group(1))
    return summary


def _children_cpu() -> float:
    """Seconds of CPU of this process's children waited for so far (wrk's runs)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def _drive_wrk(
    phase: Phase,
    args: argparse.Namespace,
    holds: bool,
    *,
    secret: str,
    codes_file: Path,
    meter: CpuMeter,
) -> None:
    mode = "pairs" if holds else "redeem"
    run = f"{os.getpid()}-{time.monotonic_ns()}"
    _wrk(args, mode, f"w{run}", WARM_UP_SECONDS, secret=secret, codes_file=codes_file)
    await _analyze_written(meter.database)
    before = await meter.sample()
    client_from = _children_cpu()
    summary = _wrk(args, mode, run, args.duration, secret=secret, codes_file=codes_file)
    phase.client_cpu = _children_cpu() - client_from
    phase.measured(before, await meter.sample())
    phase.seconds = summary["seconds"]
    # Pairs: the confirms answered; a hold answered as wrk stopped is left held.
    phase.done = summary["s200"] if holds else summary["s201"]
    phase.refused = summary["other"] + summary["socket_errors"]
    phase.wrk_ms = (summary["p50_ms"], summary["p99_ms"])
    phase.request_ms = {}


async def _run(
    args: argparse.Namespace, codes: list[str], secret: str, server: int
) -> list[tuple[Phase, Phase]]:
    meter = CpuMeter(server, await asyncpg.connect(BENCH_DSN, timeout=10))
    codes_file = OUT / "holds_codes.txt"
    codes_file.write_text("".join(f"{code}\n" for code in codes))
    clients = ["wrk", "python"] if args.client == "both" else [args.client]
    try:
        runs = []
        for client in clients:
            phases = []
            for label, holds in (("redeem", False), ("hold + confirm", True)):
                await _vacuum(meter.database)
                print(f"{client}: {label}: {args.connections} connections, {args.duration} s")
                phase = Phase(label)
                if client == "wrk":
                    await _drive_wrk(
                        phase, args, holds, secret=secret, codes_file=codes_file, meter=meter
                    )
                else:
                    connections = [
                        await Connection.open(args.port, secret) for _ in range(args.connections)
                    ]
                    try:
                        await _drive(phase, connections, codes, args.duration, holds, meter=meter)
                    finally:
                        for conn in connections:
                            conn.close()
                phases.append(phase)
            runs.append((phases[0], phases[1]))
        return runs
    finally:
        await meter.database.close()


# --- reporting -------------------------------------------------------------------------------


def _ms(values: list[float], pct: float) -> float:
    """Nearest-rank percentile, in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def print_results(client: str, redeem: Phase, pairs: Phase) -> None:
    print()
    if client == "wrk":
        print("client wrk: p50 and p99 of the requests (a pair's hold and confirm together)")
    else:
        print("client python: p50 and p99 of each redeem and each pair, then of each request")
    print(f"{'':16} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8} {'refused':>8}")
    for phase in (redeem, pairs):
        print(
            f"{phase.label:16} {phase.rate():9.0f} {phase.unit_ms(50):8.1f} "
            f"{phase.unit_ms(99):8.1f} {phase.refused:8}"
        )
    for name, values in (*redeem.request_ms.items(), *pairs.request_ms.items()):
        print(f"  {name:14} {'':9} {_ms(values, 50):8.1f} {_ms(values, 99):8.1f}")
    print()
    print(
        f"{'per unit':16} {'server ms':>9} {'db ms':>9} {'both ms':>8} {'WAL bytes':>10} "
        f"{'client ms':>9}"
    )
    for phase in (redeem, pairs):
        server, database, wal, client = (
            (
                phase.server_cpu / phase.done * 1000,
                phase.database_cpu / phase.done * 1000,
                phase.wal_bytes / phase.done,
                phase.client_cpu / phase.done * 1000,
            )
            if phase.done
            else (float("nan"),) * 4
        )
        print(
            f"{phase.label:16} {server:9.2f} {database:9.2f} {server + database:8.2f} "
            f"{wal:10.0f} {client:9.2f}"
        )
    if redeem.done and pairs.done:
        per_redeem = (redeem.server_cpu + redeem.database_cpu) / redeem.done
        per_pair = (pairs.server_cpu + pairs.database_cpu) / pairs.done
        print(f"a pair costs {per_pair / per_redeem:.2f} redeems of CPU (server and database)")
    cost = redeem.rate() / pairs.rate() if pairs.rate() else float("inf")
    worst_p99 = max((_ms(v, 99) for v in pairs.request_ms.values()), default=pairs.unit_ms(99))
    print()
    print(
        f"a hold + confirm costs {cost:.2f} redeems (target <= {TARGET_PAIR_IN_REDEEMS}): "
        f"{'met' if cost <= TARGET_PAIR_IN_REDEEMS else 'NOT met'}"
    )
    print(
        f"p99 of a hold or a confirm {worst_p99:.1f} ms, of a redeem "
        f"{redeem.unit_ms(99):.1f} ms (target <= {TARGET_P99_MS:.0f} ms): "
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
    parser.add_argument(
        "--client",
        choices=("wrk", "python", "both"),
        default="wrk",
        help="what drives the load: wrk, the asyncio client in this process, or both in turn",
    )
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
        runs = asyncio.run(_run(args, codes, secret, server))
    clients = ["wrk", "python"] if args.client == "both" else [args.client]
    for client, (redeem, pairs) in zip(clients, runs, strict=True):
        print_results(client, redeem, pairs)
    problems = server_problems(log_path)
    if problems:
        print(f"server log: {len(problems)} error lines, e.g. {problems[0]}")
    return 0 if asyncio.run(_check()) and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
