"""Rate limits: 429 with an exact Retry-After over the limit, and recovery once it has passed.

Every HTTP test runs with the counters in this process and in Redis (PROMOS_TEST_REDIS_URL, a
key prefix of its own, deleted afterwards; without a Redis, the in-process variants still run).
Time moves with the FakeClock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from promos.brands import service as brands
from promos.http.ratelimit import client_key
from promos.ratelimit import MemoryStore, Rate, RedisStore
from promos.settings import Settings
from tests.factories.auth import make_user
from tests.factories.offers import make_game

# Windows of a minute or more: Redis expires a key in real time once its TAT has passed,
# and a test must not lose its count to that while the FakeClock stands still.
LIMITS: dict[str, Any] = {
    "rate_limit_public": 3,
    "rate_limit_public_window_seconds": 60,
    "rate_limit_offers": 2,
    "rate_limit_offers_window_seconds": 60,
    "rate_limit_signin_per_client": 3,
    "rate_limit_signin_per_login": 2,
    "rate_limit_signin_window_seconds": 300,
}
PASSWORD = "the right password"

both_paths = pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "fastapi"])


# `-m "not redis"` leaves the Redis variants out (`make test-quick`).
@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The Redis URL of a ``redis`` variant; None for ``memory``, which needs no Redis."""
    return str(request.getfixturevalue("redis_url")) if backend == "redis" else None


@pytest.fixture
async def redis_prefix(redis: str | None) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"promos-test:{uuid.uuid4().hex}:"
    yield prefix
    if redis is None:
        return
    client = Redis.from_url(redis)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test changes besides ``LIMITS``."""
    return {}


@pytest.fixture
def settings(
    database_url: str,
    fast_path: bool,
    redis: str | None,
    redis_prefix: str,
    overrides: dict[str, Any],
) -> Settings:
    return Settings(
        database_url=database_url,
        fast_path=fast_path,
        redis_url=redis,
        rate_limit_prefix=redis_prefix,
        **{**LIMITS, **overrides},
    )


def client_from(app: FastAPI, address: str) -> httpx.AsyncClient:
    """A client whose requests come from ``address``."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 4321))
    return httpx.AsyncClient(transport=transport, base_url="http://promos.test")


