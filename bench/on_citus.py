"""The benchmarks' ``--citus URL``: the same workload on a Citus cluster and on the single
PostgreSQL, in one run, side by side (docs/deployment.md, "Growing past one database").

Helpers shared by bench/issue_codes.py and bench/available_offers.py: a bench database made
on every node of the cluster (the extension in each, the workers registered), the
PostgreSQL processes of every node (their CPU is summed), and the comparison table.
The cluster runs on this machine (deploy/citus/cluster.sh): its data folders are read for
each node's postmaster pid.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench import available_offers, issue_codes
from bench.issue_codes import tree_cpu_seconds


def _with(url: str, *, port: int | None = None, database: str | None = None) -> str:
    """``url`` (postgresql://...) on another port or database."""
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    netloc = parts.netloc
    if port is not None:
        netloc = f"{netloc.rsplit(':', 1)[0] if parts.port else netloc}:{port}"
    path = f"/{database}" if database is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


async def _workers(admin: str) -> list[int]:
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeport"
        )
    finally:
        await conn.close()
    if not rows:
        raise SystemExit(f"{admin}: no Citus workers registered (deploy/citus/cluster.sh up)")
    return [int(row["nodeport"]) for row in rows]


def create_database(url: str, name: str) -> str:
    """The database ``name`` (dropped first) on the coordinator at ``url`` and every worker
    it lists, Citus ready, no tables; its URL on the coordinator."""

    async def go() -> None:
        coordinator = urlsplit(url).port or 5432
        workers = await _workers(_with(url, database="postgres"))
        for port in (coordinator, *workers):
            conn = await asyncpg.connect(_with(url, port=port, database="postgres"), timeout=10)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()
            conn = await asyncpg.connect(_with(url, port=port, database=name), timeout=10)
            try:
                await conn.execute("CREATE EXTENSION citus")
            finally:
                await conn.close()
        conn = await asyncpg.connect(_with(url, database=name), timeout=10)
        try:
            host = urlsplit(url).hostname or "127.0.0.1"
            await conn.execute("SELECT citus_set_coordinator_host($1, $2)", host, coordinator)
            for port in workers:
                await conn.execute("SELECT citus_add_node($1, $2)", host, port)
        finally:
            await conn.close()

    asyncio.run(go())
    print(f"created database {name} on the Citus cluster at {urlsplit(url).netloc}")
    return _with(url, database=name)


def postmasters(url: str, *, citus: bool) -> list[int]:
    """The postmaster pids of the server at ``url`` and, if it is a Citus coordinator, of
    every worker (nodes of this machine)."""

    async def go() -> list[int]:
        coordinator = urlsplit(url).port or 5432
        pids = []
        for port in (coordinator, *(await _workers(url) if citus else [])):
            conn = await asyncpg.connect(_with(url, port=port), timeout=10)
            try:
                data = await conn.fetchval("SELECT current_setting('data_directory')")
            finally:
                await conn.close()
            pids.append(int((Path(data) / "postmaster.pid").read_text().split()[0]))
        return pids

    return asyncio.run(go())


def cpu_seconds(roots: list[int]) -> float:
    """CPU of several process trees (a cluster's nodes), summed."""
    return sum(tree_cpu_seconds(pid) for pid in roots)


@dataclass(frozen=True)
class Leg:
    """One run of a workload on one database: what was done, and the CPU it took."""

    run: str
    rps: float
    p99_ms: float
    done: int  # codes issued, or requests answered 200
    server_cpu_s: float
    pg_cpu_s: float
    coordinator_cpu_s: float  # of pg_cpu_s, the coordinator's (the server's own, single)

    def us_per(self, seconds: float) -> float:
        return seconds / self.done * 1e6 if self.done else float("nan")


def _ratio(many: float, one: float) -> float:
    return many / one if one else float("nan")


