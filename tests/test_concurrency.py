"""The rules that must hold under real concurrency, proven against PostgreSQL.

Every test fires its requests at once (``asyncio.gather``) and then checks both what the
callers were told and what the database holds: a code is issued at most once, per-customer
rules hold for concurrent requests of one customer, and concurrent retries with one
Idempotency-Key get one code.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select

from promos.codes import service
from promos.codes.service import Batch, BatchStats, Rules
from promos.codes.tables import codes
from promos.db import Database
from promos.settings import Settings
from tests._servers import Server, running_servers, server_env
from tests.factories.codes import CLIENT, add_client_codes, make_batch

pytestmark = pytest.mark.postgres_only

REDEEM = "/api/v1/code/redeem"
OTHER_CLIENT = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")


@pytest.fixture(params=["grouped", "many small statements"])
def settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    """The default (one statement of up to 64 requests in flight) and an adversarial one:
    statements of 2 requests, 8 at once on different connections."""
    tuning = {} if request.param == "grouped" else {"issue_batch_size": 2, "issue_concurrency": 8}
    return Settings(database_url=database_url, db_pool_size=20, db_max_overflow=10, **tuning)


@pytest.fixture(autouse=True)
async def warm_pool(request: pytest.FixtureRequest, settings: Settings, database: Database) -> None:
    """Open the in-test app's pooled connections up front, all at once.

    Otherwise the first request's transaction can commit while the others are still
    connecting, and the race a test means to provoke does not happen.
    """
    if "servers" in request.fixturenames:
        return  # the requests go to the server processes, not to the in-test app
    size = settings.db_pool_size
    everyone_connected = asyncio.Barrier(size)

    async def hold_one() -> None:
        async with database.engine.connect() as conn:
            await conn.execute(select(1))
            await everyone_connected.wait()

    await asyncio.wait_for(asyncio.gather(*(hold_one() for _ in range(size))), timeout=10)


def redeem(
    http: httpx.AsyncClient,
    auth: dict[str, str],
    batch: Batch,
    customer: UUID,
    *,
    key: str | None = None,
    client_id: UUID = CLIENT,
) -> Any:
    """One Ango redeem request (a coroutine, to be gathered with the others)."""
    headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
    body = {"batchid": str(batch.id), "clientid": str(client_id), "customerid": str(customer)}
    return http.post(REDEEM, json=body, headers=headers)


def issued_to(customers: list[UUID], responses: list[httpx.Response]) -> dict[str, str]:
    """Code -> customer, as the callers were told; fails if two callers got one code."""
    handed = [
        (r.json()["code"], str(c))
        for c, r in zip(customers, responses, strict=True)
        if r.status_code == 200
    ]
    codes_handed = [code for code, _ in handed]
    assert len(set(codes_handed)) == len(codes_handed), "a code was handed out twice"
    return dict(handed)


async def issued_in_db(database: Database, batch: Batch) -> dict[str, str]:
    """Code -> customer, as the database records the batch's issues."""
    async with database.begin() as conn:
        rows = await conn.execute(
            select(codes.c.code, codes.c.customer_id).where(
                codes.c.batch_id == batch.id, codes.c.issued_at.is_not(None)
            )
        )
        return {row.code: row.customer_id for row in rows}


async def stats(database: Database, batch: Batch) -> BatchStats:
    async with database.begin() as conn:
        return await service.batch_stats(conn, batch.id)


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


async def test_four_hundred_concurrent_requests_for_three_hundred_codes_issue_each_code_once(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=300)
    customers = [uuid4() for _ in range(400)]

    responses = await asyncio.gather(*(redeem(client, auth, batch, c) for c in customers))

    assert statuses(responses) == {200: 300, 409: 100}
    assert {r.json()["error"] for r in responses if r.status_code == 409} == {
        f"batch {batch.id} has no codes left for client {CLIENT}"
    }
    handed = issued_to(customers, responses)
    assert await issued_in_db(database, batch) == handed
    assert await stats(database, batch) == BatchStats(batch.id, total=300, issued=300, left=0)


async def test_four_hundred_concurrent_keyed_requests_for_three_hundred_codes_issue_each_code_once(
    client, database, clock, auth
):
    """Keyed requests take another path (one transaction each): the same rule holds there."""
    batch = await make_batch(database, now=clock(), codes=300)
    customers = [uuid4() for _ in range(400)]

    responses = await asyncio.gather(
        *(redeem(client, auth, batch, c, key=f"order-{n}") for n, c in enumerate(customers))
    )

    assert statuses(responses) == {200: 300, 409: 100}
    handed = issued_to(customers, responses)
    assert await issued_in_db(database, batch) == handed
    assert await stats(database, batch) == BatchStats(batch.id, total=300, issued=300, left=0)


async def test_thirty_concurrent_requests_for_one_customer_get_exactly_two_codes(
    client, database, clock, auth
):
    rules = Rules(max_per_customer=2, time_limit_days=30)
    batch = await make_batch(database, now=clock(), codes=50, rules=rules)
    customer = uuid4()
    customers = [customer] * 30

    responses = await asyncio.gather(*(redeem(client, auth, batch, c) for c in customers))

    assert statuses(responses) == {200: 2, 403: 28}
    handed = issued_to(customers, responses)
    assert await issued_in_db(database, batch) == handed
    assert set(handed.values()) == {str(customer)}
    assert await stats(database, batch) == BatchStats(batch.id, total=50, issued=2, left=48)


