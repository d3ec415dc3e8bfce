"""Claims and impressions under real concurrency on PostgreSQL: none lost, none counted twice.

The seed's own claim was a read-modify-write of a JSON array and lost concurrent claims.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select, text

from promos.offers.counting import ClaimAsk, SeenAsk
from promos.offers.counting import Counter as OfferCounter
from promos.offers.service import Offer
from promos.offers.tables import offer_claims, offer_impressions, offer_players
from promos.settings import Settings
from tests.factories.offers import make_game, make_offer

pytestmark = pytest.mark.postgres_only

GAME = "galaxy"
PLAYER = "racer"
REQUESTS = 20


@pytest.fixture(params=["grouped", "many small statements"])
def settings(request, database_url):
    """The default, and statements of 2 requests, 8 at once: ids then race across statements."""
    tuning = {} if request.param == "grouped" else {"offers_batch_size": 2, "offers_concurrency": 8}
    return Settings(database_url=database_url, db_pool_size=20, db_max_overflow=10, **tuning)


@pytest.fixture(autouse=True)
async def warm_pool(settings, database) -> None:
    """Open the pool's connections up front, so that the requests race instead of queueing."""
    everyone_connected = asyncio.Barrier(settings.db_pool_size)

    async def hold_one() -> None:
        async with database.engine.connect() as conn:
            await conn.execute(select(1))
            await everyone_connected.wait()

    await asyncio.wait_for(
        asyncio.gather(*(hold_one() for _ in range(settings.db_pool_size))), timeout=10
    )


@pytest.fixture
async def offer_id(database, clock, state) -> str:
    await make_game(database, now=clock(), game_id=GAME)
    offer = await make_offer(
        database,
        now=clock(),
        catalog=state.offers,
        period={"every": "", "max": 1000},
        frequency={"every": "", "max": 1000},
    )
    return str(offer.id)


def claim(client, offer_id: str, transaction: str):
    body = {
        "gameId": GAME,
        "playerId": PLAYER,
        "timestamp": 1,
        "transactionId": transaction,
        "id": offer_id,
    }
    return client.put("/offers/claim", json=body)


def impression(client, offer_id: str, impression_id: str):
    body = {"gameId": GAME, "playerId": PLAYER, "impressionId": impression_id}
    return client.put(f"/offers/{offer_id}/impressions", json=body)


async def counters(database) -> tuple[int, int]:
    async with database.begin() as conn:
        row = (
            await conn.execute(
                select(offer_players.c.claim_count, offer_players.c.impression_count)
            )
        ).one()
    return row[0], row[1]


async def rows(database, table) -> int:
    async with database.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_concurrent_claims_with_different_transactions_are_all_counted(
    client, database, offer_id
):
    responses = await asyncio.gather(*(claim(client, offer_id, f"tx-{n}") for n in range(REQUESTS)))

    assert Counter(r.status_code for r in responses) == {200: REQUESTS}
    assert (await counters(database))[0] == REQUESTS
    assert await rows(database, offer_claims) == REQUESTS


async def test_concurrent_replays_of_one_transaction_are_counted_once(client, database, offer_id):
    responses = await asyncio.gather(*(claim(client, offer_id, "tx-once") for _ in range(REQUESTS)))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: REQUESTS - 1}
    assert len({r.text for r in responses}) == 1
    assert (await counters(database))[0] == 1
    assert await rows(database, offer_claims) == 1


async def test_concurrent_impressions_with_different_ids_are_all_counted(
    client, database, offer_id
):
    responses = await asyncio.gather(
        *(impression(client, offer_id, str(uuid4())) for _ in range(REQUESTS))
    )

    assert Counter(r.status_code for r in responses) == {200: REQUESTS}
    assert (await counters(database))[1] == REQUESTS
    assert await rows(database, offer_impressions) == REQUESTS


async def test_concurrent_replays_of_one_impression_are_counted_once(client, database, offer_id):
    seen = str(uuid4())
    responses = await asyncio.gather(*(impression(client, offer_id, seen) for _ in range(REQUESTS)))

    assert Counter(r.status_code for r in responses) == {200: REQUESTS}
    assert len({r.text for r in responses}) == 1
    assert (await counters(database))[1] == 1
    assert await rows(database, offer_impressions) == 1


