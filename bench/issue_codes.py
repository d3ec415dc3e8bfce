"""Benchmark issuing codes: Promos under wrk, against a pgbench ceiling measured in the same run.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/issue_codes.py [--duration 20] [--connections 64] [--codes 1000000]
                                          [--workers 1] [--reuse] [--scoped [--scoped-first]]
                                          [--sweep 1,4,16,64,256]

1. Creates the PostgreSQL database ``promos_bench`` (dropping it first), migrates it, and seeds
   with SQL a client, two batches of ``--codes`` codes each (one without rules, one with
   ``maxpercustomer: 1, timelimit: 30``) and ``bench_ceiling_codes``, a table shaped like
   ``codes`` for the ceiling. ``--reuse`` keeps what is there, so that a second run drains the
   same pools further (the issue asks that it be as fast as the first).
2. Starts ``promos serve`` and drives ``POST /api/v1/code/redeem`` with wrk and
   ../shared/bench/issue_codes.lua (a new customer per request): the batch without rules, then
   the batch with rules.
   With ``--scoped``, each batch is driven twice in a row: with an unscoped key, then with a
   key holding only ``pools:use:<the client>`` (issue 17), so that the scope check's cost is
   read from two runs of the same server under the same load. The second run of a batch finds
   it drained by the first; ``--scoped-first`` swaps the two, to tell the order's effect from
   the key's.
3. Measures the ceiling with pgbench: one single-statement issue per transaction, same
   concurrency.
4. Prints requests/s, p50, p99 and errors of each, the ratios to the ceiling and the targets of
   issue 2; then checks in SQL that no code was issued twice and that no customer of the rules
   batch got more than one code.

``--sweep 1,4,16,64,256`` (issue 19) drives both batches at each connection count instead, then
measures the ceiling at each count twice: the one-statement issue, and the same with the rule's
statement (the customer's quota row upserted while under the limit, as Promos counts it). The
ceiling cannot have more clients than PostgreSQL's free connections (max_connections is 100
here): above that, each row is compared with the ceiling at the most it allows (marked ``*``).
It prints one table: req/s, p50, p99, the ratio to the ceiling, and CPU per issued code of the
Promos server's processes, of every PostgreSQL process, and of the bench database's backends
alone (from /proc, while each run lasts; other work on the machine, such as another database's
tests, counts in the first two and slows everything: run it quiet). Before the first row, 2 s
of unmeasured load on each batch warm the server up.

``--citus postgresql://postgres@127.0.0.1:9700/postgres`` (issue 18) drives both batches on the
single PostgreSQL, then the same on a Citus cluster of this machine (deploy/citus/cluster.sh:
the database made on every node, seeded alike, distributed), and prints them side by side with
the ratios, CPU per issued code included (the cluster's: every node's PostgreSQL summed);
bench/on_citus.py.

Everything runs against 127.0.0.1. Exit status 1 if a correctness check fails; the performance
targets are reported, not enforced. Logs go to bench/out/ (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self
from uuid import UUID, uuid4

import asyncpg

HOST = "127.0.0.1"
PG_PORT = 5432
DB_NAME = "promos_bench"
SERVER_DSN = f"postgresql://postgres@{HOST}:{PG_PORT}/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:{PG_PORT}/{DB_NAME}"

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PROMOS = Path(sys.executable).with_name("promos")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
PGBENCH = shutil.which("pgbench") or "/usr/bin/pgbench"
WRK_SCRIPT = ROOT.parent / "shared" / "bench" / "issue_codes.lua"

CLIENT_NAME = "bench"
CEILING_BATCH = UUID("00000000-0000-4000-8000-00000000c0de")
NO_RULES = "bench: no rules"
WITH_RULES = "bench: maxpercustomer 1, timelimit 30"

# Issue 2's targets, rules on.
TARGET_RATIO = 1.5
TARGET_P99_MS = 20.0
# Issue 19's: alone, a request does not linger.
ALONE_P50_MS = 1.5

SERVER_START_SECONDS = 60.0
SERVER_STOP_SECONDS = 40.0

CEILING_SQL = (
    "UPDATE bench_ceiling_codes SET issued_at = now(), customer_id = md5(random()::text) "
    "WHERE (client_id, code) = (SELECT client_id, code FROM bench_ceiling_codes "
    "WHERE batch_id = :batch AND client_id = :client AND issued_at IS NULL "
    "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING code;\n"
)

# The ceiling with issue 19's per-customer rule (maxpercustomer 1, timelimit 30), in one
# statement as Promos counts it: the customer's quota row upserted only while under the limit,
# then a free code, for a new customer per transaction (as wrk's script sends).
CEILING_RULES_SQL = (
    "\\set r random(1, 9000000000000000)\n"
    "WITH counted AS (INSERT INTO bench_ceiling_quotas AS q "
    "(client_id, batch_id, customer_id, issued) VALUES (:client, :batch, 'c' || :r, "
    "ARRAY[now()]) ON CONFLICT (client_id, batch_id, customer_id) DO UPDATE "
    "SET issued = ARRAY(SELECT t FROM unnest(q.issued) AS t "
    "WHERE t > now() - interval '30 days') || excluded.issued "
    "WHERE (SELECT count(*) FROM unnest(q.issued) AS t "
    "WHERE t > now() - interval '30 days') < 1 RETURNING customer_id) "
    "UPDATE bench_ceiling_codes SET issued_at = now(), "
    "customer_id = (SELECT customer_id FROM counted) "
    "WHERE (client_id, code) = (SELECT client_id, code FROM bench_ceiling_codes "
    "WHERE batch_id = :batch AND client_id = :client AND issued_at IS NULL "
    "ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED) AND EXISTS (SELECT FROM counted) "
    "RETURNING code;\n"
)


@dataclass(frozen=True)
class Pool:
    client_id: UUID
    no_rules: UUID
    rules: UUID


@dataclass(frozen=True)
class Result:
    """One load run. For pgbench, ``ok`` is committed transactions and ``non_ok`` failed ones."""

    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    ok: int
    non_ok: int
    server_errors: int  # 5xx
    socket_errors: int  # connect/read/write errors and timeouts
    issued: int  # rows that went from free to issued during the run
    dup_codes_seen: int = 0
    connections: int = 0
    server_cpu_s: float = 0.0  # the Promos server's processes, during the run
    pg_cpu_s: float = 0.0  # every PostgreSQL process, during the run
    backends_cpu_s: float = 0.0  # the backends connected to the bench database, during it

    def cpu_us_per_code(self, seconds: float) -> float:
        return seconds / self.issued * 1e6 if self.issued else math.nan

    @property
    def errors(self) -> int:
        return self.non_ok + self.socket_errors


# --- database -------------------------------------------------------------------------------


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=10)


def fetch(query: str, *args: object) -> list[asyncpg.Record]:
    """Rows of one query on the bench database (a connection of its own)."""

    async def go() -> list[asyncpg.Record]:
        conn = await _connect(BENCH_DSN)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def create_database() -> None:
    async def go() -> None:
        conn = await _connect(SERVER_DSN)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            await conn.close()

    asyncio.run(go())
    print(f"created database {DB_NAME}")


def seed(codes: int) -> Pool:
    """A client, two batches of ``codes`` codes each, and the ceiling's table, all by SQL."""
    pool = Pool(client_id=uuid4(), no_rules=uuid4(), rules=uuid4())

    async def go() -> None:
        conn = await _connect(BENCH_DSN)
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO clients (id, name, created_at) VALUES ($1, $2, now())",
                    pool.client_id,
                    CLIENT_NAME,
                )
                await conn.executemany(
                    "INSERT INTO batches (id, client_id, name, max_per_customer, "
                    "time_limit_days, expired, created_at) "
                    "VALUES ($1, $2, $3, $4, $5, false, now())",
                    [
                        (pool.no_rules, pool.client_id, NO_RULES, None, None),
                        (pool.rules, pool.client_id, WITH_RULES, 1, 30),
                    ],
                )
                await conn.executemany(
                    "INSERT INTO batch_clients (client_id, batch_id) VALUES ($1, $2)",
                    [(pool.client_id, pool.no_rules), (pool.client_id, pool.rules)],
                )
                for batch_id, prefix in ((pool.no_rules, "N"), (pool.rules, "R")):
                    await conn.execute(
                        "INSERT INTO codes (batch_id, client_id, code, seq) "
                        "SELECT $1, $2, $3 || lpad(g::text, 10, '0'), g "
                        "FROM generate_series(1, $4) AS g",
                        batch_id,
                        pool.client_id,
                        prefix,
                        codes,
                    )
                # The very shape of codes (columns and indexes: an issue writes the same index
                # entries in both, and finds a free code through the same partial index).
                await conn.execute("CREATE TABLE bench_ceiling_codes (LIKE codes INCLUDING ALL)")
                await conn.execute(
                    "CREATE TABLE bench_ceiling_quotas (LIKE customer_quotas INCLUDING ALL)"
                )
                await conn.execute(
                    "INSERT INTO bench_ceiling_codes (batch_id, client_id, code, seq) "
                    "SELECT $1, $2, 'C' || lpad(g::text, 10, '0'), g "
                    "FROM generate_series(1, $3) AS g",
                    CEILING_BATCH,
                    pool.client_id,
                    codes,
                )
            # Outside the transaction: VACUUM cannot run in one.
            await conn.execute("ANALYZE")
            await conn.execute(
                "VACUUM codes, bench_ceiling_codes, bench_ceiling_quotas, batches, clients, "
                "batch_clients"
            )
        finally:
            await conn.close()

    started = time.monotonic()
    asyncio.run(go())
    print(
        f"seeded 2 batches and the ceiling table, {codes:,} codes each, "
        f"in {time.monotonic() - started:.1f} s"
    )
    return pool


