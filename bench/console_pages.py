"""Benchmark the console's pages on big data: server time per page, p50 and p95, against 50 ms.

Run by hand (not in CI), from the repository root:

    .venv/bin/python bench/console_pages.py [--requests 50] [--reuse] [--keep] [--held]

1. Creates the PostgreSQL database ``promos_bench_console_pages`` (dropping it first), migrates it,
   and seeds it by SQL (generate_series): one batch of 1,000,000 codes (300,000 issued over
   the last 90 days), five small batches running low and 2,000 of 10 codes (one in ten not
   expired), with their counters as the app keeps them; 60 brands and 200 brand users
   (through the services); 1,000,000 promo codes, 200 specials, 200 upgrade programs and a
   generation job as bench/console_promocodes.py seeds them, with 300,000 redemptions over
   90 days (one in twenty rolled back); 1,000,000 players of one game, each with a claim and
   an impression over 90 days; 100,000 referrals (40,000 paid, 20,000 rewarded) with their
   ledger, 100,000 e-mail invitations (half verified); 2,000 webhook deliveries with failed
   attempts, and 100,000 delivered over 29 days (one in fifty a billing callback) to one
   subscription; 10,000 users, 10,000 API keys, 200,000 audit entries.
   Then VACUUM ANALYZE, as autovacuum would in time. ``--reuse`` keeps a database seeded
   before (``--keep`` keeps it at the end: it is dropped otherwise).
2. Starts ``promos serve`` on 127.0.0.1 with the dashboard's figures read at every view
   (``PROMOS_CONSOLE_DASHBOARD_SECONDS=0``: the worst case; ``--held`` keeps the default).
3. Signs in as an admin and requests each page ``--requests`` times in turn (one connection,
   kept alive), after one first request each (timed apart: it compiles templates and, for the
   dashboard, counts the 29 days that are over, which a process does again once an hour);
   prints p50/p95 per page, whether each is within the target, and how many pages are. The
   time is the client's, from request to the last byte, so it holds the server's time and
   the loopback's (a fraction of a millisecond).

Other page lists plug in: a module ``bench/console_<area>.py`` with a function
``pages(dsn)`` (plain or async) returning (name, path) pairs or objects with ``name`` and
``path``, found in the seeded database at ``dsn``, is imported if present (``PLUGINS``).
Exit status 1 if a page does not answer 200; the target is reported, not enforced. The
server's log goes to bench/out/ (ignored by git).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import console_promocodes  # noqa: E402 - after the path is set
from promos.brands import service as brands  # noqa: E402
from promos.db import Database  # noqa: E402
from promos.http.pagination import encode_cursor  # noqa: E402
from promos.offers import service  # noqa: E402
from promos.offers.tables import offer_versions, offers  # noqa: E402

HOST = "127.0.0.1"
# Another name lets two runs on one server keep apart.
DB_NAME = os.environ.get("BENCH_CONSOLE_DB", "promos_bench_console_pages")
SERVER_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
BENCH_DSN = f"postgresql://postgres@{HOST}:5432/{DB_NAME}"
OUT = ROOT / "bench" / "out"
PROMOS = Path(sys.executable).with_name("promos")
ADMIN, PASSWORD = "bench", "bench password"
TARGET_MS = 50.0
PAGE_SIZE = 50  # promos.console.paging.PAGE_SIZE
PLUGINS = (
    "console_pools",
    "console_promocodes",
    "console_offers",
    "console_referrals",
    "console_webhooks",
)
SERVER_START_SECONDS = 60.0
SMALL_BATCHES = 2000

Pages = list[tuple[str, str]]

# Every statement runs in one transaction; ``{n}`` is the size of the big tables.
SEED = """
INSERT INTO clients (id, name, created_at)
    VALUES ('00000000-0000-4000-8000-000000000001', 'bench', now());
INSERT INTO batches (id, client_id, name, expired, created_at)
    VALUES ('00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-000000000001',
            'bench: {n} codes', false, now() - interval '100 days');
INSERT INTO codes (client_id, code, batch_id, seq, customer_id, issued_at)
    SELECT '00000000-0000-4000-8000-000000000001', 'C' || lpad(g::text, 10, '0'),
           '00000000-0000-4000-8000-0000000000b1', g,
           CASE WHEN g <= {issued} THEN 'customer-' || g END,
           CASE WHEN g <= {issued} THEN now() - random() * interval '90 days' END
    FROM generate_series(1, {n}) AS g;
