"""Promos' own events (code.issued, promocode.redeemed, promocode.redeem_rolled_back,
offer.claimed): written with the change that made them, only when a subscription wants them,
once per change (never for a replay), and delivered signed to a real receiver on 127.0.0.1.

Most tests drive a ``Dispatcher`` pass by pass; one runs the server's own dispatcher, which
the issuing statement wakes. The concurrency tests run on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from promos.codes.service import Batch
from promos.db import Database
from promos.events.dispatcher import Dispatcher
from promos.events.tables import outbox, webhook_deliveries
from promos.settings import Settings
from tests._receiver import ALLOWED_HOSTS, RECEIVER_DESTINATIONS, Received, Receiver
from tests.conftest import FakeClock
from tests.factories.codes import CLIENT, make_batch
from tests.factories.offers import make_game, make_offer
from tests.factories.promocodes import make_promocode

SECRET = "the subscriber's own secret"
CUSTOMER = "5a0e5b4e-3f1c-4c1e-9d53-9f1f0c3e7a10"
OTHER = "0c9d7b1a-6a53-4c7d-8e2b-1f4e2d3c5b60"
ISSUE = "/api/v1/code/redeem"
GAME = "galaxy"


@pytest.fixture
def in_server_dispatcher() -> bool:
    return False


@pytest.fixture
def tuning() -> dict[str, int]:
    """Grouping settings; the concurrency tests also run with small groups, many at once."""
    return {}


@pytest.fixture
def settings(database_url: str, in_server_dispatcher: bool, tuning: dict[str, int]) -> Settings:
    # A poll this long never fires within a test: what the server delivers, a wake-up sent.
    return Settings(
        database_url=database_url,
        db_pool_size=20,
        db_max_overflow=10,
        webhook_dispatcher=in_server_dispatcher,
        webhook_poll_seconds=600,
        webhook_allowed_hosts=ALLOWED_HOSTS,
        **tuning,
    )


@pytest.fixture
async def dispatcher(database: Database, clock: FakeClock) -> AsyncIterator[Dispatcher]:
    sending = Dispatcher(
        database,
        clock=clock,
        callback_secret=None,
        destinations=RECEIVER_DESTINATIONS,
        timeout_seconds=5,
    )
    yield sending
    await sending.close()


async def subscribe(
    client: httpx.AsyncClient, admin_auth: dict[str, str], receiver: Receiver, events: list[str]
) -> int:
    response = await client.post(
        "/v1/webhooks",
        json={"url": f"{receiver.url}/hooks", "events": events, "secret": SECRET},
        headers=admin_auth,
    )
    assert response.status_code == 201, response.text
    subscription_id: int = response.json()["id"]
    return subscription_id


def signed(request: Received, clock: FakeClock) -> bool:
    """The receiver's own check of ``Promos-Signature: t=<unix>,v1=<HMAC-SHA256 hex>``."""
    parts = dict(p.split("=", 1) for p in request.headers["promos-signature"].split(","))
    mac = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256)
    fresh = abs(int(clock().timestamp()) - int(parts["t"])) <= 300
    return hmac.compare_digest(mac.hexdigest(), parts["v1"]) and fresh


def event_of(request: Received) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(request.body)
    return body


async def outbox_types(database: Database) -> Counter[str]:
    """How many events of each type the outbox holds."""
    async with database.begin() as conn:
        return Counter((await conn.execute(select(outbox.c.event_type))).scalars())


async def event_data(database: Database, event_type: str) -> list[dict[str, Any]]:
    """The payloads of the outbox's events of one type, oldest first."""
    async with database.begin() as conn:
        rows = await conn.execute(
            select(outbox.c.payload).where(outbox.c.event_type == event_type).order_by(outbox.c.id)
        )
        return list(rows.scalars())


async def delivery_count(database: Database) -> int:
    async with database.begin() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(webhook_deliveries))).scalar_one()
        )