def existing_pool() -> Pool:
    """The pool a previous run seeded (for --reuse)."""
    try:
        rows = fetch(
            "SELECT b.name, b.id, b.client_id FROM batches b JOIN clients c ON c.id = b.client_id "
            "WHERE c.name = $1 AND b.name = ANY($2::text[])",
            CLIENT_NAME,
            [NO_RULES, WITH_RULES],
        )
    except (asyncpg.InvalidCatalogNameError, asyncpg.UndefinedTableError):
        rows = []
    by_name = {row["name"]: row for row in rows}
    if set(by_name) != {NO_RULES, WITH_RULES}:
        sys.exit(f"--reuse: {DB_NAME} holds no bench pool; run once without --reuse first")
    return Pool(
        client_id=by_name[NO_RULES]["client_id"],
        no_rules=by_name[NO_RULES]["id"],
        rules=by_name[WITH_RULES]["id"],
    )


def issued_in_batch(batch_id: UUID) -> tuple[int, int]:
    """(issued, free) codes of a batch."""
    row = fetch(
        "SELECT count(issued_at) AS issued, count(*) - count(issued_at) AS free "
        "FROM codes WHERE batch_id = $1",
        batch_id,
    )[0]
    return row["issued"], row["free"]


def issued_in_ceiling() -> tuple[int, int]:
    row = fetch(
        "SELECT count(issued_at) AS issued, count(*) - count(issued_at) AS free "
        "FROM bench_ceiling_codes"
    )[0]
    return row["issued"], row["free"]