def too_many(response: httpx.Response) -> int:
    """Assert a 429; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    return int(response.headers["retry-after"])


async def lookups(client: httpx.AsyncClient, count: int) -> list[int]:
    return [(await client.get("/promocodes/getbycode/NOPE")).status_code for _ in range(count)]


# --- public routes -------------------------------------------------------------------------


async def test_public_lookups_over_the_limit_get_429_in_the_promos_shape(client):
    assert await lookups(client, 3) == [400, 400, 400]
    response = await client.get("/promocodes/getbycode/NOPE")
    assert too_many(response) == 20  # 3 per 60 s: the next one in 20 s
    assert response.json() == {
        "error": "too many requests from this address: retry in 20 s",
        "status": 429,
    }


async def test_public_limit_lets_a_request_through_after_retry_after(client, clock):
    await lookups(client, 3)
    wait = too_many(await client.get("/promocodes/getbycode/NOPE"))
    clock.advance(seconds=wait - 1)
    assert too_many(await client.get("/promocodes/getbycode/NOPE")) == 1
    clock.advance(seconds=1)
    assert await lookups(client, 1) == [400]
    too_many(await client.get("/promocodes/getbycode/NOPE"))


async def test_public_limit_is_whole_again_after_the_window(client, clock):
    await lookups(client, 3)
    too_many(await client.get("/promocodes/getbycode/NOPE"))
    clock.advance(seconds=60)
    assert await lookups(client, 3) == [400, 400, 400]


async def test_public_routes_share_one_limit_per_client_address(client, app):
    assert (await client.get("/special/SKU-1")).status_code == 400
    assert (await client.get("/api/upgrade-program")).status_code == 200
    assert (await client.get("/api/promocodes/getbycode/NOPE")).status_code == 400
    too_many(await client.get("/upgrade-program"))
    async with client_from(app, "203.0.113.9") as other:
        assert await lookups(other, 3) == [400, 400, 400]


@pytest.mark.parametrize("overrides", [{"rate_limit_public": 0}])
async def test_a_public_limit_of_zero_limits_nothing(client):
    assert set(await lookups(client, 20)) == {400}


async def test_routes_with_a_credential_are_not_limited_as_public(client, auth):
    statuses = [(await client.get("/promocodes/get", headers=auth)).status_code for _ in range(6)]
    assert statuses == [200] * 6


# --- Offers player routes ------------------------------------------------------------------


def player_requests() -> list[tuple[str, str, dict[str, Any] | None]]:
    offer_id = uuid.uuid4()
    return [
        ("GET", "/available-offers?player-id=p1&game-id=galaxy", None),
        ("GET", f"/offer-info?player-id=p1&game-id=galaxy&offer-id={offer_id}", None),
        (
            "PUT",
            "/offers/claim",
            {
                "gameId": "galaxy",
                "playerId": "p1",
                "id": str(offer_id),
                "timestamp": 1,
                "transactionId": "t-1",
            },
        ),
        (
            "PUT",
            f"/offers/{offer_id}/impressions",
            {"gameId": "galaxy", "playerId": "p1", "impressionId": str(uuid.uuid4())},
        ),
    ]


@both_paths
@pytest.mark.parametrize("route", range(4), ids=["available", "info", "claim", "impressions"])
async def test_offers_player_routes_over_the_limit_get_429_in_the_offers_shape(
    client, database, clock, route
):
    await make_game(database, now=clock())
    method, url, body = player_requests()[route]
    for _ in range(2):
        assert (await client.request(method, url, json=body)).status_code != 429
    response = await client.request(method, url, json=body)
    assert too_many(response) == 30
    assert response.json() == {
        "error": "TooManyRequestsError",
        "code": "OFF-010",
        "description": "too many requests from this address: retry in 30 s",
    }


@both_paths
async def test_offers_player_routes_recover_after_retry_after(client, database, clock):
    await make_game(database, now=clock())
    url = "/available-offers?player-id=p1&game-id=galaxy"
    assert [(await client.get(url)).status_code for _ in range(2)] == [200, 200]
    clock.advance(seconds=too_many(await client.get(url)))
    assert (await client.get(url)).status_code == 200


def test_offers_player_routes_are_not_limited_by_default():
    assert Settings.model_fields["rate_limit_offers"].default == 0


@both_paths
@pytest.mark.parametrize("overrides", [{"rate_limit_offers": 0}])
async def test_an_offers_limit_of_zero_limits_nothing(client, database, clock):
    await make_game(database, now=clock())
    url = "/available-offers?player-id=p1&game-id=galaxy"
    assert {(await client.get(url)).status_code for _ in range(20)} == {200}


# --- sign-in -------------------------------------------------------------------------------


async def sign_in(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/tokens", json={"login": login, "password": password})


async def test_failed_sign_ins_are_limited_per_login_from_any_address(app, database, clock):
    await make_user(database, now=clock(), username="sally", password=PASSWORD)
    async with (
        client_from(app, "198.51.100.1") as first,
        client_from(app, "198.51.100.2") as second,
    ):
        assert (await sign_in(first, "sally", "guess-1")).status_code == 401
        assert (await sign_in(second, "sally", "guess-2")).status_code == 401
        response = await sign_in(second, "sally", "guess-3")
        assert too_many(response) == 150  # 2 per 300 s
        assert response.json()["error"]["code"] == "too_many_requests"
        assert response.json()["error"]["details"] == {"retry_after": 150}
        assert (await sign_in(second, "somebody-else", "guess")).status_code == 401


async def test_failed_sign_ins_are_limited_per_client_address(app, database, clock):
    async with client_from(app, "198.51.100.1") as attacker:
        for n in range(3):
            assert (await sign_in(attacker, f"user-{n}", "guess")).status_code == 401
        assert too_many(await sign_in(attacker, "user-5", "guess")) == 100  # 3 per 300 s
    async with client_from(app, "198.51.100.2") as other:
        assert (await sign_in(other, "user-5", "guess")).status_code == 401


async def test_the_right_password_waits_too_once_a_login_is_limited(client, database, clock):
    await make_user(database, now=clock(), username="sally", password=PASSWORD)
    await sign_in(client, "sally", "guess-1")
    await sign_in(client, "sally", "guess-2")
    wait = too_many(await sign_in(client, "sally", PASSWORD))
    clock.advance(seconds=wait)
    assert (await sign_in(client, "sally", PASSWORD)).status_code == 201


async def test_successful_sign_ins_are_not_counted(client, database, clock):
    await make_user(database, now=clock(), username="sally", password=PASSWORD)
    statuses = [(await sign_in(client, "sally", PASSWORD)).status_code for _ in range(3)]
    assert statuses == [201] * 3
    assert (await sign_in(client, "sally", "guess-1")).status_code == 401


async def test_concurrent_wrong_guesses_are_counted_before_any_of_them_fails(
    client, database, clock
):
    await make_user(database, now=clock(), username="sally", password=PASSWORD)
    guesses = [sign_in(client, "sally", f"guess-{n}") for n in range(6)]
    statuses = sorted(r.status_code for r in await asyncio.gather(*guesses))
    assert statuses == [401, 401, 429, 429, 429, 429]


async def test_concurrent_right_sign_ins_of_one_login_all_pass(client, database, clock, state):
    await make_user(database, now=clock(), username="sally", password=PASSWORD)
    responses = await asyncio.gather(*(sign_in(client, "sally", PASSWORD) for _ in range(4)))
    assert [r.status_code for r in responses] == [201] * 4
    assert len(state.limits._turns) == 0  # nothing kept once nobody waits


async def test_promos_signin_over_the_limit_gets_429_in_the_promos_shape(client):
    for prefix in ("", "/api"):
        response = await client.post(f"{prefix}/signin", json={"login": "x", "password": "guess"})
        assert response.status_code == 401
    response = await client.post("/signin", json={"login": "x", "password": "guess"})
    assert too_many(response) == 150
    assert response.json() == {"error": "too many sign-in attempts: retry in 150 s", "status": 429}


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": httpx.BasicAuth(login, password)._auth_header}


async def test_wrong_basic_passwords_count_as_failed_sign_ins(client, database, clock):
    await make_user(database, now=clock(), username="sally", password=PASSWORD)
    assert (await client.get("/v1/auth/me", headers=basic("sally", "guess-1"))).status_code == 401
    assert (await sign_in(client, "sally", "guess-2")).status_code == 401
    response = await client.get("/v1/auth/me", headers=basic("sally", PASSWORD))
    assert too_many(response) == 150
    assert response.json()["error"]["code"] == "too_many_requests"


async def test_wrong_brand_user_secrets_are_limited_per_user(client, database, clock):
    async with database.begin() as conn:
        await brands.create_brand_user(conn, user_id="42", secret="a-secret-0123456", now=clock())
    url = "/discounts/api/v1.0/get_code/42/{}/2"
    assert (await client.get(url.format("guess-1"))).status_code == 401
    assert (await client.get(url.format("guess-2"))).status_code == 401
    response = await client.get(url.format("a-secret-0123456"))
    assert too_many(response) == 150
    assert response.json()["code"] == "429"


# --- where the client is ---------------------------------------------------------------------


async def test_a_trusted_proxy_names_the_client_in_x_forwarded_for(app):
    # What uvicorn does with proxy_headers=True and PROMOS_FORWARDED_ALLOW_IPS=127.0.0.1.
    proxied = ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")
    transport = httpx.ASGITransport(app=proxied, client=("127.0.0.1", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as proxy:

        async def lookup(client: str) -> int:
            headers = {"X-Forwarded-For": client}
            return (await proxy.get("/promocodes/getbycode/NOPE", headers=headers)).status_code

        assert [await lookup("192.0.2.1") for _ in range(4)] == [400, 400, 400, 429]
        assert await lookup("192.0.2.2") == 400


def test_ipv6_clients_count_by_their_64_network():
    assert client_key({"client": ("2001:db8:1:2:aaaa::1", 1)}) == "2001:db8:1:2::/64"
    assert client_key({"client": ("2001:db8:1:2:bbbb::2", 1)}) == "2001:db8:1:2::/64"
    assert client_key({"client": ("::ffff:192.0.2.7", 1)}) == "192.0.2.7"
    assert client_key({"client": ("192.0.2.7", 1)}) == "192.0.2.7"


# --- the stores ------------------------------------------------------------------------------

SECOND = 1_000_000


@pytest.fixture
async def store(redis: str | None, redis_prefix: str) -> AsyncIterator[MemoryStore | RedisStore]:
    found = (
        MemoryStore(max_keys=1000)
        if redis is None
        else RedisStore(redis, prefix=redis_prefix, fallback=MemoryStore(max_keys=1000))
    )
    yield found
    await found.close()


async def test_a_wait_is_exact_to_the_microsecond(store):
    rate = Rate(3, 10)  # one every 3.333333 s once three have passed
    now = 1_772_366_400 * SECOND
    for _ in range(3):
        assert await store.hit(["k"], [rate], now) == 0
    assert await store.hit(["k"], [rate], now) == 3_333_333
    assert await store.hit(["k"], [rate], now + 3_333_332) == 1
    assert await store.hit(["k"], [rate], now + 3_333_333) == 0


async def test_several_keys_are_counted_all_or_not_at_all(store):
    loose, tight = Rate(10, 10), Rate(1, 10)
    now = 1_772_366_400 * SECOND
    assert await store.hit(["a", "b"], [loose, tight], now) == 0
    assert await store.hit(["a", "b"], [loose, tight], now) == 10 * SECOND
    # "a" counted one request only: nine more pass.
    assert [await store.hit(["a"], [loose], now) for _ in range(10)] == [0] * 9 + [SECOND]


async def test_a_refund_takes_one_request_back(store):
    rate = Rate(2, 10)
    now = 1_772_366_400 * SECOND
    assert await store.hit(["k"], [rate], now) == 0
    assert await store.hit(["k"], [rate], now) == 0
    await store.refund(["k"], [rate], now)
    assert await store.hit(["k"], [rate], now) == 0
    assert await store.hit(["k"], [rate], now) > 0


def test_the_memory_store_stays_under_its_cap():
    memory = MemoryStore(max_keys=100)
    rate = Rate(5, 60)
    now = 1_772_366_400 * SECOND
    for n in range(1000):
        memory.hit_one(f"client-{n}", rate, now)
    assert len(memory) <= 100
    assert memory.hit_one("client-999", rate, now) == 0  # the newest keys are kept


def test_the_memory_store_forgets_keys_whose_time_has_passed_first():
    memory = MemoryStore(max_keys=100)
    rate = Rate(1, 60)
    now = 1_772_366_400 * SECOND
    for n in range(20):
        memory.hit_one(f"old-{n}", rate, now)
    later = now + 120 * SECOND
    for n in range(80):
        memory.hit_one(f"client-{n}", rate, later)
    memory.hit_one("one-more", rate, later)
    # The old keys had passed and made room; every live key kept its count.
    assert len(memory) == 81
    assert all(memory.hit_one(f"client-{n}", rate, later) > 0 for n in range(80))


async def test_a_failing_redis_limits_in_process_and_warns(database_url, clock, caplog):
    from promos.app import create_app  # noqa: PLC0415 - an app of its own, with these settings

    settings = Settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0", **LIMITS)
    app = create_app(settings, clock=clock)
    caplog.set_level(logging.WARNING, logger="promos.ratelimit")
    async with app.router.lifespan_context(app), client_from(app, "127.0.0.1") as client:
        assert await lookups(client, 3) == [400, 400, 400]
        too_many(await client.get("/promocodes/getbycode/NOPE"))
    warnings = [r for r in caplog.records if r.name.startswith("promos.ratelimit")]
    assert len(warnings) == 1  # and Redis left alone meanwhile, not tried on every request
    assert "Redis failed" in warnings[0].getMessage()