async def test_concurrent_claims_and_impressions_of_one_player_are_all_counted(
    client, database, offer_id
):
    claims = [claim(client, offer_id, f"mixed-{n}") for n in range(REQUESTS // 2)]
    seen = [impression(client, offer_id, str(uuid4())) for _ in range(REQUESTS // 2)]

    responses = await asyncio.gather(*claims, *seen)

    assert {r.status_code for r in responses} == {200}
    assert await counters(database) == (REQUESTS // 2, REQUESTS // 2)


WORKERS = 6
IDS = 96


async def sent_to_every_worker(database, asks: list, send) -> list:
    """Each ask sent to each of several counters at once, as to several server processes
    (groups of 8, 2 statements at once), each in its own order so that their groups race."""
    workers = [OfferCounter(database, group_size=8, concurrency=2) for _ in range(WORKERS)]
    answers = await asyncio.gather(
        *(
            send(counter, ask)
            for n, counter in enumerate(workers)
            for ask in random.Random(n).sample(asks, len(asks))
        ),
        return_exceptions=True,  # every request finishes before the test asserts
    )
    assert [a for a in answers if isinstance(a, BaseException)] == []
    return answers


async def test_claims_replayed_to_every_worker_at_once_are_each_counted_once(
    database, clock, catalog_offer
):
    asks = [
        ClaimAsk(
            offer=catalog_offer,
            player_id=f"racer-{n}",
            transaction_id=f"tx-{n}",
            purchased_at=1,
            now=clock(),
        )
        for n in range(IDS)
    ]

    answers = await sent_to_every_worker(database, asks, OfferCounter.claim)

    assert sum(not a.replayed for a in answers) == IDS
    assert await rows(database, offer_claims) == IDS
    assert await total(database, offer_players.c.claim_count) == IDS


async def lock_waiters(database, expected: int) -> None:
    """Wait (at most 5 s) until ``expected`` statements of this database wait for a lock (on
    Citus, on the workers, where the rows are: citus_stat_activity sees every node's)."""
    activity = "citus_stat_activity" if database.citus else "pg_stat_activity"
    for _ in range(500):
        async with database.begin() as conn:
            waiting = await conn.scalar(
                text(
                    f"SELECT count(*) FROM {activity} "  # noqa: S608 - one of two view names
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        if waiting >= expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{expected} statements never waited for a lock")


@pytest.mark.parametrize("kind", ["claims", "impressions"])
async def test_two_statements_reusing_ids_for_other_players_do_not_deadlock(
    database, clock, catalog_offer, kind
):
    """A records id a, then waits for a first use of id c that is not committed yet; B, for
    other players, records id b and waits for A's a. Once c is given up, A records c and then
    needs b, held by B: a deadlock, unless both record their ids in one order."""
    ids = {name: UUID(int=n) for n, name in enumerate("01abc")}  # in this order in SQL too
    if kind == "claims":
        table, column, count = offer_claims, "transaction_id", offer_players.c.claim_count

        def send(counter: OfferCounter, player: str, name: str) -> Awaitable[Any]:
            return counter.claim(ClaimAsk(catalog_offer, player, str(ids[name]), 1, clock()))

        holding = {"offer_version": 1, "purchased_at": 1, "claimed_at": clock(), "contents": {}}
    else:
        table, column, count = offer_impressions, "impression_id", offer_players.c.impression_count

        def send(counter: OfferCounter, player: str, name: str) -> Awaitable[Any]:
            return counter.see(SeenAsk(catalog_offer, player, ids[name], clock()))

        holding = {"seen_at": clock()}
    held = str(ids["c"]) if kind == "claims" else ids["c"]
    # One statement in flight per counter: the asks after its first go as one group.
    a, b = (OfferCounter(database, group_size=8, concurrency=1) for _ in range(2))
    async with database.engine.connect() as holder:
        await holder.begin()
        await holder.execute(
            table.insert().values(
                game_id=GAME,
                player_id="carol",
                offer_id=catalog_offer.id,
                next_at=None,
                **{column: held},
                **holding,
            )
        )
        first = asyncio.gather(
            *(send(a, f"ann-{n}", n) for n in ("0", "a", "c", "b")), return_exceptions=True
        )
        await lock_waiters(database, 1)
        second = asyncio.gather(
            *(send(b, f"bob-{n}", n) for n in ("1", "b", "a")), return_exceptions=True
        )
        await lock_waiters(database, 2)
        await holder.rollback()  # c is A's to record after all
    answers = await asyncio.wait_for(asyncio.gather(first, second), timeout=30)

    assert [[x if isinstance(x, BaseException) else x.replayed for x in g] for g in answers] == [
        [False, False, False, False],
        [False, True, True],
    ]
    assert await rows(database, table) == 5
    assert await total(database, count) == 5


async def test_impressions_replayed_to_every_worker_at_once_are_each_counted_once(
    database, clock, catalog_offer
):
    asks = [
        SeenAsk(offer=catalog_offer, player_id=f"racer-{n}", impression_id=uuid4(), now=clock())
        for n in range(IDS)
    ]

    answers = await sent_to_every_worker(database, asks, OfferCounter.see)

    assert sum(not a.replayed for a in answers) == IDS
    assert await rows(database, offer_impressions) == IDS
    assert await total(database, offer_players.c.impression_count) == IDS


@pytest.fixture
async def catalog_offer(offer_id, state) -> Offer:
    held = await state.offers.get(GAME)
    return held.by_id[UUID(offer_id)]


async def total(database, column) -> int:
    async with database.begin() as conn:
        return int((await conn.execute(select(func.sum(column)))).scalar_one())