def check_connection_headroom(connections: int) -> None:
    row = fetch(
        "SELECT current_setting('max_connections')::int AS max, "
        "(SELECT count(*) FROM pg_stat_activity) AS used"
    )[0]
    free = row["max"] - row["used"]
    if free < connections + 4:
        print(
            f"warning: PostgreSQL has {free} free connections of {row['max']}; "
            f"pgbench needs {connections} and may fail"
        )


def vacuum(*tables: str) -> None:
    """VACUUM the tables (outside a transaction): each run of a sweep starts from an index of
    free codes without the dead entries the runs before it left (a fresh pool's state)."""

    async def go() -> None:
        conn = await _connect(BENCH_DSN)
        try:
            await conn.execute(f"VACUUM {', '.join(tables)}")
        finally:
            await conn.close()

    asyncio.run(go())


def free_connections() -> int:
    """How many more connections PostgreSQL accepts now (keeping 4 for this script)."""
    row = fetch(
        "SELECT current_setting('max_connections')::int AS max, "
        "(SELECT count(*) FROM pg_stat_activity) AS used"
    )[0]
    return int(row["max"] - row["used"] - 4)


def postmaster_pid() -> int:
    """The PostgreSQL server's own process (its first line of postmaster.pid)."""
    data = fetch("SELECT current_setting('data_directory') AS d")[0]["d"]
    return int((Path(data) / "postmaster.pid").read_text().split()[0])


