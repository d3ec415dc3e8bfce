"""Benchmark the console's code pool and brand pages on big data: server time per page.

Run by hand (not in CI), from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/console_pools.py [--codes 1000000] [--batches 2000] [-n 50] [--reuse]

1. Creates the database ``promos_bench_console_pools`` (dropping it first), migrates it and
   seeds by SQL: one batch of ``--codes`` codes, 30% of them issued over the last 30 days
   (a customer with a few of them), ``--batches`` small batches more (so that the listing has
   pages), and through the services brand 1 with 1,000 codes, 100 handed out, and 200 brand
   users. ``--reuse`` keeps the database of an earlier run.
2. Serves the app in this process (``create_app``, the same code as ``promos serve``) and
   talks to it over ASGI with httpx, so the time measured is the server's, without a network.
   Signs in as an admin through the sign-in form.
3. Opens every page once (the first read of a batch's counters brings its checkpoint forward:
   printed as the catch-up), then requests each ``-n`` times and prints p50 and p95 per page
   against the 50 ms target. The export (a download, not a page) is timed whole.

``pool_pages`` and ``brand_pages`` list the pages (path and name); ``measure`` times a list.
bench/console_pages.py may import them.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from promos.app import create_app
from promos.auth import service as auth
from promos.brands import service as brands
from promos.codes.counts import NEVER
from promos.db import Database
from promos.migrate import upgrade
from promos.settings import Settings

HOST = "127.0.0.1"
DB_NAME = "promos_bench_console_pools"
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
DATABASE_URL = f"postgresql+asyncpg://postgres@{HOST}:5432/{DB_NAME}"
TARGET_MS = 50.0
CUSTOMER = "customer-bench"
ADMIN, PASSWORD = "bench-admin", "bench password"
_NEXT = re.compile(r'href="([^"]+)" rel="next"')
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Page:
    name: str
    path: str


class ServerTime:
    """The app, timed from the request's arrival to its answer's last byte: the server's
    time, without the test client's (httpx over ASGI parses what it is sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        spent = 0.0

        async def timed(message: Message) -> None:
            nonlocal spent
            handed = time.perf_counter()
            await send(message)
            spent += time.perf_counter() - handed
            ends = message["type"] == "http.response.body" and not message.get("more_body")
            if ends:
                self.last = time.perf_counter() - started - spent

        await self.app(scope, receive, timed)


@dataclass(frozen=True)
class Timing:
    page: Page
    p50_ms: float
    p95_ms: float

    @property
    def ok(self) -> bool:
        return self.p95_ms <= TARGET_MS


# --- the pages ---------------------------------------------------------------------------------


async def last_page(client: httpx.AsyncClient, path: str) -> str:
    """The address of a listing's last page, found by following its "Next page" links."""
    for _ in range(100_000):  # bounded: a listing of 5,000,000 rows at 50 a page
        page = await client.get(path)
        found = _NEXT.search(page.text)
        if found is None:
            return path
        path = found.group(1).replace("&amp;", "&")
    raise RuntimeError(f"{path}: more pages than a benchmark walks")


async def pool_pages(client: httpx.AsyncClient, batch_id: UUID, customer: str) -> list[Page]:
    """Every code pools page: both ends of each listing, the big batch's pages, the forms."""
    return [
        Page("pools: first page", "/admin/pools"),
        Page("pools: last page", await last_page(client, "/admin/pools")),
        Page("pools: new batch form", "/admin/pools/new"),
        Page("pools: batch page (1M codes)", f"/admin/pools/{batch_id}"),
        Page("pools: upload form", f"/admin/pools/{batch_id}/upload"),
        Page("pools: add codes form", f"/admin/pools/{batch_id}/codes"),
        Page("pools: customer form", "/admin/pools/customer"),
        Page("pools: customer's codes", f"/admin/pools/customer?customer_id={customer}"),
    ]


async def brand_pages(client: httpx.AsyncClient) -> list[Page]:
    """Every brands page: both ends of each listing, and the new brand user form."""
    return [
        Page("brands: first page", "/admin/brands"),
        Page("brands: last page", await last_page(client, "/admin/brands")),
        Page("brand users: first page", "/admin/brands/users"),
        Page("brand users: last page", await last_page(client, "/admin/brands/users")),
        Page("brand users: new form", "/admin/brands/users/new"),
    ]


async def measure(
    client: httpx.AsyncClient, server: ServerTime, pages: Sequence[Page], times: int
) -> list[Timing]:
    """Each page requested ``times`` times (after one untimed request): p50 and p95 of the
    server's time."""
    timings = []
    for page in pages:
        response = await client.get(page.path)
        if response.status_code != 200:
            raise RuntimeError(f"{page.path}: {response.status_code}")
        seconds = []
        for _ in range(times):
            response = await client.get(page.path)
            seconds.append(server.last)
            if response.status_code != 200:
                raise RuntimeError(f"{page.path}: {response.status_code}")
        cuts = statistics.quantiles(seconds, n=20, method="inclusive")
        timings.append(Timing(page, statistics.median(seconds) * 1000, cuts[18] * 1000))
    return timings


