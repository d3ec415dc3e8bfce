"""While the database is unavailable, every route that needs it answers 503 with Retry-After,
in the error shape of the API that was called, whether the failure comes in authenticating
(the credential cache cold) or in the route's own work (warm); and once it is back, the next
requests succeed.

The outage is real (``tests/_outage.py``): on PostgreSQL the connections to the test's own
database are reset and new ones refused; on SQLite the database file cannot be opened.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from promos.brands import service as brands
from promos.db import Database, DatabaseUnavailable, outage_cause
from promos.settings import Settings
from tests._outage import FileGone, Outage, Relay
from tests.factories.auth import make_api_key
from tests.factories.codes import CLIENT, make_batch
from tests.factories.offers import make_game, make_offer
from tests.factories.promocodes import make_promocode
from tests.factories.referrals import make_program

BRAND_USER, BRAND_SECRET = "2341", "brand-user-secret-for-outages"
PLAYER, GAME = "ann", "galaxy"


@pytest.fixture
async def outage(database_url: str, tmp_path: Path) -> AsyncIterator[Outage]:
    found: Outage
    if database_url.startswith("sqlite"):
        folder = tmp_path / "data"
        folder.mkdir()
        shutil.move(make_url(database_url).database or "", folder / "promos.db")
        found = FileGone(folder)
    else:
        relay = Relay(database_url)
        await relay.start()
        found = relay
    yield found
    await found.close()


@pytest.fixture
def settings(outage: Outage, fast_path: bool) -> Settings:
    """The app reaches its database through the outage's URL (conftest's app uses these)."""
    return Settings(
        database_url=outage.url,
        db_pool_size=4,
        db_max_overflow=0,
        fast_path=fast_path,
        webhook_dispatcher=False,
    )


@dataclass(frozen=True, slots=True)
class DatabaseOutage:
    """The outage of the app's own database, begun and ended by the test."""

    outage: Outage
    database: Database

    async def begin(self) -> None:
        await self.outage.begin(self.database)

    async def end(self) -> None:
        await self.outage.end()


@pytest.fixture
def down(outage: Outage, database: Database) -> DatabaseOutage:
    return DatabaseOutage(outage, database)


@dataclass(frozen=True, slots=True)
class World:
    """What the routes work on, made before the outage."""

    batch_id: str
    promocode: str
    offer_id: str


@pytest.fixture
async def world(database: Database, clock) -> World:
    batch = await make_batch(database, now=clock(), codes=5)
    promocode = await make_promocode(database, now=clock())
    async with database.begin() as conn:
        await brands.create_brand_user(conn, user_id=BRAND_USER, secret=BRAND_SECRET, now=clock())
    await make_game(database, now=clock(), game_id=GAME)
    offer = await make_offer(database, now=clock(), gameId=GAME)
    await make_program(database, now=clock())
    return World(str(batch.id), promocode, str(offer.id))


@pytest.fixture
async def cold_auth(database: Database, clock) -> dict[str, str]:
    """A credential the app has never checked: its first check needs the database."""
    return {"Authorization": f"Bearer {await make_api_key(database, now=clock())}"}


# Each API's error body, as its seed (or the native API) documents it.
def native(body: Any) -> bool:
    return set(body) == {"error"} and body["error"]["code"] == "unavailable"


def error_only(body: Any) -> bool:  # Ango, referral
    return set(body) == {"error"} and isinstance(body["error"], str) and bool(body["error"])


def promos_shape(body: Any) -> bool:
    return set(body) == {"error", "status"} and body["status"] == 503


def envelope(body: Any) -> bool:  # discount generator
    return body == {**body, "code": "503", "data": "", "status": "error"} and len(body) == 4


def offers_shape(body: Any) -> bool:
    return set(body) == {"error", "code", "description"} and body["code"] == "OFF-000"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    shape: Callable[[Any], bool]
    body: Callable[[World], dict[str, Any]] | None = None

    def request(self, client: httpx.AsyncClient, world: World, headers: dict[str, str]) -> Any:
        path = self.path.format(
            batch=world.batch_id, promocode=world.promocode, offer=world.offer_id
        )
        json = self.body(world) if self.body is not None else None
        return client.request(self.method, path, json=json, headers=headers)