# --- CPU accounting --------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "


def tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root`` and every descendant, live or reaped by it: its utime + stime,
    its children's it waited for (cutime + cstime), and its live descendants' own. A
    process that exits during a run (a pgbench connection's backend) is counted once its
    parent reaps it, which the postmaster does at once."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        # fields[11:15] = utime stime cutime cstime (stat fields 14-17)
        total += (
            sum(int(v) for v in fields[11:15])
            if pid == root
            else sum(int(v) for v in fields[11:13])
        )
        todo.extend(children.get(pid, ()))
    # A live descendant's own reaped children: counted in its cutime only when it exits;
    # Promos' workers and PostgreSQL's backends fork none that outlive a request.
    return total / TICKS


@contextmanager
def cpu_meter(server: int | None, postgres: int | None) -> Iterator[dict[str, float]]:
    """Seconds of CPU the server's and PostgreSQL's processes (by their root pids; None:
    not measured) used inside the block."""
    roots = {"server": server, "postgres": postgres}
    before = {name: tree_cpu_seconds(pid) for name, pid in roots.items() if pid}
    spent: dict[str, float] = {}
    yield spent
    for name, pid in roots.items():
        if pid:
            spent[name] = tree_cpu_seconds(pid) - before[name]


class BackendMeter:
    """CPU seconds of the PostgreSQL backends connected to the bench database while it runs
    (sampled from /proc every 20 ms, by their process titles), so that work of other databases
    on the same server does not count. A backend that exits between two samples loses the
    CPU of its last 20 ms: pgbench's connections end only with the run."""

    def __init__(self) -> None:
        self._first: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> Self:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)

    @property
    def seconds(self) -> float:
        return sum(self._last[pid] - self._first.get(pid, 0) for pid in self._last) / TICKS

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(0.02):
            self._sample(first=False)

    def _sample(self, *, first: bool) -> None:
        title = f" postgres {DB_NAME} ".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if title not in (entry / "cmdline").read_bytes():
                    continue
            except OSError:
                continue
            fields = _stat(int(entry.name))
            if fields is None:
                continue
            ticks = int(fields[11]) + int(fields[12])
            if first:
                self._first[int(entry.name)] = ticks
            self._last[int(entry.name)] = ticks


# --- promos CLI and server -------------------------------------------------------------------


def promos_env() -> dict[str, str]:
    return {
        **os.environ,
        "PROMOS_DATABASE_URL": BENCH_DSN,
        "PROMOS_LOG_LEVEL": "warning",
    }


def promos(*args: str) -> str:
    """Run a ``promos`` command against the bench database; its stdout."""
    done = subprocess.run(
        [str(PROMOS), *args],
        env=promos_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"promos {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def create_api_key(*scopes: str) -> str:
    """A sales key's secret; with ``scopes``, a key holding those only."""
    options = [arg for scope in scopes for arg in ("--scope", scope)]
    name = "bench-scoped" if scopes else "bench"
    return promos("api-keys", "create", "--name", name, *options).strip().splitlines()[-1]


def settled_issued(batch_id: UUID) -> int:
    """The batch's issued rows once the requests in flight at wrk's stop are answered (their
    count stops moving), so that back-to-back runs on one batch each get their own."""
    last = issued_in_batch(batch_id)[0]
    for _ in range(50):  # bounded: 10 s at most
        time.sleep(0.2)
        now = issued_in_batch(batch_id)[0]
        if now == last:
            return now
        last = now
    return last


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthcheck")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@contextmanager
def promos_server(port: int, workers: int, log_path: Path) -> Iterator[int]:
    """``promos serve`` in its own process group, healthy on entry, stopped on exit."""
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
            yield proc.pid
        finally:
            stop(proc)


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    started = time.monotonic()
    deadline = started + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"promos serve exited with {proc.returncode}:\n{log_path.read_text()}")
        if healthy(port):
            print(f"promos serve healthy after {time.monotonic() - started:.1f} s")
            return
        time.sleep(0.2)
    sys.exit(f"promos serve not healthy after {SERVER_START_SECONDS:.0f} s; see {log_path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server we started (and its workers), killing it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=SERVER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"promos serve still running {SERVER_STOP_SECONDS:.0f} s after SIGTERM: killing")
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # Workers left behind by a killed supervisor are in the group we created for it.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def server_problems(log_path: Path) -> list[str]:
    """Lines of the server log that report errors (the log level is warning)."""
    lines = log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if re.search(r"ERROR|Traceback|CRITICAL", line)]