async def download_ms(client: httpx.AsyncClient, path: str) -> tuple[float, int]:
    """The time of a whole export and its rows (httpx's ASGI transport reads a streamed
    answer to its end before returning it)."""
    started = time.perf_counter()
    response = await client.get(path)
    return (time.perf_counter() - started) * 1000, response.text.count("\n") - 1


async def signed_in(client: httpx.AsyncClient) -> None:
    page = await client.get("/admin/sign-in")
    token = _TOKEN.search(page.text)
    assert token is not None
    answer = await client.post(
        "/admin/sign-in",
        data={"csrf_token": token.group(1), "username": ADMIN, "password": PASSWORD},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"sign-in: {answer.status_code}")


# --- the database ------------------------------------------------------------------------------


async def _recreate() -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {DB_NAME}")
    finally:
        await conn.close()


async def _seed(codes: int, batches: int) -> UUID:
    """The big batch (returned), the small ones, a customer's codes, by SQL."""
    conn = await asyncpg.connect(BENCH_DSN)
    client, big = uuid4(), uuid4()
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO clients (id, created_at) VALUES ($1, now())", client)
            await conn.execute(
                "INSERT INTO batches (id, client_id, name, expired, created_at) "
                "SELECT gen_random_uuid(), $1, 'small ' || g, false, "
                "now() - interval '60 days' + g * interval '1 second' "
                "FROM generate_series(1, $2) AS g",
                client,
                batches,
            )
            await conn.execute(
                "INSERT INTO batches (id, client_id, name, expired, created_at) "
                "VALUES ($1, $2, 'big', false, now() - interval '40 days')",
                big,
                client,
            )
            # 30% issued, spread over the last 30 days; a few to one customer.
            await conn.execute(
                "INSERT INTO codes (client_id, code, batch_id, seq, customer_id, issued_at) "
                "SELECT $1, 'B' || md5(g::text), $2, g, "
                "CASE WHEN g % 10 < 3 THEN "
                "  CASE WHEN g % 100000 = 0 THEN $4 ELSE 'customer-' || g END END, "
                "CASE WHEN g % 10 < 3 THEN now() - (g % 30) * interval '1 day' "
                "  - (g % 3600) * interval '1 second' - interval '1 hour' END "
                "FROM generate_series(1, $3) AS g",
                client,
                big,
                codes,
                CUSTOMER,
            )
            await conn.execute(
                "INSERT INTO pool_counts (batch_id, total, issued, counted_until) "
                "SELECT b.id, CASE WHEN b.id = $1 THEN $2 ELSE 0 END, 0, $3 FROM batches b",
                big,
                codes,
                NEVER,
            )
        await conn.execute("VACUUM ANALYZE codes, batches, pool_counts")
    finally:
        await conn.close()
    return big


async def _seed_by_services(database: Database) -> None:
    now = datetime.now(UTC)
    async with database.begin() as conn:
        await auth.create_user(conn, username=ADMIN, password=PASSWORD, role="admin", now=now)
        batch = await brands.generate_for_brand(conn, brand_id=1, count=1000, now=now)
        for n in range(200):
            await brands.create_brand_user(conn, user_id=f"shop-{n:03}", secret=None, now=now)
    async with database.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE codes SET customer_id = 'shop-' || seq, issued_at = now() "
            f"WHERE batch_id = '{batch.id}' AND seq <= 100"
        )


async def _big_batch() -> UUID:
    conn = await asyncpg.connect(BENCH_DSN)
    try:
        found: UUID = await conn.fetchval("SELECT id FROM batches WHERE name = 'big'")
    finally:
        await conn.close()
    return found


# --- the run -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    if args.reuse:
        big = await _big_batch()
    else:
        await _recreate()
        database = Database(DATABASE_URL)
        await upgrade(database.engine)
        await database.dispose()
        started = time.perf_counter()
        big = await _seed(args.codes, args.batches)
        database = Database(DATABASE_URL)
        await _seed_by_services(database)
        await database.dispose()
        print(
            f"seeded {args.codes:,} codes and {args.batches:,} batches "
            f"in {time.perf_counter() - started:.0f} s"
        )
    app = create_app(Settings(database_url=DATABASE_URL, access_log=False))
    async with app.router.lifespan_context(app):
        server = ServerTime(app)
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
            await signed_in(client)
            first = await client.get(f"/admin/pools/{big}")
            catch_up = server.last * 1000
            pages = [
                *await pool_pages(client, big, CUSTOMER),
                *await brand_pages(client),
            ]
            timings = await measure(client, server, pages, args.n)
            export_ms, rows = await download_ms(client, f"/admin/pools/{big}/codes.csv")
    print(
        f"first view of the big batch (its counters' catch-up, once): {catch_up:.1f} ms "
        f"({first.status_code})"
    )
    print(f"{'page':<34} {'p50 ms':>8} {'p95 ms':>8}  target {TARGET_MS:.0f} ms")
    for timing in timings:
        verdict = "ok" if timing.ok else "SLOW"
        print(f"{timing.page.name:<34} {timing.p50_ms:>8.1f} {timing.p95_ms:>8.1f}  {verdict}")
    print(f"export of the big batch (a download, not a page): {rows:,} rows in {export_ms:,.0f} ms")
    return 0 if all(t.ok for t in timings) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("-n", type=int, default=50, help="timed requests per page")
    parser.add_argument("--reuse", action="store_true", help="keep an earlier run's database")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
