"""GET /metrics: who may scrape it, and that each metric appears and moves with what happened.

Counters are the process's own (shared by every test in it), so each test compares a scrape
after the action with one before it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

import httpx
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from promos.codes import service as codes
from promos.db import Database
from promos.events.dispatcher import Dispatcher, RetryPolicy
from promos.observability.metrics import HTTP_BUCKETS, RequestTimes
from promos.observability.scrape import exposition
from promos.promocodes import service as promocodes
from promos.settings import Settings
from tests._receiver import Receiver
from tests.conftest import FakeClock
from tests.factories.codes import CLIENT, add_client_codes, make_batch
from tests.factories.offers import make_game, make_offer
from tests.factories.promocodes import make_promocode
from tests.factories.referrals import make_program

OTHER_CLIENT = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")

METRICS_TOKEN = "scrape-token-0123456789abcdef"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ROUTE_X = {"route": "/x", "status": "200"}


@pytest.fixture
def settings(database_url: str, receiver: Receiver) -> Settings:
    return Settings(
        database_url=database_url,
        metrics_token=METRICS_TOKEN,
        webhook_dispatcher=False,  # the tests drive a dispatcher pass by pass
        referral_callback_url=f"{receiver.url}/billing/%s",
        webhook_secret="billing secret, sixteen or more",
    )


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200, response.text
    return parse(response.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests_of(samples: Samples, method: str, route: str, status: int) -> float:
    return value(
        samples,
        "promos_http_request_duration_seconds_count",
        method=method,
        route=route,
        status=str(status),
    )


# who may scrape


async def test_metrics_need_a_credential(client):
    assert (await client.get("/metrics")).status_code == 401


async def test_a_sales_credential_may_not_scrape(client, auth):
    response = await client.get("/metrics", headers=auth)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"


async def test_a_wrong_metrics_token_is_refused(client):
    response = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert response.status_code == 401


async def test_the_metrics_token_scrapes_in_prometheus_text_format(client):
    response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE promos_http_request_duration_seconds histogram" in response.text


async def test_an_admin_may_scrape(client, admin_auth):
    assert (await client.get("/metrics", headers=admin_auth)).status_code == 200


# requests


async def test_a_request_is_counted_under_its_route_template_and_status(client, auth):
    route = "/v1/batches/{batch_id}"
    before = await scrape(client)
    for _ in range(2):
        response = await client.get(f"/v1/batches/{uuid4()}", headers=auth)
        assert response.status_code == 404
    after = await scrape(client)

    assert requests_of(after, "GET", route, 404) - requests_of(before, "GET", route, 404) == 2
    sum_name = "promos_http_request_duration_seconds_sum"
    labels = {"method": "GET", "route": route, "status": "404"}
    assert value(after, sum_name, **labels) > value(before, sum_name, **labels)


async def test_a_fast_route_is_counted_under_its_path(client, auth, database, clock):
    batch = await make_batch(database, now=clock())
    body = {"batchid": str(batch.id), "clientid": str(CLIENT), "customerid": str(uuid4())}
    route = "/api/v1/code/redeem"
    before = await scrape(client)
    assert (await client.post(route, json=body, headers=auth)).status_code == 200
    after = await scrape(client)
    assert requests_of(after, "POST", route, 200) - requests_of(before, "POST", route, 200) == 1


async def test_a_path_no_route_matches_is_counted_as_unmatched_never_by_its_path(client):
    before = await scrape(client)
    assert (await client.get("/no/such/secret-path")).status_code == 404
    response = await client.get("/metrics", headers=SCRAPER)
    after = parse(response.text)

    unmatched = requests_of(after, "GET", "<unmatched>", 404)
    assert unmatched - requests_of(before, "GET", "<unmatched>", 404) == 1
    assert "secret-path" not in response.text


async def test_an_unknown_method_is_counted_as_other(client):
    before = await scrape(client)
    await client.request("BREW", "/healthcheck")
    after = await scrape(client)
    counted = sum(
        v - before.get(k, 0.0)
        for k, v in after.items()
        if k[0] == "promos_http_request_duration_seconds_count" and ("method", "OTHER") in k[1]
    )
    assert counted == 1


async def test_request_times_added_in_bulk_equal_those_observed_one_by_one():
    registry = CollectorRegistry()
    labels = ["method", "route", "status"]
    direct = Histogram("direct", "one by one", labels, buckets=HTTP_BUCKETS, registry=registry)
    bulk = Histogram("bulk", "in bulk", labels, buckets=HTTP_BUCKETS, registry=registry)
    times = RequestTimes(bulk)
    durations = [0.0, 0.001, 0.0011, 0.003, 0.003, 0.7, 10.0, 12.5]
    for seconds in durations:
        direct.labels("GET", "/x", "200").observe(seconds)
        times.observe("GET", "/x", 200, seconds)
    assert registry.get_sample_value("bulk_count", {"method": "GET"} | ROUTE_X) == 0
    times.flush()
    times.flush()  # nothing pending: nothing added twice

    def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
        [family] = [f for f in registry.collect() if f.name == name]
        return [(s.name.removeprefix(name), s.labels, s.value) for s in family.samples]

    assert samples("bulk") == samples("direct")


# what the services did


async def test_issued_codes_are_counted_once_and_a_replay_not_again(client, auth, database, clock):
    batch = await make_batch(database, now=clock())
    body = {"batchid": str(batch.id), "clientid": str(CLIENT), "customerid": str(uuid4())}
    before = await scrape(client)
    for _ in range(2):  # the second is a retry: the same code, not a new one
        response = await client.post(
            "/api/v1/code/redeem", json=body, headers={**auth, "Idempotency-Key": "k-1"}
        )
        assert response.status_code == 200
    after = await scrape(client)
    assert (
        value(after, "promos_codes_issued_total") - value(before, "promos_codes_issued_total") == 1
    )


async def test_a_confirmed_pool_code_hold_is_counted_as_issued_once(client, auth, database, clock):
    batch = await make_batch(database, now=clock())
    body = {"client_id": str(CLIENT), "customer_id": "customer-1", "order": "order-1"}
    held = await client.post(f"/v1/batches/{batch.id}/holds", json=body, headers=auth)
    before = await scrape(client)
    for _ in range(2):  # the second is the same confirm again: nothing new
        response = await client.post(
            f"/v1/pool-code-holds/{held.json()['id']}/confirm", headers=auth
        )
        assert response.status_code == 200
    after = await scrape(client)
    assert (
        value(after, "promos_codes_issued_total") - value(before, "promos_codes_issued_total") == 1
    )


async def test_codes_left_are_read_per_batch_at_scrape_time(client, auth, database, clock):
    batch = await make_batch(database, now=clock(), codes=3)
    empty = await make_batch(database, now=clock(), codes=0)
    expired = await make_batch(database, now=clock(), codes=2)
    async with database.begin() as conn:
        await codes.expire_batch(conn, expired.id)
    left = {"batch_id": str(batch.id), "client_id": str(CLIENT)}
    assert value(await scrape(client), "promos_pool_codes_left", **left) == 3

    body = {"batchid": str(batch.id), "clientid": str(CLIENT), "customerid": str(uuid4())}
    assert (await client.post("/api/v1/code/redeem", json=body, headers=auth)).status_code == 200
    after = await scrape(client)

    assert value(after, "promos_pool_codes_left", **left) == 2
    empty_labels = frozenset({"batch_id": str(empty.id), "client_id": str(CLIENT)}.items())
    assert after[("promos_pool_codes_left", empty_labels)] == 0
    assert not any(("batch_id", str(expired.id)) in labels for _, labels in after)


async def test_codes_left_are_read_per_client_of_a_batch_of_several(client, auth, database, clock):
    batch = await make_batch(database, now=clock(), codes=3)
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=1, prefix="B", now=clock()
    )
    body = {"batchid": str(batch.id), "clientid": str(OTHER_CLIENT), "customerid": str(uuid4())}
    assert (await client.post("/api/v1/code/redeem", json=body, headers=auth)).status_code == 200

    after = await scrape(client)

    mine = {"batch_id": str(batch.id), "client_id": str(CLIENT)}
    theirs = frozenset({"batch_id": str(batch.id), "client_id": str(OTHER_CLIENT)}.items())
    assert value(after, "promos_pool_codes_left", **mine) == 3
    assert after[("promos_pool_codes_left", theirs)] == 0


async def test_redeemed_promocodes_are_counted_once_and_a_replay_not_again(
    client, auth, database, clock
):
    code = await make_promocode(database, now=clock())
    use = {"customer": "user@example.com", "products": []}
    before = await scrape(client)
    for _ in range(2):
        response = await client.post(
            f"/v1/promocodes/{code}/redeem", json=use, headers={**auth, "Idempotency-Key": "r-1"}
        )
        assert response.status_code == 201, response.text
    after = await scrape(client)
    redeemed = "promos_promocodes_redeemed_total"
    assert value(after, redeemed) - value(before, redeemed) == 1


async def test_a_redemption_whose_transaction_rolls_back_is_not_counted(client, database, clock):
    code = await make_promocode(database, now=clock())
    before = await scrape(client)

    with pytest.raises(Undone):
        await redeem(database, code, clock(), then_fail=True)
    await redeem(database, code, clock(), then_fail=False)  # maybe on the same connection

    redeemed = "promos_promocodes_redeemed_total"
    assert value(await scrape(client), redeemed) - value(before, redeemed) == 1


class Undone(Exception):
    """Raised inside a transaction to roll it back."""


async def redeem(database: Database, code: str, now: datetime, *, then_fail: bool) -> None:
    async with database.begin() as conn:
        await promocodes.redeem(conn, code=code, customer=None, skus=None, now=now)
        if then_fail:
            raise Undone


async def test_offer_claims_are_counted_once_per_transaction_id(client, database, clock):
    game = await make_game(database, now=clock())
    offer = await make_offer(database, now=clock(), gameId=game.id)
    claim = {
        "id": str(offer.id),
        "gameId": game.id,
        "playerId": "player-1",
        "timestamp": int(clock().timestamp()),
        "transactionId": "tx-1",
    }
    before = await scrape(client)
    assert (await client.put("/offers/claim", json=claim)).status_code == 200
    assert (await client.put("/offers/claim", json=claim)).status_code == 409  # a replay
    after = await scrape(client)
    claims = "promos_offer_claims_total"
    assert value(after, claims) - value(before, claims) == 1


async def test_a_referral_reward_is_counted_once(client, auth, database, clock):
    await make_program(database, now=clock(), target_value=Decimal(20))
    register = {"user_indicator": "alice", "user_indicated": "bob"}
    assert (await client.post("/register/", json=register, headers=auth)).status_code == 201
    before = await scrape(client)
    for paid in (25, 30):  # the second invoice is past the target too: no second reward
        response = await client.put(
            "/invoice/user/bob/", json={"total_amount_paid": paid}, headers=auth
        )
        assert response.status_code == 200, response.text
    after = await scrape(client)
    rewards = "promos_referral_rewards_total"
    assert value(after, rewards) - value(before, rewards) == 1


# the outbox


@pytest.fixture
def dispatcher(database: Database, clock: FakeClock, settings: Settings) -> Dispatcher:
    assert settings.webhook_secret is not None
    return Dispatcher(
        database,
        clock=clock,
        callback_secret=settings.webhook_secret.get_secret_value(),
        policy=RetryPolicy(max_attempts=2, base_seconds=1, max_seconds=60),
        timeout_seconds=2,
    )


async def test_the_outbox_backlog_and_how_long_it_has_been_due(client, auth, database, clock):
    await make_program(database, now=clock())
    register = {"user_indicator": "alice", "user_indicated": "bob"}
    assert (await client.post("/register/", json=register, headers=auth)).status_code == 201
    clock.advance(seconds=30)

    samples = await scrape(client)

    assert value(samples, "promos_outbox_backlog", state="due") == 1  # the sign-up callback
    assert value(samples, "promos_outbox_oldest_due_seconds") == 30


async def test_delivery_failures_and_deliveries_given_up_are_counted(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    register = {"user_indicator": "alice", "user_indicated": "bob"}
    assert (await client.post("/register/", json=register, headers=auth)).status_code == 201
    receiver.status = 500
    before = await scrape(client)

    assert await dispatcher.deliver_due() == 1
    middle = await scrape(client)
    clock.advance(seconds=1)
    assert await dispatcher.deliver_due() == 1  # the last of its 2 attempts
    after = await scrape(client)

    failures, given_up = (
        "promos_webhook_delivery_failures_total",
        "promos_webhook_deliveries_given_up_total",
    )
    assert value(middle, failures) - value(before, failures) == 1
    assert value(middle, "promos_outbox_backlog", state="scheduled") == 1
    assert value(after, failures) - value(before, failures) == 2
    assert value(after, given_up) - value(before, given_up) == 1
    assert value(after, "promos_outbox_backlog", state="scheduled") == 0


async def test_accepted_deliveries_are_counted(
    *, client, auth, database, clock, receiver, dispatcher
):
    await make_program(database, now=clock())
    register = {"user_indicator": "alice", "user_indicated": "bob"}
    assert (await client.post("/register/", json=register, headers=auth)).status_code == 201
    before = await scrape(client)
    assert await dispatcher.deliver_due() == 1
    after = await scrape(client)
    delivered = "promos_webhook_deliveries_total"
    assert value(after, delivered) - value(before, delivered) == 1


# the database


async def test_the_pool_size_and_connections_in_use_are_reported(client, settings):
    samples = await scrape(client)
    # This app's pool is one of the process's (tests run several apps in one process).
    expected = 5 if settings.is_sqlite else settings.db_pool_size
    assert value(samples, "promos_db_pool_size") >= expected
    assert ("promos_db_pool_connections_in_use", frozenset()) in samples
    assert value(samples, "promos_database_up") == 1


async def test_a_connection_checked_out_is_counted_in_use(client, database):
    in_use = ("promos_db_pool_connections_in_use", frozenset())
    before = (await scrape(client))[in_use]
    async with database.engine.connect():  # checked out of the pool, no transaction begun
        held = (await scrape(client))[in_use]
    after = (await scrape(client))[in_use]
    assert held == before + 1
    assert after == before


async def test_a_scrape_without_the_database_still_answers_and_says_so(clock):
    unreachable = Database("postgresql+asyncpg://promos@127.0.0.1:9/nothing")
    try:
        samples = parse((await exposition(unreachable, now=clock())).decode())
    finally:
        await unreachable.dispose()
    assert value(samples, "promos_database_up") == 0
    assert ("promos_codes_issued_total", frozenset()) in samples
