"""Benchmark the Offers player routes: available offers, claims, impressions, under wrk.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1 and wrk:

    .venv/bin/python bench/available_offers.py [--duration 20] [--connections 64]
                                               [--players 1000000] [--workers 2] [--rate 2400]
                                               [--reuse]

1. Creates the database ``promos_bench_offers`` (dropping it first; ``--reuse`` keeps the one an
   earlier run seeded, with that run's claims), migrates it, and seeds by
   SQL (generate_series) the game ``bench`` with 1,000 offers over 5 placements (filters: 40%
   ``eq`` on country, 2% ``neq``, 30% intervals on level, the rest none; 10% not triggered
   now; 5% disabled) and ``--players`` players with claim and impression history (three
   offers each, one counter row per (game, player, offer), and a row per counted claim and
   impression, as the service keeps them).
2. Starts ``promos serve`` and drives with wrk and bench/offers.lua, each for ``--duration``:
   ``GET /available-offers`` (a random player and a random country: in this game, which does
   not allow inefficient queries, the ~40 offers with a filter on country that it matches)
   twice: as fast as the server answers (its capacity; the latency there is mostly queueing
   behind 64 open requests), and paced at about ``--rate`` req/s by bench/offers_paced.lua
   (the latency at that load, which is what issue 4's p99 target is about), then
   ``PUT /offers/claim`` (a new transaction id per request, every 10th a replay), then
   ``PUT /offers/:id/impressions`` (likewise).
3. Prints req/s, p50 and p99 of each next to the targets of issue 4, then checks in SQL that
   every recorded claim and impression was counted exactly once (counters == rows), that every
   answered one was recorded, and that no replay was counted.

``--citus postgresql://postgres@127.0.0.1:9700/postgres`` (issue 18) runs the same four on the
single PostgreSQL, then on a Citus cluster of this machine (deploy/citus/cluster.sh: the
database made on every node, seeded alike, then distributed), checks both, and prints them side
by side with the ratios and CPU per request answered 200 (the cluster's: every node's
PostgreSQL summed); bench/on_citus.py.

Exit status 1 if a correctness check fails; the performance targets are reported, not enforced.
Logs go to bench/out/ (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import asyncpg

HOST = "127.0.0.1"
DB_NAME = "promos_bench_offers"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PROMOS = Path(sys.executable).with_name("promos")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
LUA = ROOT / "bench" / "offers.lua"
PACED_LUA = ROOT / "bench" / "offers_paced.lua"

TARGETS = {  # issue 4: (least req/s, most p99 ms)
    "available": (2000.0, None),  # as many as it can answer: latency is queueing here
    "available-paced": (2000.0, 10.0),
    "claims": (3000.0, None),
    "impressions": (3000.0, None),
}

SEED_SQL = [
    """INSERT INTO games (id, name, metadata, created_at, updated_at)
       VALUES ('bench', 'Bench', '{"cacheMaxAge": 60}', now(), now())""",
    # 1,000 offers: g % 50 < 20 eq country, = 20 neq, 21..35 interval on level, the rest none.
    """INSERT INTO offers (game_id, id, key, version, name, product_id, cost, contents, metadata,
           placement, period_every, period_max, frequency_every, frequency_max, trigger_from,
           trigger_to, enabled, filters, created_at, updated_at)
       SELECT 'bench', gen_random_uuid(), gen_random_uuid(), 1, 'offer ' || g, 'product.' || g,
           NULL, jsonb_build_object('gems', g), jsonb_build_object('rank', g % 7),
           'placement-' || (g % 5),
           CASE WHEN g % 3 = 0 THEN '1h' ELSE '' END, CASE WHEN g % 3 = 0 THEN 0 ELSE 1000000 END,
           '', 1000000,
           CASE WHEN g % 10 = 9 THEN extract(epoch FROM now())::bigint + 86400
                ELSE extract(epoch FROM now())::bigint - 86400 END,
           extract(epoch FROM now())::bigint + 30 * 86400,
           g % 20 <> 7,
           CASE WHEN g % 50 < 20 THEN jsonb_build_object('country', jsonb_build_object('eq',
                    (ARRAY['BR','US','FR','DE','JP','IN','MX','CA','GB','IT','ES','AR','CL',
                           'PT','NL','SE','NO','PL','KR','AU'])[1 + g % 20]))
                WHEN g % 50 = 20 THEN '{"country": {"neq": "US"}}'::jsonb
                WHEN g % 50 <= 35 THEN jsonb_build_object('level',
                    jsonb_build_object('geq', g % 40, 'lt', g % 40 + 15))
                ELSE '{}'::jsonb END,
           now() + g * interval '1 microsecond', now()
       FROM generate_series(1, 1000) AS g""",
    """CREATE TEMP TABLE bench_offer_ids AS
       SELECT row_number() OVER (ORDER BY id) AS n, id FROM offers WHERE game_id = 'bench'""",
    # Three offers per player, some claimed, all seen.
    """INSERT INTO offer_players (game_id, player_id, offer_id, claim_count, last_claim_at,
           impression_count, last_impression_at)
       SELECT 'bench', 'p' || p, o.id, (p + k) % 3, now() - interval '2 hours', 1 + (p % 5),
              now() - interval '10 minutes'
       FROM generate_series(1, $1) AS p, generate_series(0, 2) AS k
       JOIN bench_offer_ids AS o ON TRUE
       WHERE o.n = 1 + (p * 7 + k * 331) % 1000""",
    # Each counted claim and impression has its row, as the service writes them: the tables
    # hold the history the counters say (and the planner sees their real size).
    """INSERT INTO offer_claims (game_id, transaction_id, player_id, offer_id, offer_version,
           purchased_at, claimed_at, contents, next_at)
       SELECT game_id, 'seed-' || player_id || '-' || offer_id || '-' || c, player_id,
              offer_id, 1, 1700000000, last_claim_at, '{}'::jsonb, NULL
       FROM offer_players, generate_series(1, claim_count) AS c""",
    """INSERT INTO offer_impressions (game_id, impression_id, player_id, offer_id, seen_at,
           next_at)
       SELECT game_id, gen_random_uuid(), player_id, offer_id, last_impression_at, NULL
       FROM offer_players, generate_series(1, impression_count) AS i""",
]


def run_sql(*statements: str, args: tuple[object, ...] = ()) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(BENCH_DSN, timeout=10)
        try:
            rows: list[asyncpg.Record] = []
            for statement in statements:
                takes = "$1" in statement
                rows = await conn.fetch(statement, *(args if takes else ()))
            return rows
        finally:
            await conn.close()

    return asyncio.run(go())


def create_database() -> None:
    async def go() -> None:
        conn = await asyncpg.connect(SERVER_DSN, timeout=10)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            await conn.close()

    asyncio.run(go())


def env() -> dict[str, str]:
    return {**os.environ, "PROMOS_DATABASE_URL": BENCH_DSN, "PROMOS_LOG_LEVEL": "warning"}


def seed(players: int) -> None:
    started = time.monotonic()
    subprocess.run([str(PROMOS), "migrate"], env=env(), check=True, capture_output=True)
    run_sql(*SEED_SQL, args=(players,))
    run_sql("VACUUM ANALYZE")
    print(f"seeded 1,000 offers and {players:,} players in {time.monotonic() - started:.1f} s")
    ids = run_sql("SELECT id FROM offers WHERE game_id = 'bench' ORDER BY id")
    (OUT / "offer_ids.txt").write_text("".join(f"{r['id']}\n" for r in ids))


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
def server(port: int, workers: int) -> Iterator[tuple[Path, int]]:
    with socket.socket() as sock:
        if sock.connect_ex((HOST, port)) == 0:
            sys.exit(f"port {port} is in use: refusing to benchmark that server")
    log_path = OUT / "offers_serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(PROMOS), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)],
            env=env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not healthy(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"promos serve did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield log_path, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def wrk(mode: str, args: argparse.Namespace, run: str) -> dict[str, float]:
    paced = mode.endswith("-paced")
    # Each connection waits 0..2x this between requests: on average connections / rate.
    pace = [str(round(args.connections * 1000 / args.rate))] if paced else []
    done = subprocess.run(
        [
            WRK,
            "-t2",
            f"-c{args.connections}",
            f"-d{args.duration}s",
            "--latency",
            "-s",
            str(PACED_LUA if paced else LUA),
            f"http://{HOST}:{args.port}",
            "--",
            mode.removesuffix("-paced"),
            run,
            str(args.players),
            str(OUT / "offer_ids.txt"),
            *pace,
        ],
        capture_output=True,
        text=True,
        timeout=args.duration + 60,
        check=False,
    )
    found = re.search(r"^JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, float] = json.loads(found.group(1))
    return result


def totals() -> tuple[int, int, int, int]:
    [row] = run_sql(
        "SELECT (SELECT sum(claim_count) FROM offer_players) AS claims,"
        " (SELECT sum(impression_count) FROM offer_players) AS seen,"
        " (SELECT count(*) FROM offer_claims) AS claim_rows,"
        " (SELECT count(*) FROM offer_impressions) AS seen_rows"
    )
    return int(row["claims"]), int(row["seen"]), int(row["claim_rows"]), int(row["seen_rows"])


def report(mode: str, result: dict[str, float]) -> None:
    least, most = TARGETS[mode]
    p99 = f"p99 {result['p99_ms']:.2f} ms" + (f" (target <= {most:.0f})" if most else "")
    print(
        f"{mode:15} {result['rps']:8,.0f} req/s (target >= {least:,.0f})  "
        f"p50 {result['p50_ms']:.2f} ms  {p99}  "
        f"200={result['s200']:.0f} 409={result['s409']:.0f} 4xx={result['s4xx']:.0f} "
        f"5xx={result['s5xx']:.0f} socket errors={result['sockerr']:.0f}"
    )


def server_problems(log_path: Path) -> list[str]:
    return [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if re.search(r"ERROR|Traceback", line)
    ]


def check(
    results: dict[str, dict[str, float]],
    before: tuple[int, int, int, int],
    problems: list[str],
    args: argparse.Namespace,
) -> bool:
    """The counts in SQL against what wrk saw; prints each check, True if all hold."""
    after = totals()
    claims, seen, claim_rows, seen_rows = (a - b for a, b in zip(after, before, strict=True))
    claimed, impressions = results["claims"], results["impressions"]
    checks = {
        "each recorded claim counted once (counter == rows)": claims == claim_rows,
        "each answered claim recorded (rows >= 200s)": claim_rows >= claimed["s200"],
        "no more claims recorded than sent fresh": claim_rows
        <= claimed["n"] - claimed["replays"] + args.connections,
        "each recorded impression counted once (counter == rows)": seen == seen_rows,
        "no replayed impression recorded": seen_rows
        <= impressions["n"] - impressions["replays"] + args.connections,
        "each answered fresh impression recorded": seen_rows
        >= impressions["s200"] - impressions["replays"],
        "no server errors": not problems and all(results[m]["s5xx"] == 0 for m in results),
    }
    print(
        f"claims: +{claims:,} counted, +{claim_rows:,} rows; impressions: +{seen:,}, +{seen_rows:,}"
    )
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    for line in problems[:10]:
        print(f"server: {line}")
    return all(checks.values())


MODES = ("available", "available-paced", "claims", "impressions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument(
        "--rate",
        type=float,
        default=2400,
        help="req/s the paced available-offers run aims at (it lands a little under)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the database an earlier run seeded (quicker; it holds that run's claims too)",
    )
    parser.add_argument(
        "--citus",
        metavar="URL",
        help="issue 18: the same runs on the single PostgreSQL and on this Citus coordinator",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.citus:
        sys.path.insert(0, str(ROOT))
        from bench import on_citus  # noqa: PLC0415 - for --citus only, once the path is set

        sys.exit(on_citus.compare_offers(args))
    if not (args.reuse and (OUT / "offer_ids.txt").exists()):
        create_database()
        seed(args.players)
    run = f"{int(time.time()) % 0xFFFFFFFF:08x}"[:8]
    before = totals()
    results = {}
    with server(args.port, args.workers) as (log_path, _):
        for mode in MODES:
            results[mode] = wrk(mode, args, run)
            report(mode, results[mode])
    sys.exit(0 if check(results, before, server_problems(log_path), args) else 1)


if __name__ == "__main__":
    main()