INSERT INTO batches (id, client_id, name, expired, created_at)
    SELECT ('00000000-0000-4000-8000-0000000001' || lpad(b::text, 2, '0'))::uuid,
           '00000000-0000-4000-8000-000000000001', 'bench: low ' || b, false, now()
    FROM generate_series(1, 5) AS b;
INSERT INTO codes (client_id, code, batch_id, seq, customer_id, issued_at)
    SELECT '00000000-0000-4000-8000-000000000001', 'L' || b || '-' || g,
           ('00000000-0000-4000-8000-0000000001' || lpad(b::text, 2, '0'))::uuid, g,
           CASE WHEN g <= 100 * b THEN 'low-' || g END,
           CASE WHEN g <= 100 * b THEN now() - random() * interval '1 day' END
    FROM generate_series(1, 5) AS b, generate_series(1, 800) AS g;
INSERT INTO batches (id, client_id, name, expired, created_at)
    SELECT gen_random_uuid(), '00000000-0000-4000-8000-000000000001', 'bench: small ' || g,
           g % 10 <> 0, now() - interval '200 days' + g * interval '1 minute'
    FROM generate_series(1, {small}) AS g;
INSERT INTO codes (client_id, code, batch_id, seq, customer_id, issued_at)
    SELECT '00000000-0000-4000-8000-000000000001', 'S' || b.name || '-' || g, b.id, g,
           'small-' || g, b.created_at + interval '1 day'
    FROM batches b, generate_series(1, 10) AS g WHERE b.name LIKE 'bench: small %';

INSERT INTO referral_programs (id, name, credit_value, target_value, created_at, updated_at)
    VALUES (1, 'bench', 10, 100, now(), now());
SELECT setval(pg_get_serial_sequence('referral_programs', 'id'), 1);
INSERT INTO referrals (program_id, referrer_hash, referred_hash, credit_value, target_value,
                       total_amount_paid, rewarded_at, created_at, first_paid_at)
    SELECT 1, 'referrer-' || (g % 1000), 'referred-' || g, 10, 100,
           CASE g % 5 WHEN 0 THEN 100 WHEN 1 THEN 20 ELSE 0 END,
           CASE WHEN g % 5 = 0 THEN t + interval '1 hour' END, t,
           CASE WHEN g % 5 IN (0, 1) THEN t + interval '10 minutes' END
    FROM (SELECT g, now() - random() * interval '90 days' AS t
          FROM generate_series(1, {referrals}) AS g) AS r;
INSERT INTO referral_credits (referral_id, user_hash, kind, amount, created_at)
    SELECT id, referred_hash, 'signup', credit_value, created_at FROM referrals
    UNION ALL SELECT id, referrer_hash, 'potential', target_value, created_at FROM referrals
    UNION ALL SELECT id, referrer_hash, 'acquired', target_value, rewarded_at FROM referrals
              WHERE rewarded_at IS NOT NULL;
INSERT INTO email_indications (email, referrer_hash, created_at, verified_at)
    SELECT 'invitee-' || g || '@example.com', 'referrer-' || (g % 1000), t,
           CASE WHEN g % 2 = 0 THEN t + interval '1 day' END
    FROM (SELECT g, now() - random() * interval '90 days' AS t
          FROM generate_series(1, {referrals}) AS g) AS r;

INSERT INTO offer_players (game_id, player_id, offer_id, claim_count, last_claim_at,
                           impression_count, last_impression_at)
    SELECT 'bench', 'player-' || g, '{offer}', 1, now(), 1, now()
    FROM generate_series(1, {n}) AS g;
INSERT INTO offer_claims (game_id, transaction_id, player_id, offer_id, offer_version,
                          purchased_at, claimed_at, contents)
    SELECT 'bench', 'tx-' || g, 'player-' || g, '{offer}', 1, 0,
           now() - random() * interval '90 days', '{{"gems": 5}}'
    FROM generate_series(1, {n}) AS g;
INSERT INTO offer_impressions (game_id, impression_id, player_id, offer_id, seen_at)
    SELECT 'bench', gen_random_uuid(), 'player-' || g, '{offer}',
           now() - random() * interval '90 days'
    FROM generate_series(1, {n}) AS g;

INSERT INTO outbox (id, event_type, payload, created_at)
    SELECT g, 'referral.signed_up', '{{}}', now() - random() * interval '30 days'
    FROM generate_series(1, 2000) AS g;
SELECT setval(pg_get_serial_sequence('outbox', 'id'), 2000);
INSERT INTO webhook_deliveries (id, event_id, kind, event_type, url, content_type, body, status,
                                attempts, next_attempt_at, last_status_code, created_at)
    SELECT g, g, 'callback', 'referral.signed_up', 'http://127.0.0.1:9/credit',
           'application/x-www-form-urlencoded', 'amount=10', 'failed', 3, now(), 500,
           now() - random() * interval '30 days'
    FROM generate_series(1, 2000) AS g;
SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'id'), 2000);
INSERT INTO webhook_attempts (delivery_id, number, attempted_at, status_code, duration_ms)
    SELECT d, a, now() - random() * interval '30 days', 500, 5
    FROM generate_series(1, 2000) AS d, generate_series(1, 3) AS a;
INSERT INTO webhook_subscriptions (id, url, event_types, secret, active, deleted, created_at)
    VALUES (1, 'https://hooks.example.com/bench', '["*"]', 'whsec_bench', true, false,
            now() - interval '60 days');
SELECT setval(pg_get_serial_sequence('webhook_subscriptions', 'id'), 1);
INSERT INTO outbox (id, event_type, payload, created_at)
    SELECT g, CASE WHEN g % 10 = 0 THEN 'referral.signed_up' ELSE 'code.issued' END, '{{}}',
           now() - (2000 + {deliveries} - g) * interval '25 seconds'
    FROM generate_series(2001, 2000 + {deliveries}) AS g;
SELECT setval(pg_get_serial_sequence('outbox', 'id'), 2000 + {deliveries});
INSERT INTO webhook_deliveries (id, event_id, subscription_id, kind, event_type, url,
                                content_type, body, status, attempts, next_attempt_at,
                                last_status_code, created_at, delivered_at)
    SELECT o.id, o.id, CASE WHEN o.id % 50 = 0 THEN NULL ELSE 1 END,
           CASE WHEN o.id % 50 = 0 THEN 'callback' ELSE 'webhook' END, o.event_type,
           'https://hooks.example.com/bench', 'application/json', '{{"id": 1}}', 'delivered', 1,
           o.created_at, 200, o.created_at, o.created_at
    FROM outbox o WHERE o.id > 2000;
SELECT setval(pg_get_serial_sequence('webhook_deliveries', 'id'), 2000 + {deliveries});
INSERT INTO webhook_attempts (delivery_id, number, attempted_at, status_code, duration_ms,
                              response_excerpt)
    SELECT id, 1, created_at, 200, 12, 'ok' FROM webhook_deliveries WHERE id > 2000;

INSERT INTO users (username, password_hash, role, created_at)
    SELECT 'user-' || g, (SELECT password_hash FROM users WHERE username = '{admin}'),
           'sales', now() FROM generate_series(1, 10000) AS g;
INSERT INTO api_keys (name, prefix, digest, role, created_at)
    SELECT 'key ' || g, 'pk_' || g, encode(sha256(('key' || g)::bytea), 'hex'), 'sales', now()
    FROM generate_series(1, 10000) AS g;
INSERT INTO api_key_scopes (key_id, kind, action, resource)
    SELECT id, 'games', a, 'game-' || id FROM api_keys, unnest(ARRAY['read', 'use']) AS a
    WHERE id % 2 = 0;
INSERT INTO audit_log (at, actor_kind, actor_id, actor_name, actor_role, action, target_type,
                       target_id, before, after)
    SELECT now() - (200000 - g) * interval '1 minute', 'user', 1, '{admin}', 'admin',
           (ARRAY['special.update', 'batch.create', 'api_key.create', 'user.create'])[g % 4 + 1],
           (ARRAY['special', 'batch', 'api_key', 'user'])[g % 4 + 1], (g % 5000)::text,
           '{{"title": "old"}}', '{{"title": "new"}}'
    FROM generate_series(1, 200000) AS g;
"""

# Run after the promo codes' seeding (bench/console_promocodes.py): their redemptions over
# 90 days, for the dashboard; the first code already has its 200 of today.
REDEMPTIONS = """
INSERT INTO promocode_redemptions (promocode_id, customer, redeemed_at, rolled_back_at)
    SELECT g, 'buyer-' || g || '@example.com', t, CASE WHEN g % 20 = 0 THEN t END
    FROM (SELECT g, now() - random() * interval '90 days' AS t
          FROM generate_series(2, {issued} + 1) AS g) AS r;
"""

# The pools' counters as the app keeps them (promos/codes/counts.py): a checkpoint three
# minutes ago, the issues before it in total and per day; the issues since are the reads'.
COUNTERS = """
INSERT INTO pool_counts (batch_id, total, issued, counted_until)
    SELECT b.id, count(c.seq),
           count(c.issued_at) FILTER (WHERE c.issued_at < now() - interval '3 minutes'),
           now() - interval '3 minutes'
    FROM batches b LEFT JOIN codes c ON c.batch_id = b.id GROUP BY b.id
    ON CONFLICT (batch_id) DO NOTHING;
