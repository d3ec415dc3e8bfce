"""Benchmark the console's offers pages on big data: server time per page, p50 and p95.

bench/console_pages.py measures these pages with every other console page (``pages(dsn)``,
a plug-in of its ``PLUGINS``). Alone, from the repository root, with PostgreSQL on 127.0.0.1:

    .venv/bin/python bench/console_offers.py [--players 1000000] [--requests 50] [--reuse]

seeds only what these pages read, in console_pages.py's database (dropped first, and at the
end): the game ``bench`` whose one offer 1,000,000 players each claimed and saw once over 90
days (by SQL, as console_pages.py seeds it), and the game ``bench-many`` with 1,000 offers
(through the services; one of them at version 5), then serves and times each page as
console_pages.py does. The pages: the games list, a game (its claims and impressions per day),
its edit form, its offers (all, and one placement), an offer's editor, the duplicate form,
its versions side by side, Preview as a player (1,000 offers explained) and a player's history.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import console_pages as bench  # noqa: E402 - after the path is set
from promos.db import Database  # noqa: E402
from promos.offers import service  # noqa: E402

MANY = "bench-many"
OFFERS = 1_000
VERSIONS = 5
PLAYER = "player-500000"

_PLAYERS = """
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
"""


def _spec(n: int) -> service.OfferSpec:
    return service.make_spec(
        name=f"Offer {n:04}",
        product_id=f"product-{n}",
        cost=None,
        contents={"gems": n},
        metadata=None,
        placement=("store", "popup", "daily")[n % 3],
        period=("24h", 3),
        frequency=("1h", 0),
        trigger=(0, 2**40) if n % 10 else (2**39, 2**40),
        filters={"country": {"eq": ("BR", "US", "DE")[n % 3]}} if n % 2 else None,
    )


async def _seed_many(dsn: str) -> str:
    """The game ``bench-many`` with its offers, if not there yet; one offer's id."""
    database = Database(dsn.replace("postgresql://", "postgresql+asyncpg://"))
    now = datetime.now(UTC)
    try:
        async with database.begin() as conn:
            if await service.find_game(conn, MANY) is None:
                await service.upsert_game(
                    conn, game_id=MANY, name="Many offers", metadata={}, now=now
                )
                for n in range(OFFERS):
                    await service.create_offer(conn, game_id=MANY, spec=_spec(n), now=now)
            [first] = (await service.offers_page(conn, game_id=MANY, limit=1)).items
            versions = await service.offer_versions_of(conn, game_id=MANY, offer_id=first.id)
            for _ in range(VERSIONS - len(versions)):
                await service.update_offer(
                    conn, game_id=MANY, offer_id=first.id, spec=_spec(len(versions)), now=now
                )
    finally:
        await database.dispose()
    return str(first.id)


async def pages(dsn: str) -> bench.Pages:
    """These pages in the seeded database at ``dsn`` (the game ``bench-many`` is made first,
    if it is not there)."""
    offer = await _seed_many(dsn)
    many = f"/admin/games/{MANY}"
    preview = urlencode({"player_id": PLAYER, "attributes": "country=BR"})
    return [
        ("games", "/admin/games"),
        ("game: 1,000,000 claims and impressions", "/admin/games/bench"),
        ("game: edit", "/admin/games/bench/edit"),
        ("offers of a game: first page", f"{many}/offers"),
        ("offers of a game: one placement", f"{many}/offers?placement=popup"),
        ("offer: editor", f"{many}/offers/{offer}"),
        ("offer: new (duplicate)", f"{many}/offers/new?from={offer}"),
        ("offer: versions side by side", f"{many}/offers/{offer}/versions"),
        ("preview: 1,000 offers", f"{many}/preview?{preview}"),
        ("preview: 1,000,000 players' game", f"/admin/games/bench/preview?{preview}"),
        ("player: history", f"/admin/games/bench/player?id={PLAYER}"),
    ]


def seed(players: int) -> None:
    """Only what these pages read, in console_pages.py's database."""
    bench.sql(
        bench.SERVER_DSN,
        f"DROP DATABASE IF EXISTS {bench.DB_NAME} WITH (FORCE)",
        f"CREATE DATABASE {bench.DB_NAME}",
    )
    bench.promos("migrate")
    admin = ["users", "create", "--username", bench.ADMIN, "--password", bench.PASSWORD]
    bench.promos(*admin, "--role", "admin")
    asyncio.run(bench._make_game())  # noqa: SLF001 - the same game as the whole benchmark's
    script = _PLAYERS.format(n=players, offer=bench.OFFER)
    bench.sql(bench.BENCH_DSN, "BEGIN", script, "COMMIT")
    bench.sql(bench.BENCH_DSN, "VACUUM ANALYZE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="requests per page (50)")
    parser.add_argument("--reuse", action="store_true", help="keep a database seeded before")
    args = parser.parse_args()
    if not args.reuse:
        seed(args.players)
    try:
        page_list = asyncio.run(pages(bench.BENCH_DSN))
        print(f"before: {bench.load_average()}")
        with bench.server(held=True) as url:
            ok = bench.measure(url, page_list, max(1, min(args.requests, 10_000)))
        print(f"after: {bench.load_average()}")
    finally:
        bench.sql(bench.SERVER_DSN, f"DROP DATABASE IF EXISTS {bench.DB_NAME} WITH (FORCE)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