def issue(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    batch: Batch,
    customer: str,
    *,
    key: str | None = None,
) -> Any:
    """One Ango issue request (a coroutine, to gather with others)."""
    headers = auth if key is None else {**auth, "Idempotency-Key": key}
    body = {"batchid": str(batch.id), "clientid": str(CLIENT), "customerid": customer}
    return client.post(ISSUE, json=body, headers=headers)


def redeem(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    code: str,
    customer: str = "ann@example.com",
    *,
    key: str | None = None,
) -> Any:
    headers = auth if key is None else {**auth, "Idempotency-Key": key}
    body = {"customer": customer, "products": []}
    return client.post(f"/v1/promocodes/{code}/redeem", json=body, headers=headers)


def claim(client: httpx.AsyncClient, offer_id: UUID, transaction: str, player: str = "p1") -> Any:
    body = {
        "gameId": GAME,
        "playerId": player,
        "timestamp": 1_772_366_400,
        "transactionId": transaction,
        "id": str(offer_id),
    }
    return client.put("/offers/claim", json=body)


@pytest.fixture
async def offer_id(database: Database, clock: FakeClock, state: Any) -> UUID:
    await make_game(database, now=clock(), game_id=GAME)
    offer = await make_offer(
        database,
        now=clock(),
        catalog=state.offers,
        period={"every": "", "max": 1000},
        frequency={"every": "", "max": 1000},
    )
    return offer.id


def customer(n: int) -> str:
    """The n-th customer's id (Ango's customer ids are UUIDs)."""
    return str(UUID(int=n + 1))


# --- code.issued ---------------------------------------------------------------------------