def redeem(world: World) -> dict[str, Any]:
    return {"batchid": world.batch_id, "clientid": str(CLIENT), "customerid": str(uuid4())}


def claim(world: World) -> dict[str, Any]:
    return {
        "gameId": GAME,
        "playerId": PLAYER,
        "id": world.offer_id,
        "timestamp": 1_772_366_400,
        "transactionId": str(uuid4()),
    }


def seen(_: World) -> dict[str, Any]:
    return {"gameId": GAME, "playerId": PLAYER, "impressionId": str(uuid4())}


USE = {"customer": "ann@example.com", "products": []}
GET_CODE = f"/discounts/api/v1.0/get_code/{BRAND_USER}/{BRAND_SECRET}/2"

WITH_A_CREDENTIAL = {
    "native list": Route("GET", "/v1/batches", native),
    "native issue": Route(
        "POST",
        "/v1/batches/{batch}/issues",
        native,
        lambda _: {"client_id": str(CLIENT), "customer_id": "c-1"},
    ),
    # An export reads its first rows before it answers: a 503, not a stream cut after its header.
    "native promo code export": Route("GET", "/v1/promocodes.csv", native),
    "native redemption export": Route("GET", "/v1/redemptions.csv", native),
    # The promo codes' checkout routes: lean endpoints, one statement on asyncpg (PostgreSQL).
    "native promo code redeem": Route(
        "POST", "/v1/promocodes/{promocode}/redeem", native, lambda _: dict(USE)
    ),
    "native promo code hold": Route(
        "POST", "/v1/promocodes/{promocode}/holds", native, lambda _: {**USE, "order": "o-1"}
    ),
    "native hold confirm": Route("POST", "/v1/promocode-holds/1/confirm", native),
    "ango redeem": Route("POST", "/api/v1/code/redeem", error_only, redeem),
    "ango batches": Route("GET", "/api/v1/batches", error_only),
    "promos list": Route("GET", "/api/promocodes/get", promos_shape),
    "discounts generate": Route(
        "POST",
        "/discounts/api/v1.0/generate",
        envelope,
        lambda _: {"brand_id": 2, "number_of_codes": 3},
    ),
    "referral programs": Route("GET", "/program/", error_only),
    "offers games": Route("GET", "/games", offers_shape),
}
PUBLIC = {
    "promos by code": Route("GET", "/promocodes/getbycode/{promocode}", promos_shape),
    "promos sign-in": Route(
        "POST", "/signin", promos_shape, lambda _: {"login": "ann", "password": "secret"}
    ),
    "discounts get_code": Route("GET", GET_CODE, envelope),
    "offers available": Route(
        "GET", f"/available-offers?player-id={PLAYER}&game-id={GAME}", offers_shape
    ),
    "offers claim": Route("PUT", "/offers/claim", offers_shape, claim),
    "offers impression": Route("PUT", "/offers/{offer}/impressions", offers_shape, seen),
}
both_paths = pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "fastapi"])


def unavailable(response: httpx.Response, route: Route) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert route.shape(response.json()), response.json()


@both_paths
@pytest.mark.parametrize("name", list(WITH_A_CREDENTIAL))
async def test_a_route_with_a_warm_credential_answers_503_during_an_outage(
    client, world, auth, down, name
):
    route = WITH_A_CREDENTIAL[name]
    assert (await client.get("/v1/auth/me", headers=auth)).status_code == 200  # cached now

    await down.begin()
    response = await route.request(client, world, auth)

    unavailable(response, route)


@both_paths
@pytest.mark.parametrize("name", list(WITH_A_CREDENTIAL))
async def test_a_route_whose_credential_is_not_cached_answers_503_during_an_outage(
    client, world, cold_auth, down, name
):
    route = WITH_A_CREDENTIAL[name]

    await down.begin()
    response = await route.request(client, world, cold_auth)

    unavailable(response, route)


@both_paths
@pytest.mark.parametrize("name", list(PUBLIC))
async def test_a_public_route_answers_503_during_an_outage(client, world, down, name):
    route = PUBLIC[name]

    await down.begin()
    response = await route.request(client, world, {})

    unavailable(response, route)


