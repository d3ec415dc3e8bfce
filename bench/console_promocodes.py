"""Benchmark the console's promo code, specials and upgrade program pages on 1,000,000 codes.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/console_promocodes.py [--codes 1000000] [--rounds 50] [--port 8094]
                                                 [--reuse] [--no-generation]

1. Creates the database ``promos_bench_console`` (dropping it first), migrates it with
   ``promos migrate`` and seeds it by SQL (generate_series, in seconds): ``--codes`` promo
   codes in 1,000 generations (one large one, 999 of 100 codes; every 10th bound to a
   customer, every 7th for a product, every 5th expired), every 20th code used up, a code
   with 200 redemptions, 200 specials and 200 upgrade programs. ``--reuse`` keeps the
   database of an earlier run.
2. Starts ``promos serve`` (one process) on ``--port``, makes a user and signs in through the
   console's form, as a browser does.
3. Requests every page of ``pages()`` (first and last page of each listing and filter, each
   detail page, the forms) ``--rounds`` times over one keep-alive connection, and prints
   p50/p95 per page against the 50 ms target. The time is the client's (request sent to
   response read, on 127.0.0.1), so it is an upper bound of the server's.
4. Unless ``--no-generation``: generates 1,000,000 codes through the console's form and,
   until the job ends, requests a page and the job's progress over and over: how long the
   generation took, and how slow pages were while it ran (the server must keep answering).

``pages()`` returns the list, so that a later bench/console_pages.py can reuse it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from promos.http.pagination import encode_cursor  # noqa: E402 - after the path is set

HOST = "127.0.0.1"
DB_NAME = "promos_bench_console"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
PROMOS = Path(sys.executable).with_name("promos")
TARGET_MS = 50.0
PAGE_SIZE = 50  # promos.console.paging.PAGE_SIZE
USER, PASSWORD = "bench", "bench password"
GENERATIONS = 1000
SMALL = 100
SERVER_START_SECONDS = 60.0
GENERATION_SECONDS = 600.0


@dataclass(frozen=True)
class Page:
    name: str
    path: str


# --- seeding -----------------------------------------------------------------------------------


async def _recreate() -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        await conn.close()


async def seed(codes: int, dsn: str = BENCH_DSN) -> None:
    """The promo codes, specials, upgrade programs and a generation job, by SQL, in the
    migrated database at ``dsn`` (bench/console_pages.py seeds its own with it)."""
    large = codes - (GENERATIONS - 1) * SMALL
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO promocode_generations (id, pattern, charset, prefix, postfix, count, "
                "discount_percentage, usage_count, expires_in, usage_by, created_at) "
                "SELECT g, '############', '23456789ABCDEFGHJKMNPQRSTUVWXYZ', '', '', "
                "CASE WHEN g = 1 THEN $1::int ELSE $2::int END, 20, 3, "
                "CASE WHEN g % 5 = 0 THEN DATE '2020-01-01' ELSE DATE '2099-12-31' END, "
                "CASE WHEN g % 10 = 0 THEN 'user' || g || '@example.com' END, now() "
                "FROM generate_series(1, $3::int) AS g",
                large,
                SMALL,
                GENERATIONS,
            )
            await conn.execute("SELECT setval('promocode_generations_id_seq', $1)", GENERATIONS)
            await conn.execute(
                "INSERT INTO promocode_products (generation_id, sku) "
                "SELECT g, 'SKU-' || (g % 50) FROM generate_series(7, $1, 7) AS g",
                GENERATIONS,
            )
            # Codes of the small generations first, then the large one: 12 characters of
            # md5 in upper case, spread over the whole order like drawn codes are.
            await conn.execute(
                "INSERT INTO promocodes (code, generation_id, usage_count) "
                "SELECT upper(substr(md5(n::text), 1, 12)), "
                "CASE WHEN n <= $2::int THEN 2 + (n - 1) / $3::int ELSE 1 END, "
                "CASE WHEN n % 20 = 0 THEN 0 ELSE 3 END "
                "FROM generate_series(1, $1) AS n",
                codes,
                (GENERATIONS - 1) * SMALL,
                SMALL,
            )
            busy = await conn.fetchval("SELECT id FROM promocodes ORDER BY id LIMIT 1")
            await conn.execute(
                "INSERT INTO promocode_redemptions (promocode_id, customer, redeemed_at) "
                "SELECT $1, 'customer' || n || '@example.com', now() "
                "FROM generate_series(1, 200) AS n",
                busy,
            )
            await conn.execute(
                "INSERT INTO specials (sku, title, description, discount_percentage, "
                "created_at, updated_at) "
                "SELECT 'SKU-' || n, 'Special ' || n, '', 10, now(), now() "
                "FROM generate_series(1, 200) AS n"
            )
            await conn.execute(
                "INSERT INTO upgrade_programs (from_sku, to_sku, title, description, "
                "discount_amount, created_at, updated_at) "
                "SELECT 'SKU-' || n, 'SKU-PRO-' || n, 'Upgrade ' || n, '', 5, now(), now() "
                "FROM generate_series(1, 200) AS n"
            )
            await conn.execute(
                "INSERT INTO promocode_generation_jobs (status, summary, count, done, "
                "generation_id, created_by, created_at, updated_at) "
                "VALUES ('done', '100 codes ############', 100, 100, 2, 'user:1 (bench)', "
                "now(), now())"
            )
        await conn.execute(
            "VACUUM ANALYZE promocodes, promocode_generations, promocode_products, "
            "promocode_redemptions, specials, upgrade_programs"
        )
    finally:
        await conn.close()


# --- the pages ---------------------------------------------------------------------------------

# A listing's filter: its query string, and the same filter in SQL (to find its last page).
_FILTERS: dict[str, tuple[str, str]] = {
    "all": ("", "true"),
    "prefix": ("prefix=AB", "p.code COLLATE \"C\" LIKE 'AB%'"),
    "bound user": ("usage_by=user500@example.com", "g.usage_by = 'user500@example.com'"),
    "product": (
        "product=SKU-7",
        (
            "EXISTS (SELECT FROM promocode_products s WHERE s.generation_id = g.id "
            "AND s.sku = 'SKU-7')"
        ),
    ),
    "expired": ("expired=true", "g.expires_in < current_date"),
    "used up": ("used_up=true", "p.usage_count = 0"),
    "prefix + used up": (
        "prefix=A&used_up=true",
        "p.code COLLATE \"C\" LIKE 'A%' AND p.usage_count = 0",
    ),
}


async def _last_key(conn: asyncpg.Connection, where: str) -> str | None:
    """The code after which a listing's last page starts (None: it has one page)."""
    code: str | None = await conn.fetchval(
        "SELECT p.code FROM promocodes p JOIN promocode_generations g ON g.id = p.generation_id "
        f'WHERE {where} ORDER BY p.code COLLATE "C" DESC OFFSET {PAGE_SIZE} LIMIT 1'
    )
    return code