INSERT INTO pool_daily_issues (batch_id, day, issued)
    SELECT batch_id, (issued_at AT TIME ZONE 'UTC')::date, count(*) FROM codes
    WHERE issued_at < now() - interval '3 minutes'
      AND batch_id IN (SELECT batch_id FROM pool_counts WHERE counted_until > '2001-01-01')
    GROUP BY 1, 2;
"""

OFFER = "00000000-0000-4000-8000-00000000000f"
BRANDS, BRAND_CODES, BRAND_USERS = 60, 100, 200


async def _run(dsn: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def sql(dsn: str, *statements: str) -> None:
    asyncio.run(_run(dsn, list(statements)))


def fetch(query: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(BENCH_DSN, timeout=10)
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()

    return asyncio.run(go())


def promos_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMOS_")}
    env.update(PROMOS_DATABASE_URL=BENCH_DSN, PROMOS_LOG_LEVEL="warning", **extra)
    return env


def promos(*args: str) -> None:
    subprocess.run([str(PROMOS), *args], env=promos_env(), check=True, capture_output=True)


async def _make_game() -> None:
    """The game and its offer, the brands and their users, through the services."""
    now = datetime.now(UTC)
    database = Database(BENCH_DSN.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with database.begin() as conn:
            await service.upsert_game(conn, game_id="bench", name="Bench", metadata={}, now=now)
            spec = service.make_spec(
                name="Gems",
                product_id="gems",
                cost=None,
                contents={"gems": 5},
                metadata=None,
                placement="store",
                period=("", 1000),
                frequency=("", 1000),
                trigger=(0, 2**40),
                filters=None,
            )
            offer = await service.create_offer(conn, game_id="bench", spec=spec, now=now)
            await conn.execute(
                offers.update().where(offers.c.id == offer.id).values(id=UUID(OFFER))
            )
            await conn.execute(  # its version moves with it
                offer_versions.update()
                .where(offer_versions.c.offer_id == offer.id)
                .values(offer_id=UUID(OFFER))
            )
        async with database.begin() as conn:
            for brand_id in range(1, BRANDS + 1):
                await brands.generate_for_brand(conn, brand_id=brand_id, count=BRAND_CODES, now=now)
            for n in range(BRAND_USERS):
                await brands.create_brand_user(conn, user_id=f"shop-{n:03}", secret=None, now=now)
    finally:
        await database.dispose()


def seed(n: int) -> None:
    started = time.perf_counter()
    sql(SERVER_DSN, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME}")
    promos("migrate")
    promos("users", "create", "--username", ADMIN, "--password", PASSWORD, "--role", "admin")
    asyncio.run(_make_game())
    issued = n * 3 // 10
    script = SEED.format(
        n=n,
        issued=issued,
        small=SMALL_BATCHES,
        referrals=n // 10,
        deliveries=n // 10,
        offer=OFFER,
        admin=ADMIN,
    )
    sql(BENCH_DSN, "BEGIN", script, "COMMIT")
    asyncio.run(console_promocodes.seed(n, BENCH_DSN))
    sql(BENCH_DSN, "BEGIN", REDEMPTIONS.format(issued=issued), COUNTERS, "COMMIT")
    sql(BENCH_DSN, "VACUUM ANALYZE")
    print(f"seeded {DB_NAME} in {time.perf_counter() - started:.0f} s")


# --- the pages ------------------------------------------------------------------------------


def _last_page(path: str, order_by: str, table: str, *, descending: bool = False) -> str:
    """The path of a listing's last page: the cursor of the item just before it."""
    direction = "DESC" if descending else "ASC"
    [row] = fetch(f"SELECT count(*) AS n FROM {table}")
    skip = max((row["n"] - 1) // PAGE_SIZE * PAGE_SIZE - 1, 0)
    [key] = fetch(
        f"SELECT {order_by} AS k FROM {table} ORDER BY {order_by} {direction} OFFSET {skip} LIMIT 1"
    )
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}after={encode_cursor((key['k'],))}"