async def test_fifty_customers_with_five_concurrent_requests_each_get_exactly_one_code_each(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=300, rules=Rules(max_per_customer=1))
    fifty = [uuid4() for _ in range(50)]
    customers = [c for _ in range(5) for c in fifty]  # each customer's five requests interleaved

    responses = await asyncio.gather(*(redeem(client, auth, batch, c) for c in customers))

    assert statuses(responses) == {200: 50, 403: 200}
    handed = issued_to(customers, responses)
    in_db = await issued_in_db(database, batch)
    assert in_db == handed
    assert Counter(in_db.values()) == {str(c): 1 for c in fifty}


async def test_two_clients_of_one_batch_asking_at_once_get_only_their_own_codes(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=150, prefix="MINE")
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=150, prefix="THEIRS", now=clock()
    )
    # 200 requests of each client, interleaved: each client's pool holds 150.
    asked = [(c, uuid4()) for _ in range(200) for c in (CLIENT, OTHER_CLIENT)]

    responses = await asyncio.gather(
        *(redeem(client, auth, batch, customer, client_id=c) for c, customer in asked)
    )

    handed = issued_to([customer for _, customer in asked], responses)
    assert statuses(responses) == {200: 300, 409: 100}
    # What each client's requests got: codes of which client, or 409.
    got: dict[UUID, Counter[str]] = {CLIENT: Counter(), OTHER_CLIENT: Counter()}
    for (c, _), r in zip(asked, responses, strict=True):
        got[c][r.json()["code"].split("-")[0] if r.status_code == 200 else "409"] += 1
    assert got == {CLIENT: {"MINE": 150, "409": 50}, OTHER_CLIENT: {"THEIRS": 150, "409": 50}}
    assert await issued_in_db(database, batch) == handed


async def test_thirty_concurrent_requests_of_one_customer_for_two_clients_get_exactly_two_codes(
    client, database, clock, auth
):
    """The rule counts per customer per batch, whichever of the batch's clients is named."""
    batch = await make_batch(database, now=clock(), codes=50, rules=Rules(max_per_customer=2))
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=50, prefix="X", now=clock()
    )
    customer = uuid4()
    clients = [CLIENT, OTHER_CLIENT] * 15

    responses = await asyncio.gather(
        *(redeem(client, auth, batch, customer, client_id=c) for c in clients)
    )

    assert statuses(responses) == {200: 2, 403: 28}
    handed = issued_to([customer] * 30, responses)
    assert await issued_in_db(database, batch) == handed


async def test_twenty_concurrent_retries_with_one_idempotency_key_get_one_code(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=50)
    customer = uuid4()

    responses = await asyncio.gather(
        *(redeem(client, auth, batch, customer, key="order-1") for _ in range(20))
    )

    assert statuses(responses) == {200: 20}
    assert len({r.json()["code"] for r in responses}) == 1
    assert await issued_in_db(database, batch) == {responses[0].json()["code"]: str(customer)}


async def test_concurrent_retries_with_one_idempotency_key_get_one_code_under_a_customer_limit(
    client, database, clock, auth
):
    """The customer's limit is the retried request's own code: retries replay it, not 403."""
    batch = await make_batch(database, now=clock(), codes=50, rules=Rules(max_per_customer=1))
    customer = uuid4()

    responses = await asyncio.gather(
        *(redeem(client, auth, batch, customer, key="order-1") for _ in range(20))
    )

    assert statuses(responses) == {200: 20}
    assert len({r.json()["code"] for r in responses}) == 1
    assert await issued_in_db(database, batch) == {responses[0].json()["code"]: str(customer)}


async def test_concurrent_retries_with_one_idempotency_key_all_get_the_last_code(
    client, database, clock, auth
):
    """The first attempt took the pool's last code: its retries replay it, not 409."""
    batch = await make_batch(database, now=clock(), codes=1)
    customer = uuid4()

    responses = await asyncio.gather(
        *(redeem(client, auth, batch, customer, key="order-1") for _ in range(20))
    )

    assert statuses(responses) == {200: 20}
    assert len({r.json()["code"] for r in responses}) == 1
    assert await issued_in_db(database, batch) == {responses[0].json()["code"]: str(customer)}


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Any:
    """Three ``promos serve`` processes on this test's PostgreSQL database."""
    # Small statements, several at once in each process, on top of three processes.
    env = server_env(database_url, PROMOS_ISSUE_BATCH_SIZE="4", PROMOS_ISSUE_CONCURRENCY="4")
    with running_servers(3, env, tmp_path) as started:
        yield started


async def test_three_server_processes_issue_each_code_once_and_hold_the_customer_limit(
    servers: list[Server], database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=500, rules=Rules(max_per_customer=2))
    # 300 customers may get 600 codes, the pool holds 500; every customer asks each server.
    customers = [uuid4() for _ in range(300)]
    limits = httpx.Limits(max_connections=64)
    async with (
        httpx.AsyncClient(base_url=servers[0].url, limits=limits, timeout=30) as one,
        httpx.AsyncClient(base_url=servers[1].url, limits=limits, timeout=30) as two,
        httpx.AsyncClient(base_url=servers[2].url, limits=limits, timeout=30) as three,
    ):
        asked = [(http, c) for c in customers for http in (one, two, three)]
        responses = await asyncio.gather(*(redeem(http, auth, batch, c) for http, c in asked))

    count = statuses(responses)
    assert count[200] == 500, count
    assert count[200] + count[403] + count[409] == 900, count
    handed = issued_to([c for _, c in asked], responses)
    in_db = await issued_in_db(database, batch)
    assert in_db == handed
    over_limit = {c: n for c, n in Counter(in_db.values()).items() if n > 2}
    assert over_limit == {}
    assert await stats(database, batch) == BatchStats(batch.id, total=500, issued=500, left=0)