# --- load runs -------------------------------------------------------------------------------


def run_wrk(
    label: str,
    batch_id: UUID,
    pool: Pool,
    secret: str,
    args: argparse.Namespace,
    *,
    connections: int | None = None,
) -> Result:
    connections = connections or args.connections
    _, free = issued_in_batch(batch_id)
    print(f"wrk: {label}: {free:,} free codes, {connections} connections, {args.duration} s")
    env = {
        **os.environ,
        "BATCH": str(batch_id),
        "CLIENT": str(pool.client_id),
        "AUTH": f"Bearer {secret}",
    }
    env.pop("CUSTOMER", None)  # the script would send one fixed customer instead of new ones
    done = subprocess.run(
        [
            WRK,
            "-t1",
            f"-c{connections}",
            f"-d{args.duration}s",
            "--latency",
            "-s",
            str(WRK_SCRIPT),
            f"http://{HOST}:{args.port}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
        check=False,
    )
    status_line = re.search(r"^STATUS (.*)$", done.stdout, re.MULTILINE)
    json_line = re.search(r"^JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or status_line is None or json_line is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    status = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", status_line.group(1))}
    summary = json.loads(json_line.group(1))
    return Result(
        label=label,
        rps=summary["rps"],
        p50_ms=summary["p50_ms"],
        p99_ms=summary["p99_ms"],
        ok=summary["ok"],
        non_ok=summary["non2xx"],  # responses other than 200 (wrk counts socket errors apart)
        server_errors=status["5xx"],
        socket_errors=status["sockerr"] + status["timeouts"],
        issued=0,  # counted once the server has stopped: see main()
        dup_codes_seen=status["dup_codes_seen"],
        connections=connections,
    )


def percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def run_pgbench(
    pool: Pool,
    args: argparse.Namespace,
    connections: int | None = None,
    *,
    rules: bool = False,
    postgres: int | None = None,
) -> Result:
    """The ceiling at ``connections`` clients (with the rule's statement if ``rules``);
    with ``postgres`` (the postmaster's pid), PostgreSQL's CPU during the run."""
    connections = connections or args.connections
    label = "pgbench ceiling, rules" if rules else "pgbench ceiling"
    issued_before, free = issued_in_ceiling()
    print(f"pgbench: {label}: {free:,} free codes, {connections} clients, {args.duration} s")
    script = OUT / "ceiling.sql"
    script.write_text(CEILING_RULES_SQL if rules else CEILING_SQL)
    with cpu_meter(None, postgres) as spent, BackendMeter() as backends:
        done = pgbench(script, connections, pool, args)
    tps = re.search(r"^tps = ([\d.]+)", done.stdout, re.MULTILINE)
    processed = re.search(r"actually processed: (\d+)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or tps is None or processed is None:
        sys.exit(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    # Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us
    latencies: list[int] = []
    for log in OUT.glob("pgbench_log.*"):
        with log.open() as lines:
            latencies.extend(int(f[2]) for f in map(str.split, lines) if f[2].isdigit())
        log.unlink()
    latencies.sort()
    issued_after, _ = issued_in_ceiling()
    return Result(
        label=label,
        rps=float(tps.group(1)),
        p50_ms=percentile(latencies, 50) / 1000,
        p99_ms=percentile(latencies, 99) / 1000,
        ok=int(processed.group(1)),
        non_ok=int(failed.group(1)) if failed else 0,
        server_errors=0,
        socket_errors=0,
        issued=issued_after - issued_before,
        connections=connections,
        pg_cpu_s=spent.get("postgres", 0.0),
        backends_cpu_s=backends.seconds,
    )


def pgbench(
    script: Path, connections: int, pool: Pool, args: argparse.Namespace
) -> subprocess.CompletedProcess[str]:
    """pgbench running ``script`` from ``connections`` clients, logging each transaction."""
    prefix = OUT / "pgbench_log"
    for old in OUT.glob("pgbench_log.*"):
        old.unlink()
    return subprocess.run(
        [
            PGBENCH,
            "-n",
            "-c",
            str(connections),
            "-j",
            str(min(2, connections)),
            "-T",
            str(args.duration),
            "-f",
            str(script),
            "-D",
            f"batch='{CEILING_BATCH}'",
            "-D",
            f"client='{pool.client_id}'",
            "--log",
            f"--log-prefix={prefix}",
            "-h",
            HOST,
            "-p",
            str(PG_PORT),
            "-U",
            "postgres",
            DB_NAME,
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 120,
        check=False,
    )


# --- report ----------------------------------------------------------------------------------


def print_table(results: list[Result], ceiling: Result) -> None:
    header = (
        f"{'run':<32}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'200/ok':>10}"
        f"{'non-200':>9}{'5xx':>6}{'sock':>6}{'issued':>10}{'x ceiling':>11}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = "" if r is ceiling else f"{r.rps / ceiling.rps:.2f}x"
        print(
            f"{r.label:<32}{r.rps:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.ok:>10}"
            f"{r.non_ok:>9}{r.server_errors:>6}{r.socket_errors:>6}{r.issued:>10}{ratio:>11}"
        )
    print(
        "(pgbench: 200/ok = committed transactions, non-200 = failed ones; "
        "issued = rows issued during the run)"
    )


def print_scoped(runs: list[Result]) -> None:
    """Each batch's scoped run against its unscoped one, run just before (or after) it."""
    print()
    print("scoped key (pools:use:<client>) against the unscoped key, same server, back to back:")
    by_label = {r.label: r for r in runs}
    for label in ("no rules", "rules"):
        plain, scoped = by_label[f"promos, {label}"], by_label[f"promos, {label}, scoped key"]
        print(
            f"  {label:<9} req/s {scoped.rps:,.0f} vs {plain.rps:,.0f} "
            f"({scoped.rps / plain.rps - 1:+.1%}), p99 {scoped.p99_ms:.2f} vs "
            f"{plain.p99_ms:.2f} ms"
        )


def print_targets(rules: Result, ceiling: Result) -> None:
    ratio = rules.rps / ceiling.rps
    want = TARGET_RATIO * ceiling.rps
    print()
    print("targets (issue 2, rules on):")
    print(
        f"  >= {TARGET_RATIO}x ceiling: {rules.rps:.0f} req/s vs {want:.0f} "
        f"({ratio:.2f}x)  {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}"
    )
    print(
        f"  p99 < {TARGET_P99_MS:.0f} ms:      {rules.p99_ms:.2f} ms  "
        f"{'PASS' if rules.p99_ms < TARGET_P99_MS else 'FAIL'}"
    )


def print_sweep(runs: list[Result], ceilings: list[Result]) -> bool:
    """Issue 19's table: each run beside the ceiling at its connection count (rules beside
    the ceiling with the rule's statement). True if every row meets the targets."""
    by = {(c.connections, "rules" in c.label): c for c in ceilings}
    header = (
        f"{'conns':>5} {'run':<9}{'req/s':>8}{'p50':>7}{'p99':>8}{'ceiling':>9}{'p50':>7}"
        f"{'p99':>8}{'ratio':>7}{'srv us':>8}{'pg us':>7}{'db us':>7}{'ceil pg':>8}"
        f"{'ceil db':>8}  targets"
    )
    print()
    print("sweep (ms; CPU in microseconds per issued code: srv = the Promos server's processes,")
    print("pg = every PostgreSQL process, db = the bench database's backends alone; the ceiling")
    print("at the same count, or at the most PostgreSQL's max_connections allows, marked *):")
    print(header)
    print("-" * len(header))
    met = True
    for r in runs:
        rules = r.label.endswith("rules") and "no rules" not in r.label
        ceiling = by.get((r.connections, rules)) or max(
            (c for c in ceilings if ("rules" in c.label) == rules), key=lambda c: c.connections
        )
        mark = "" if ceiling.connections == r.connections else "*"
        ratio = r.rps / ceiling.rps
        fails = []
        if ratio < TARGET_RATIO:
            fails.append(f"<{TARGET_RATIO}x")
        if r.p99_ms > ceiling.p99_ms:
            fails.append("p99")
        if r.connections == 1 and r.p50_ms > ALONE_P50_MS:
            fails.append(f"p50>{ALONE_P50_MS}")
        met = met and not fails
        print(
            f"{r.connections:>5} {'rules' if rules else 'no rules':<9}{r.rps:>8.0f}"
            f"{r.p50_ms:>7.2f}{r.p99_ms:>8.2f}{ceiling.rps:>8.0f}{mark:1}{ceiling.p50_ms:>7.2f}"
            f"{ceiling.p99_ms:>8.2f}{ratio:>6.2f}x{r.cpu_us_per_code(r.server_cpu_s):>8.0f}"
            f"{r.cpu_us_per_code(r.pg_cpu_s):>7.0f}{r.cpu_us_per_code(r.backends_cpu_s):>7.0f}"
            f"{ceiling.cpu_us_per_code(ceiling.pg_cpu_s):>8.0f}"
            f"{ceiling.cpu_us_per_code(ceiling.backends_cpu_s):>8.0f}  "
            f"{'PASS' if not fails else 'FAIL ' + ','.join(fails)}"
        )
    print(
        f"targets (issue 19): req/s >= {TARGET_RATIO}x the ceiling, p99 <= the ceiling's, "
        f"and at 1 connection p50 <= {ALONE_P50_MS} ms"
    )
    return met


def sweep(args: argparse.Namespace, pool: Pool, secret: str, log_path: Path) -> bool:
    """Issue 19's sweep: every connection count, both batches, then the ceilings."""
    postgres = postmaster_pid()
    runs: list[Result] = []
    with promos_server(args.port, args.workers, log_path) as server:
        # Not measured: the server's first seconds (connections opened, statements prepared,
        # the pools' pages read) would otherwise count in the first row's p99.
        for batch in (pool.no_rules, pool.rules):
            run_wrk("warm-up", batch, pool, secret, replace_duration(args, 2), connections=4)
        for connections in args.sweep:
            for label, batch in (("no rules", pool.no_rules), ("rules", pool.rules)):
                before = settled_issued(batch)
                vacuum("codes", "customer_quotas")
                with cpu_meter(server, postgres) as spent, BackendMeter() as backends:
                    result = run_wrk(
                        f"promos, {label}", batch, pool, secret, args, connections=connections
                    )
                runs.append(
                    replace(
                        result,
                        issued=settled_issued(batch) - before,
                        server_cpu_s=spent["server"],
                        pg_cpu_s=spent["postgres"],
                        backends_cpu_s=backends.seconds,
                    )
                )
    # The server's pool is closed now: its connections are free for pgbench.
    room = free_connections()
    ceilings = []
    for connections in dict.fromkeys(min(c, room) for c in args.sweep):
        for rules in (False, True):
            vacuum("bench_ceiling_codes", "bench_ceiling_quotas")
            ceilings.append(run_pgbench(pool, args, connections, rules=rules, postgres=postgres))
    met = print_sweep(runs, ceilings)
    correct = check_results(pool, runs, max(args.sweep))
    problems = server_problems(log_path)
    print(f"\nserver log {log_path}: {len(problems)} error line(s)")
    for line in problems[:10]:
        print(f"  {line}")
    print(f"\nevery row meets the targets: {'yes' if met else 'no'}")
    return correct


def replace_duration(args: argparse.Namespace, seconds: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "duration": seconds})


def check_results(pool: Pool, runs: list[Result], connections: int) -> bool:
    """Correctness in SQL: no code issued twice, the rule held. True if all is well."""
    ok = True
    print()
    print("checks:")

    def report(passed: bool, what: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"  {'PASS' if passed else 'FAIL'}  {what}")

    for r in runs:
        # A code is a row: issuing one twice would overwrite it, leaving fewer issued rows than
        # 200s. A few more rows than 200s are requests still in flight when wrk stopped.
        in_flight = r.issued - r.ok
        report(
            0 <= in_flight <= connections + r.socket_errors and r.dup_codes_seen == 0,
            f"{r.label}: {r.ok} responses 200, {r.issued} rows issued "
            f"({in_flight:+d} in flight at the stop), {r.dup_codes_seen} duplicate codes seen",
        )
    over = fetch(
        "SELECT customer_id, count(*) AS n FROM codes "
        "WHERE batch_id = $1 AND customer_id IS NOT NULL "
        "GROUP BY 1 HAVING count(*) > 1 LIMIT 5",
        pool.rules,
    )
    report(
        not over,
        "rules batch: no customer holds more than 1 code"
        + (f" (e.g. {[(r['customer_id'], r['n']) for r in over]})" if over else ""),
    )
    torn = fetch(
        "SELECT count(*) AS n FROM codes WHERE batch_id = ANY($1::uuid[]) "
        "AND (issued_at IS NULL) <> (customer_id IS NULL)",
        [pool.no_rules, pool.rules],
    )[0]["n"]
    report(torn == 0, f"every issued code has its customer and time ({torn} without)")
    return ok


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=20, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--codes", type=int, default=1_000_000, help="codes per pool")
    parser.add_argument("--workers", type=int, default=1, help="promos serve --workers")
    parser.add_argument("--port", type=int, default=8765, help="promos serve --port")
    parser.add_argument(
        "--reuse", action="store_true", help=f"keep {DB_NAME} as it is (do not re-seed)"
    )
    parser.add_argument(
        "--scoped",
        action="store_true",
        help="drive each batch again with a key scoped to pools:use of its client",
    )
    parser.add_argument(
        "--scoped-first",
        action="store_true",
        help="with --scoped: the scoped key's run of each batch first, the unscoped one second",
    )
    parser.add_argument(
        "--sweep",
        type=_counts,
        metavar="1,4,16,64,256",
        help="issue 19: drive both batches at each connection count, then the ceilings at each",
    )
    parser.add_argument(
        "--citus",
        metavar="URL",
        help="issue 18: the same runs on the single PostgreSQL and on this Citus coordinator",
    )
    args = parser.parse_args()
    for name in ("duration", "connections", "codes", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",")]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("connection counts of 1 or more, e.g. 1,4,16,64,256")
    return counts


def main() -> int:
    args = parse_args()
    for tool in (PROMOS, Path(WRK), Path(PGBENCH), WRK_SCRIPT):
        if not tool.exists():
            sys.exit(f"missing {tool}")
    OUT.mkdir(parents=True, exist_ok=True)
    others = sorted(k for k in os.environ if k.startswith("PROMOS_"))
    load1, _, _ = os.getloadavg()
    print(
        f"load average {load1:.2f} on {os.cpu_count()} CPUs"
        + (f"; also set: {', '.join(others)}" if others else "")
    )

    if args.citus:
        sys.path.insert(0, str(ROOT))
        from bench import on_citus  # noqa: PLC0415 - for --citus only, once the path is set

        return on_citus.compare_issuing(args)
    if args.reuse:
        promos("migrate")
        pool = existing_pool()
        print(f"reusing {DB_NAME} as it is")
    else:
        create_database()
        promos("migrate")
        pool = seed(args.codes)
    secret = create_api_key()
    scoped = create_api_key(f"pools:use:{pool.client_id}") if args.scoped else None
    log_path = OUT / "serve.log"
    if args.sweep:
        return 0 if sweep(args, pool, secret, log_path) else 1
    check_connection_headroom(args.connections)

    runs: list[Result] = []
    with promos_server(args.port, args.workers, log_path):
        for label, batch in (("no rules", pool.no_rules), ("rules", pool.rules)):
            keys = [("", secret)] + ([(", scoped key", scoped)] if scoped else [])
            if args.scoped_first:
                keys.reverse()
            for suffix, key in keys:
                before = settled_issued(batch)
                result = run_wrk(f"promos, {label}{suffix}", batch, pool, key, args)
                # Requests still in flight when wrk stopped are answered, and their codes
                # issued, within moments: count once the rows stop moving.
                runs.append(replace(result, issued=settled_issued(batch) - before))
    ceiling = run_pgbench(pool, args)
    rules = next(r for r in runs if r.label == "promos, rules")

    print_table([*runs, ceiling], ceiling)
    print_targets(rules, ceiling)
    if scoped:
        print_scoped(runs)
    correct = check_results(pool, runs, args.connections)
    problems = server_problems(log_path)
    print(f"\nserver log {log_path}: {len(problems)} error line(s)")
    for line in problems[:10]:
        print(f"  {line}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