def pages(dsn: str) -> Pages:  # noqa: ARG001 - the plug-in signature
    """This helper's pages: the dashboard, users, API keys and the audit log."""
    return [
        ("dashboard", "/admin"),
        ("users: first page", "/admin/users"),
        ("users: last page", _last_page("/admin/users", "id", "users")),
        ("users: new", "/admin/users/new"),
        ("API keys: first page", "/admin/api-keys"),
        ("API keys: last page", _last_page("/admin/api-keys", "id", "api_keys")),
        ("API keys: new", "/admin/api-keys/new"),
        ("API keys: rotate", "/admin/api-keys/5000/rotate"),
        ("audit: first page", "/admin/audit"),
        ("audit: last page", _last_page("/admin/audit", "id", "audit_log", descending=True)),
        ("audit: by action", "/admin/audit?action=special.update"),
        ("audit: by actor", f"/admin/audit?actor={ADMIN}"),
        ("audit: by target", "/admin/audit?target_type=batch&target_id=42"),
        ("audit: by time", "/admin/audit?since=2020-01-01T00:00&until=2020-02-01T00:00"),
    ]


def all_pages() -> Pages:
    """This script's pages, then those of each plug-in that is there."""
    found = pages(BENCH_DSN)
    for name in PLUGINS:
        if not (ROOT / "bench" / f"{name}.py").exists():
            print(f"(no bench/{name}.py: its pages are not measured)")
            continue
        module = importlib.import_module(f"bench.{name}")
        page_list: Callable[[str], Any] | None = getattr(module, "pages", None)
        if page_list is None:
            print(f"(bench/{name}.py has no pages(dsn): its pages are not measured)")
            continue
        listed = page_list(BENCH_DSN)
        if inspect.isawaitable(listed):
            listed = asyncio.run(_awaited(listed))
        # (name, path) pairs, or objects with a name and a path.
        found += [
            (page.name, page.path) if hasattr(page, "path") else tuple(page) for page in listed
        ]
    return found


async def _awaited(listed: Awaitable[Any]) -> Any:
    return await listed


# --- the server and the measurement ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(held: bool) -> Iterator[str]:
    port = free_port()
    OUT.mkdir(exist_ok=True)
    extra = {} if held else {"PROMOS_CONSOLE_DASHBOARD_SECONDS": "0"}
    with (OUT / "console_pages.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(PROMOS), "serve", "--host", HOST, "--port", str(port)],
            env=promos_env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://{HOST}:{port}"
            deadline = time.monotonic() + SERVER_START_SECONDS
            while True:  # bounded by the deadline
                try:
                    if httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("promos serve did not start: see bench/out/console_pages.log")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def sign_in(client: httpx.Client) -> None:
    form = client.get("/admin/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    answer = client.post(
        "/admin/sign-in",
        data={"csrf_token": token.group(1), "username": ADMIN, "password": PASSWORD},
    )
    if answer.status_code != 303:
        raise SystemExit(f"sign-in failed: {answer.status_code}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def time_page(client: httpx.Client, name: str, path: str, requests: int) -> tuple[bool, bool]:
    """One page's line: its first view, p50 and p95; (answered 200, within the target)."""
    # The first view (not in p50/p95): templates compiled, statements prepared, and the
    # dashboard's days that are over counted (again once an hour).
    started = time.perf_counter()
    client.get(path)
    first = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            print(f"{name}: {path} answered {answer.status_code}")
            return False, False
    p50, p95 = percentile(times, 50), percentile(times, 95)
    verdict = "ok" if p95 <= TARGET_MS else "OVER"
    print(f"{name:<44} {first:8.1f} {p50:8.1f} {p95:8.1f}  {verdict}")
    return True, p95 <= TARGET_MS


def measure(url: str, page_list: Pages, requests: int) -> bool:
    """Every page, signed in as an admin; then the sign-in form, signed out."""
    results = []
    print(f"\n{'page':<44} {'first':>8} {'p50 ms':>8} {'p95 ms':>8}  target {TARGET_MS:.0f} ms")
    with httpx.Client(base_url=url, timeout=30) as client:
        results.append(time_page(client, "sign-in form (signed out)", "/admin/sign-in", requests))
        sign_in(client)
        results += [time_page(client, name, path, requests) for name, path in page_list]
    within = sum(fast for _, fast in results)
    print(f"\n{within} of {len(results)} pages within {TARGET_MS:.0f} ms at p95")
    return all(answered for answered, _ in results)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per page (50)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="size of the big tables")
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded before")
    parser.add_argument("--held", action="store_true", help="dashboard figures held 10 s")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args()
    if not args.reuse:
        seed(args.rows)
    try:
        page_list = all_pages()
        print(f"before: {load_average()}")
        with server(args.held) as url:
            ok = measure(url, page_list, max(1, min(args.requests, 10_000)))
        print(f"after: {load_average()}")
    finally:
        if not args.keep:
            sql(SERVER_DSN, f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            print(f"dropped {DB_NAME} (--keep keeps it)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