async def test_an_upload_answers_503_in_its_shape_when_its_credential_cannot_be_checked(
    client, cold_auth, down
):
    await down.begin()
    response = await client.post(
        "/api/v1/codes/upload",
        files={"file": ("codes.csv", b"client_id,code\n", "text/csv")},
        data={"batch_name": "outage"},
        headers=cold_auth,
    )

    unavailable(response, Route("POST", "/api/v1/codes/upload", error_only))


async def test_the_healthcheck_answers_500_in_the_offers_shape_during_an_outage(client, down):
    await down.begin()
    response = await client.get("/healthcheck")

    assert response.status_code == 500
    body = response.json()
    assert body["healthy"] is False
    assert (body["error"], body["code"]) == ("DatabaseError", "OFF-000")


@both_paths
async def test_requests_succeed_again_once_the_database_is_back(client, world, auth, down):
    redeeming = WITH_A_CREDENTIAL["ango redeem"]
    claiming = PUBLIC["offers claim"]
    using = WITH_A_CREDENTIAL["native promo code redeem"]
    # Its connections (the lean path's, on PostgreSQL) open before the outage cuts them.
    assert (await using.request(client, world, auth)).status_code == 201
    await down.begin()
    assert (await redeeming.request(client, world, auth)).status_code == 503
    assert (await claiming.request(client, world, {})).status_code == 503
    assert (await using.request(client, world, auth)).status_code == 503

    await down.end()

    assert (await redeeming.request(client, world, auth)).status_code == 200
    assert (await claiming.request(client, world, {})).status_code == 200
    assert (await using.request(client, world, auth)).status_code == 201
    assert (await client.get(f"/promocodes/getbycode/{world.promocode}")).status_code == 200


async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    client, world, auth, down, caplog
):
    route = WITH_A_CREDENTIAL["native list"]
    with caplog.at_level("WARNING", logger="promos.db"):
        await down.begin()
        for _ in range(3):
            assert (await route.request(client, world, auth)).status_code == 503
        await down.end()
        assert (await route.request(client, world, auth)).status_code == 200

    messages = [r.getMessage() for r in caplog.records if r.name == "promos.db"]
    assert len(messages) == 2, messages
    assert messages[0].startswith("database unavailable (")
    assert messages[1].startswith("database available again after ")


async def terminate_other_backends(database_url: str) -> int:
    """pg_terminate_backend on every other connection to this test's own database."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        terminated: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return terminated


@pytest.mark.postgres_only
async def test_connections_postgresql_terminated_answer_503_and_the_next_request_succeeds(
    client, database_url, world, auth
):
    route = WITH_A_CREDENTIAL["native list"]
    assert (await route.request(client, world, auth)).status_code == 200
    assert await terminate_other_backends(database_url) >= 1

    first = await route.request(client, world, auth)
    second = await route.request(client, world, auth)

    unavailable(first, route)
    assert second.status_code == 200, second.text


def _internal_error(message: str) -> asyncpg.PostgresError:
    return asyncpg.exceptions.InternalServerError.new({"S": "ERROR", "C": "XX000", "M": message})


def test_a_citus_worker_lost_mid_transaction_is_an_outage():
    lost = _internal_error("failure on connection marked as essential: 127.0.0.1:9702")

    assert outage_cause(lost) is lost


def test_a_connection_the_server_ended_mid_operation_is_an_outage():
    # What asyncpg raises on a pooled connection that PostgreSQL's restart ended while an
    # operation was in progress (seen under deploy/faults.py: a redeem answered 500).
    broken = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )

    assert outage_cause(broken) is broken


def test_another_internal_error_is_not_an_outage():
    assert outage_cause(_internal_error("cache lookup failed for relation 16384")) is None


async def test_what_the_database_is_stays_unknown_while_it_is_unreachable():
    database = Database("postgresql+asyncpg://postgres@127.0.0.1:1/promos")
    try:
        with pytest.raises(DatabaseUnavailable):
            await database.detect_engine()
        assert database.citus is None
    finally:
        await database.dispose()