async def test_an_issued_code_is_delivered_signed_to_a_code_issued_subscription(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    batch = await make_batch(database, now=clock(), codes=3)
    await subscribe(client, admin_auth, receiver, ["code.issued"])

    issued = await issue(client, auth, batch, CUSTOMER)
    assert await dispatcher.deliver_due() == 1

    [request] = receiver.requests
    event = event_of(request)
    assert (request.path, request.headers["promos-event"]) == ("/hooks", "code.issued")
    assert signed(request, clock)
    assert event["type"] == "code.issued"
    assert event["id"] == int(request.headers["promos-event-id"])
    assert event["created_at"] == clock().isoformat()
    assert event["data"] == {
        "client_id": str(CLIENT),
        "batch_id": str(batch.id),
        "code": issued.json()["code"],
        "customer_id": CUSTOMER,
        "issued_at": clock().isoformat(),
    }


async def test_issuing_without_a_subscription_writes_no_event(client, auth, database, clock):
    batch = await make_batch(database, now=clock(), codes=3)

    response = await issue(client, auth, batch, CUSTOMER)

    assert response.status_code == 200, response.text
    assert await outbox_types(database) == Counter()


async def test_a_subscription_to_other_events_makes_issuing_write_none(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=3)
    await subscribe(client, admin_auth, receiver, ["offer.claimed", "promocode.redeemed"])

    await issue(client, auth, batch, CUSTOMER)

    assert await outbox_types(database) == Counter()


async def test_a_deleted_subscription_makes_issuing_write_no_event(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=3)
    subscription = await subscribe(client, admin_auth, receiver, ["code.issued"])
    await client.delete(f"/v1/webhooks/{subscription}", headers=admin_auth)

    await issue(client, auth, batch, CUSTOMER)

    assert await outbox_types(database) == Counter()


async def test_a_subscription_made_after_issuing_without_one_gets_the_next_codes_event(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=3)
    await issue(client, auth, batch, customer(1))  # nobody wanted it: the lean statement next
    await subscribe(client, admin_auth, receiver, ["code.issued"])

    second = await issue(client, auth, batch, customer(2))

    assert second.status_code == 200, second.text
    assert [e["code"] for e in await event_data(database, "code.issued")] == [second.json()["code"]]


async def test_a_retried_issue_with_the_same_idempotency_key_emits_one_event(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=3)
    await subscribe(client, admin_auth, receiver, ["code.issued"])

    first = await issue(client, auth, batch, CUSTOMER, key="order-1")
    again = await issue(client, auth, batch, CUSTOMER, key="order-1")

    assert first.json() == again.json()
    assert await outbox_types(database) == Counter({"code.issued": 1})
    assert await delivery_count(database) == 1


async def test_a_refused_issue_emits_no_event(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=1)
    await subscribe(client, admin_auth, receiver, ["code.issued"])

    await issue(client, auth, batch, CUSTOMER)
    exhausted = await issue(client, auth, batch, OTHER)

    assert exhausted.status_code != 200
    assert await outbox_types(database) == Counter({"code.issued": 1})


async def test_each_subscription_that_wants_an_event_gets_its_own_delivery(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    batch = await make_batch(database, now=clock(), codes=3)
    await subscribe(client, admin_auth, receiver, ["code.issued"])
    await subscribe(client, admin_auth, receiver, ["*"])

    await issue(client, auth, batch, CUSTOMER)
    assert await dispatcher.deliver_due() == 2

    assert await outbox_types(database) == Counter({"code.issued": 1})
    assert len({r.body for r in receiver.requests}) == 1
    assert len({r.headers["promos-delivery"] for r in receiver.requests}) == 2


@pytest.mark.parametrize("in_server_dispatcher", [True])
async def test_the_server_delivers_an_issued_code_at_once_without_waiting_for_its_poll(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=3)
    await subscribe(client, admin_auth, receiver, ["code.issued"])

    issued = await issue(client, auth, batch, CUSTOMER)

    [request] = await receiver.wait_for(1, timeout=10)
    assert event_of(request)["data"]["code"] == issued.json()["code"]


# --- promocode.redeemed and promocode.redeem_rolled_back -------------------------------------


async def test_a_redemption_is_delivered_signed_to_a_promocode_redeemed_subscription(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    code = await make_promocode(database, now=clock(), usage_count=3)
    await subscribe(client, admin_auth, receiver, ["promocode.redeemed"])

    redeemed = await redeem(client, auth, code, "Ann@Example.com")
    assert await dispatcher.deliver_due() == 1

    [request] = receiver.requests
    assert request.headers["promos-event"] == "promocode.redeemed"
    assert signed(request, clock)
    assert event_of(request)["data"] == {
        "redemption_id": redeemed.json()["id"],
        "code": code,
        "customer": "ann@example.com",
        "uses_left": 2,
        "redeemed_at": clock().isoformat(),
    }


async def test_redeeming_without_a_subscription_writes_no_event(client, auth, database, clock):
    code = await make_promocode(database, now=clock())

    response = await redeem(client, auth, code)

    assert response.status_code == 201, response.text
    assert await outbox_types(database) == Counter()


async def test_a_retried_redemption_with_the_same_idempotency_key_emits_one_event(
    *, client, auth, admin_auth, database, clock, receiver
):
    code = await make_promocode(database, now=clock())
    await subscribe(client, admin_auth, receiver, ["promocode.redeemed"])

    first = await redeem(client, auth, code, key="order-1")
    again = await redeem(client, auth, code, key="order-1")

    assert first.json()["id"] == again.json()["id"]
    assert await outbox_types(database) == Counter({"promocode.redeemed": 1})


async def test_a_refused_redemption_emits_no_event(
    *, client, auth, admin_auth, database, clock, receiver
):
    code = await make_promocode(database, now=clock(), usage_count=1)
    await subscribe(client, admin_auth, receiver, ["promocode.redeemed"])
    await redeem(client, auth, code)

    used_up = await redeem(client, auth, code)

    assert used_up.status_code == 409
    assert await outbox_types(database) == Counter({"promocode.redeemed": 1})


async def test_a_rollback_is_delivered_as_promocode_redeem_rolled_back(
    *, client, auth, admin_auth, database, clock, receiver, dispatcher
):
    code = await make_promocode(database, now=clock(), usage_count=3)
    await subscribe(client, admin_auth, receiver, ["promocode.redeem_rolled_back"])
    redeemed = (await redeem(client, auth, code)).json()
    clock.advance(minutes=5)

    await client.post(f"/v1/redemptions/{redeemed['id']}/rollback", headers=auth)
    refused = await client.post(f"/v1/redemptions/{redeemed['id']}/rollback", headers=auth)
    assert await dispatcher.deliver_due() == 1

    assert refused.status_code == 409
    [request] = receiver.requests
    assert request.headers["promos-event"] == "promocode.redeem_rolled_back"
    assert event_of(request)["data"] == {
        "redemption_id": redeemed["id"],
        "code": code,
        "customer": "ann@example.com",
        "uses_left": 3,
        "redeemed_at": redeemed["redeemed_at"].replace("Z", "+00:00"),
        "rolled_back_at": clock().isoformat(),
        "use_given_back": True,
    }
    assert await outbox_types(database) == Counter({"promocode.redeem_rolled_back": 1})


# --- offer.claimed ---------------------------------------------------------------------------


async def test_a_claim_is_delivered_signed_to_an_offer_claimed_subscription(
    *, client, admin_auth, database, clock, receiver, dispatcher, offer_id
):
    await subscribe(client, admin_auth, receiver, ["offer.claimed"])

    claimed = await claim(client, offer_id, "tx-1")
    assert await dispatcher.deliver_due() == 1

    assert claimed.status_code == 200, claimed.text
    [request] = receiver.requests
    assert request.headers["promos-event"] == "offer.claimed"
    assert signed(request, clock)
    assert event_of(request)["data"] == {
        "game_id": GAME,
        "offer_id": str(offer_id),
        "offer_version": 1,
        "player_id": "p1",
        "transaction_id": "tx-1",
        "purchased_at": 1_772_366_400,
        "claimed_at": clock().isoformat(),
    }


async def test_claiming_without_a_subscription_writes_no_event(client, database, offer_id):
    response = await claim(client, offer_id, "tx-1")

    assert response.status_code == 200, response.text
    assert await outbox_types(database) == Counter()


async def test_a_subscription_made_after_claiming_without_one_gets_the_next_claims_event(
    client, admin_auth, database, receiver, offer_id
):
    await claim(client, offer_id, "tx-1")  # nobody wanted it: the lean statement next
    await subscribe(client, admin_auth, receiver, ["offer.claimed"])

    second = await claim(client, offer_id, "tx-2")

    assert second.status_code == 200, second.text
    events = await event_data(database, "offer.claimed")
    assert [e["transaction_id"] for e in events] == ["tx-2"]


async def test_a_replayed_claim_emits_no_second_event(
    client, admin_auth, database, receiver, offer_id
):
    await subscribe(client, admin_auth, receiver, ["offer.claimed"])

    first = await claim(client, offer_id, "tx-1")
    replayed = await claim(client, offer_id, "tx-1")

    assert (first.status_code, replayed.status_code) == (200, 409)
    assert await outbox_types(database) == Counter({"offer.claimed": 1})


async def test_an_impression_is_not_an_event(client, admin_auth, database, receiver, offer_id):
    await subscribe(client, admin_auth, receiver, ["*"])

    seen = await client.put(
        f"/offers/{offer_id}/impressions",
        json={"gameId": GAME, "playerId": "p1", "impressionId": str(uuid4())},
    )

    assert seen.status_code == 200, seen.text
    assert await outbox_types(database) == Counter()


# --- subscriptions -------------------------------------------------------------------------


async def test_a_subscription_to_an_unknown_event_type_is_refused(client, admin_auth, receiver):
    response = await client.post(
        "/v1/webhooks",
        json={"url": f"{receiver.url}/hooks", "events": ["code.isued"], "secret": SECRET},
        headers=admin_auth,
    )

    assert response.status_code == 422, response.text
    assert "code.issued" in response.text


# --- under real concurrency (PostgreSQL) ----------------------------------------------------

CONCURRENT = 40
SMALL_GROUPS = {"issue_batch_size": 2, "issue_concurrency": 8}
SMALL_CLAIM_GROUPS = {"offers_batch_size": 2, "offers_concurrency": 8}


async def warm(database: Database, connections: int) -> None:
    """Open the pool's connections up front, so that the requests race instead of queueing."""
    everyone_connected = asyncio.Barrier(connections)

    async def hold_one() -> None:
        async with database.engine.connect() as conn:
            await conn.execute(select(1))
            await everyone_connected.wait()

    await asyncio.wait_for(asyncio.gather(*(hold_one() for _ in range(connections))), timeout=10)


@pytest.mark.postgres_only
@pytest.mark.parametrize("tuning", [{}, SMALL_GROUPS], ids=["grouped", "small groups"])
async def test_concurrent_issues_write_exactly_one_event_per_code_handed_out(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=CONCURRENT - 10)
    await subscribe(client, admin_auth, receiver, ["code.issued"])
    await warm(database, 20)

    responses = await asyncio.gather(
        *(issue(client, auth, batch, customer(n)) for n in range(CONCURRENT))
    )

    handed = {r.json()["code"] for r in responses if r.status_code == 200}
    assert len(handed) == CONCURRENT - 10
    events = await event_data(database, "code.issued")
    assert sorted(e["code"] for e in events) == sorted(handed)
    assert await delivery_count(database) == CONCURRENT - 10


@pytest.mark.postgres_only
@pytest.mark.parametrize("tuning", [{}, SMALL_GROUPS], ids=["grouped", "small groups"])
async def test_concurrent_retries_with_one_idempotency_key_write_one_event(
    *, client, auth, admin_auth, database, clock, receiver
):
    batch = await make_batch(database, now=clock(), codes=5)
    await subscribe(client, admin_auth, receiver, ["code.issued"])
    await warm(database, 20)

    responses = await asyncio.gather(
        *(issue(client, auth, batch, CUSTOMER, key="order-1") for _ in range(20))
    )

    assert len({r.json()["code"] for r in responses}) == 1
    assert await outbox_types(database) == Counter({"code.issued": 1})


@pytest.mark.postgres_only
@pytest.mark.parametrize("tuning", [{}, SMALL_CLAIM_GROUPS], ids=["grouped", "small groups"])
async def test_concurrent_claims_write_exactly_one_event_per_claim(
    client, admin_auth, database, receiver, offer_id
):
    await subscribe(client, admin_auth, receiver, ["offer.claimed"])
    await warm(database, 20)

    responses = await asyncio.gather(
        *(claim(client, offer_id, f"tx-{n}", player=f"p{n % 4}") for n in range(CONCURRENT))
    )

    assert Counter(r.status_code for r in responses) == {200: CONCURRENT}
    events = await event_data(database, "offer.claimed")
    assert sorted(e["transaction_id"] for e in events) == sorted(
        f"tx-{n}" for n in range(CONCURRENT)
    )
    assert await delivery_count(database) == CONCURRENT


@pytest.mark.postgres_only
@pytest.mark.parametrize("tuning", [{}, SMALL_CLAIM_GROUPS], ids=["grouped", "small groups"])
async def test_concurrent_replays_of_one_claim_write_one_event(
    client, admin_auth, database, receiver, offer_id
):
    await subscribe(client, admin_auth, receiver, ["offer.claimed"])
    await warm(database, 20)

    responses = await asyncio.gather(*(claim(client, offer_id, "tx-once") for _ in range(20)))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    assert await outbox_types(database) == Counter({"offer.claimed": 1})


@pytest.mark.postgres_only
async def test_concurrent_redemptions_write_one_event_per_use_taken(
    *, client, auth, admin_auth, database, clock, receiver
):
    code = await make_promocode(database, now=clock(), usage_count=5)
    await subscribe(client, admin_auth, receiver, ["promocode.redeemed"])
    await warm(database, 20)

    responses = await asyncio.gather(
        *(redeem(client, auth, code, f"c{n}@example.com") for n in range(20))
    )

    taken = sorted(r.json()["id"] for r in responses if r.status_code == 201)
    assert len(taken) == 5
    events = await event_data(database, "promocode.redeemed")
    assert sorted(e["redemption_id"] for e in events) == taken
    assert sorted(e["uses_left"] for e in events) == [0, 1, 2, 3, 4]