async def _last_id_key(conn: asyncpg.Connection, query: str, *args: object) -> int | None:
    found: int | None = await conn.fetchval(query, *args)
    return found


async def pages(dsn: str = BENCH_DSN) -> list[Page]:
    """Every promo code, specials and upgrade program page: first and last page of each
    listing (and of each filter), each detail page, the forms."""
    conn = await asyncpg.connect(dsn)
    try:
        found: list[Page] = []
        for name, (query, where) in _FILTERS.items():
            base = f"/admin/promocodes?{query}" if query else "/admin/promocodes"
            found.append(Page(f"promo codes: {name}, first page", base))
            last = await _last_key(conn, where)
            if last is not None:
                joiner = "&" if query else "?"
                found.append(
                    Page(
                        f"promo codes: {name}, last page",
                        f"{base}{joiner}after={encode_cursor((last,))}",
                    )
                )
        busy = await conn.fetchrow("SELECT p.id, p.code FROM promocodes p ORDER BY p.id LIMIT 1")
        code = busy["code"]
        found.append(Page("promo code: its page", f"/admin/promocodes/codes/{code}"))
        last_redemption = await _last_id_key(
            conn,
            "SELECT id FROM promocode_redemptions WHERE promocode_id = $1 "
            f"ORDER BY id OFFSET {PAGE_SIZE} LIMIT 1",
            busy["id"],
        )
        if last_redemption is not None:
            found.append(
                Page(
                    "promo code: its redemptions, last page",
                    f"/admin/promocodes/codes/{code}?after={encode_cursor((last_redemption,))}",
                )
            )
        job = await conn.fetchval("SELECT max(id) FROM promocode_generation_jobs")
        found += [
            Page("generate: the form", "/admin/promocodes/new"),
            Page(
                "generate: live preview",
                "/admin/promocodes/preview?pattern=SUMMER-%23%23%23%23%23%23&count=1000000",
            ),
            Page("generate: a job's page", f"/admin/promocodes/jobs/{job}"),
            Page("generate: a job's progress", f"/admin/promocodes/jobs/{job}/progress"),
        ]
        for table, path, title in (
            ("specials", "specials", "specials"),
            ("upgrade_programs", "upgrade-programs", "upgrade programs"),
        ):
            found.append(Page(f"{title}: first page", f"/admin/{path}"))
            last = await _last_id_key(
                conn,
                f"SELECT id FROM {table} ORDER BY id DESC OFFSET {PAGE_SIZE} LIMIT 1",
            )
            if last is not None:
                found.append(
                    Page(f"{title}: last page", f"/admin/{path}?after={encode_cursor((last,))}")
                )
            one = await conn.fetchval(f"SELECT max(id) FROM {table}")
            found.append(Page(f"{title}: edit page", f"/admin/{path}/{one}"))
            found.append(Page(f"{title}: new", f"/admin/{path}/new"))
        return found
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
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}/healthcheck", timeout=2).status_code == 200:
                    break
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


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client: httpx.Client) -> str:
    """Sign in through the console's form; the session's CSRF token."""
    page = client.get("/admin/sign-in")
    token = _TOKEN.search(page.text)
    assert token is not None
    done = client.post(
        "/admin/sign-in",
        data={"csrf_token": token.group(1), "username": USER, "password": PASSWORD},
    )
    if done.status_code != 303:
        sys.exit(f"sign-in failed: {done.status_code}")
    token = _TOKEN.search(client.get("/admin").text)
    assert token is not None
    return token.group(1)