def print_comparison(single: list[Leg], cluster: list[Leg], *, unit: str) -> None:
    """Each run on the single PostgreSQL beside the same on the cluster, and the ratios;
    CPU in microseconds per ``unit`` (the cluster's PostgreSQL: all its nodes summed)."""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print()
    print(f"single PostgreSQL vs Citus (coordinator + workers), same machine; load {load}")
    print(f"CPU in microseconds per {unit}: the Promos server's, PostgreSQL's (every node)")
    header = (
        f"{'run':<22}{'pg req/s':>9}{'citus':>8}{'ratio':>7}{'p99 ms':>8}{'citus':>8}"
        f"{'srv us':>8}{'citus':>7}{'pg us':>7}{'citus':>7}{'total us':>9}{'citus':>7}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for one, many in zip(single, cluster, strict=True):
        total_one = one.us_per(one.server_cpu_s + one.pg_cpu_s)
        total_many = many.us_per(many.server_cpu_s + many.pg_cpu_s)
        print(
            f"{one.run:<22}{one.rps:>9.0f}{many.rps:>8.0f}{_ratio(many.rps, one.rps):>6.2f}x"
            f"{one.p99_ms:>8.2f}{many.p99_ms:>8.2f}"
            f"{one.us_per(one.server_cpu_s):>8.0f}{many.us_per(many.server_cpu_s):>7.0f}"
            f"{one.us_per(one.pg_cpu_s):>7.0f}{many.us_per(many.pg_cpu_s):>7.0f}"
            f"{total_one:>9.0f}{total_many:>7.0f}{_ratio(total_many, total_one):>6.2f}x"
        )
    print("(ratio: Citus / single PostgreSQL; issue 18's target: total CPU per code <= 1.5x)")
    shares = ", ".join(
        f"{many.run} {many.coordinator_cpu_s / many.pg_cpu_s:.0%}"
        for many in cluster
        if many.pg_cpu_s
    )
    print(f"the coordinator's share of the cluster's PostgreSQL CPU: {shares}")


def fresh_database(bench: ModuleType, where: str, citus_url: str) -> None:
    """The bench script's database made anew on the single PostgreSQL, or on the cluster
    (``citus``): the script's helpers, which read its ``BENCH_DSN``, then use that one."""
    if where == "citus":
        dsn = create_database(citus_url, bench.DB_NAME)
        setattr(bench, "BENCH_DSN", dsn)  # noqa: B010 - the script, given as a value
    else:
        bench.create_database()


# --- bench/issue_codes.py --citus ----------------------------------------------------------


def compare_issuing(args: argparse.Namespace) -> int:
    """Both batches driven as bench/issue_codes.py drives them, on the single PostgreSQL and
    then on the cluster at ``args.citus`` (seeded alike, then distributed); 1 if a check fails."""
    legs: dict[str, list[Leg]] = {}
    correct = True
    for where in ("postgresql", "citus"):
        fresh_database(issue_codes, where, args.citus)
        issue_codes.promos("migrate")
        pool = issue_codes.seed(args.codes)
        if where == "citus":
            print(issue_codes.promos("citus", "distribute").strip())
        roots = postmasters(issue_codes.BENCH_DSN, citus=where == "citus")
        secret = issue_codes.create_api_key()
        runs = []
        coordinator: list[float] = []
        log_path = issue_codes.OUT / f"serve-{where}.log"
        with issue_codes.promos_server(args.port, args.workers, log_path) as server:
            for label, batch in (("no rules", pool.no_rules), ("rules", pool.rules)):
                before = issue_codes.settled_issued(batch)
                started = tree_cpu_seconds(server), cpu_seconds(roots), cpu_seconds(roots[:1])
                result = issue_codes.run_wrk(f"{where}, {label}", batch, pool, secret, args)
                runs.append(
                    replace(
                        result,
                        server_cpu_s=tree_cpu_seconds(server) - started[0],
                        pg_cpu_s=cpu_seconds(roots) - started[1],
                        issued=issue_codes.settled_issued(batch) - before,
                    )
                )
                coordinator.append(cpu_seconds(roots[:1]) - started[2])
        correct = issue_codes.check_results(pool, runs, args.connections) and correct
        problems = issue_codes.server_problems(log_path)
        print(f"server log {log_path}: {len(problems)} error line(s)")
        for line in problems[:10]:
            print(f"  {line}")
        legs[where] = [
            Leg(
                r.label.split(", ", 1)[1],
                r.rps,
                r.p99_ms,
                r.issued,
                r.server_cpu_s,
                r.pg_cpu_s,
                mine,
            )
            for r, mine in zip(runs, coordinator, strict=True)
        ]
    print_comparison(legs["postgresql"], legs["citus"], unit="issued code")
    return 0 if correct else 1


# --- bench/available_offers.py --citus -------------------------------------------------------


def compare_offers(args: argparse.Namespace) -> int:
    """The four runs of bench/available_offers.py on the single PostgreSQL, then on the
    cluster at ``args.citus`` (seeded alike, then distributed); 1 if a check fails."""
    legs: dict[str, list[Leg]] = {}
    correct = True
    for where in ("postgresql", "citus"):
        fresh_database(available_offers, where, args.citus)
        available_offers.seed(args.players)
        if where == "citus":
            distributed = subprocess.run(
                [str(available_offers.PROMOS), "citus", "distribute"],
                env=available_offers.env(),
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            print(distributed.stdout.strip())
        roots = postmasters(available_offers.BENCH_DSN, citus=where == "citus")
        run = f"{int(time.time()) % 0xFFFFFFFF:08x}"[:8]
        before = available_offers.totals()
        results: dict[str, dict[str, float]] = {}
        legs[where] = []
        with available_offers.server(args.port, args.workers) as (log_path, pid):
            for mode in available_offers.MODES:
                started = tree_cpu_seconds(pid), cpu_seconds(roots), cpu_seconds(roots[:1])
                results[mode] = available_offers.wrk(mode, args, run)
                print(f"{where}: ", end="")
                available_offers.report(mode, results[mode])
                legs[where].append(
                    Leg(
                        mode,
                        results[mode]["rps"],
                        results[mode]["p99_ms"],
                        int(results[mode]["s200"]),
                        tree_cpu_seconds(pid) - started[0],
                        cpu_seconds(roots) - started[1],
                        cpu_seconds(roots[:1]) - started[2],
                    )
                )
        problems = available_offers.server_problems(log_path)
        correct = available_offers.check(results, before, problems, args) and correct
    print_comparison(legs["postgresql"], legs["citus"], unit="request answered 200")
    return 0 if correct else 1