# --- measuring ---------------------------------------------------------------------------------


def _ms(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def measure(client: httpx.Client, found: list[Page], rounds: int) -> bool:
    """Request each page ``rounds`` times; print p50/p95; whether all are within target."""
    width = max(len(p.name) for p in found)
    print(f"{'page':<{width}}  {'p50 ms':>7}  {'p95 ms':>7}  {'max ms':>7}  target")
    ok = True
    for page in found:
        client.get(page.path)  # warm: the statement's plan, the pages in the cache
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.get(page.path)
            samples.append(time.perf_counter() - started)
            if response.status_code != 200:
                sys.exit(f"{page.path}: {response.status_code}\n{response.text[:500]}")
        p95 = _ms(samples, 0.95)
        within = p95 <= TARGET_MS
        ok &= within
        print(
            f"{page.name:<{width}}  {_ms(samples, 0.5):7.1f}  {p95:7.1f}  "
            f"{max(samples) * 1000:7.1f}  {'ok' if within else 'SLOW'}"
        )
    return ok


def generate_million(client: httpx.Client, token: str) -> None:
    """Generate 1,000,000 codes through the form; meanwhile, time pages and progress."""
    form = {
        "csrf_token": token,
        "pattern": "BENCH-##########",
        "count": "1000000",
        "discount_percentage": "10",
        "usage_count": "1",
        "action": "generate",
    }
    started = time.perf_counter()
    response = client.post("/admin/promocodes/new", data=form)
    if response.status_code != 303:
        sys.exit(f"generation refused: {response.status_code}\n{response.text[:800]}")
    job = response.headers["location"]
    answered = time.perf_counter() - started
    during: list[float] = []
    seen: list[int] = []
    deadline = time.monotonic() + GENERATION_SECONDS
    status = "running"
    while status == "running" and time.monotonic() < deadline:
        moment = time.perf_counter()
        client.get("/admin/promocodes")
        during.append(time.perf_counter() - moment)
        progress = client.get(f"{job}/progress").json()
        status = progress["status"]
        seen.append(progress["done"])
    took = time.perf_counter() - started
    print(
        f"\n1,000,000 codes generated in the background: {status} after {took:.1f} s "
        f"(the form answered in {answered * 1000:.0f} ms); progress seen: "
        f"{len(set(seen))} distinct values"
    )
    if during:
        print(
            f"the list page while it ran ({len(during)} requests): "
            f"p50 {_ms(during, 0.5):.1f} ms, p95 {_ms(during, 0.95):.1f} ms, "
            f"p99 {_ms(during, 0.99):.1f} ms, "
            f"max {max(during) * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--port", type=int, default=8094)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--no-generation", action="store_true")
    args = parser.parse_args()
    if not args.reuse:
        started = time.perf_counter()
        asyncio.run(_recreate())
        promos("migrate")
        asyncio.run(seed(args.codes))
        promos("users", "create", "--username", USER, "--password", PASSWORD, "--role", "sales")
        print(f"seeded {args.codes:,} promo codes in {time.perf_counter() - started:.1f} s")
    found = asyncio.run(pages())
    with server(args.port), httpx.Client(base_url=f"http://{HOST}:{args.port}") as client:
        token = sign_in(client)
        ok = measure(client, found, args.rounds)
        if not args.no_generation:
            generate_million(client, token)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
