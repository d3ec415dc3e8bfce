"""Upgrading a database that holds data, on both backends: the code pools'
0009_batch_clients, and the promo codes' 0015_promocode_holds (and 0021, returns).

Each test migrates an empty database to the revision before, writes what Promos wrote then
(clients, batches, codes, some of them issued), upgrades every head as ``promos migrate``
does, and checks what the data has become and that Promos serves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.engine import make_url

from promos import migrate
from promos.app import create_app
from promos.auth.service import digest
from promos.auth.tables import api_keys
from promos.codes.tables import batch_clients, batches, clients, codes
from promos.db import Database
from promos.offers import service as offer_service
from promos.offers.tables import games, offers
from promos.promocodes.tables import promocode_generations, promocode_redemptions, promocodes
from promos.settings import Settings
from tests.conftest import PG_URL, FakeClock
from tests.factories.auth import make_api_key

OWNER = UUID("217be7c8-679c-4e08-bffc-db3451bdcdbf")
OTHER = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")
BEFORE = "0001"  # the codes tables' revision before 0009_batch_clients
THEN = datetime(2026, 11, 1, tzinfo=UTC)


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def unmigrated_postgres(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of this module's own, never migrated by a fixture."""
    # postgres_url: skipped (or failed, in CI) as every PostgreSQL test is without a server.
    server = make_url(PG_URL).set(drivername="postgresql", database="postgres")
    dsn = server.render_as_string(hide_password=False)
    name = f"promos_upgrade_{uuid4().hex[:12]}"
    asyncio.run(_execute(dsn, f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_execute(dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database with no schema at all, of each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    dsn: str = request.getfixturevalue("unmigrated_postgres")
    asyncio.run(_execute(dsn, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    return str(
        make_url(dsn).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    )


@dataclass(frozen=True)
class Old:
    """The batches a database held before the upgrade."""

    with_codes: UUID = field(default_factory=uuid4)
    without_codes: UUID = field(default_factory=uuid4)


@pytest.fixture
async def old(empty_url: str) -> AsyncIterator[Old]:
    """A database at the revision before, holding two batches of OWNER's: one with four codes
    (the first two issued), one without codes; then upgraded to every head."""
    database = Database(empty_url)
    data = Old()
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, BEFORE)
            await conn.execute(clients.insert().values(id=OWNER, created_at=THEN))
            await conn.execute(
                batches.insert(),
                [
                    {"id": b, "client_id": OWNER, "name": n, "expired": False, "created_at": THEN}
                    for b, n in ((data.with_codes, "Summer"), (data.without_codes, "Empty"))
                ],
            )
            await conn.execute(
                codes.insert(),
                [
                    {
                        "client_id": OWNER,
                        "code": f"OLD-{n}",
                        "batch_id": data.with_codes,
                        "seq": n + 1,
                        "customer_id": f"customer-{n}" if n < 2 else None,
                        "issued_at": THEN if n < 2 else None,
                    }
                    for n in range(4)
                ],
            )
        await migrate.upgrade(database.engine)
        yield data
    finally:
        await database.dispose()


def _upgrade_to(connection: Connection, revision: str) -> None:
    command.upgrade(migrate.alembic_config(connection), revision)


@pytest.fixture
async def client(empty_url: str, old: Old) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """Promos on the upgraded database, and a sales API key's secret."""
    clock = FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    app = create_app(Settings(database_url=empty_url), clock=clock)
    async with app.router.lifespan_context(app):
        secret = await make_api_key(app.state.promos.database, now=clock())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            yield http, secret


async def test_the_upgrade_lists_each_batchs_own_client_with_codes_or_without(empty_url, old):
    database = Database(empty_url)
    try:
        async with database.begin() as conn:
            rows = (await conn.execute(select(batch_clients))).all()
    finally:
        await database.dispose()

    assert sorted((r.batch_id, r.client_id) for r in rows) == sorted(
        [(old.with_codes, OWNER), (old.without_codes, OWNER)]
    )


async def test_the_upgrade_puts_the_client_in_the_index_of_free_codes(empty_url, old):
    database = Database(empty_url)
    try:
        async with database.engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes("codes"))
    finally:
        await database.dispose()

    [free] = [i for i in indexes if i["name"] == "ix_codes_free"]
    assert free["column_names"] == ["batch_id", "client_id", "seq"]


async def test_after_the_upgrade_the_free_codes_are_issued_in_order(client, old):
    http, secret = client
    auth = {"Authorization": f"Bearer {secret}"}
    body = {"batchid": str(old.with_codes), "clientid": str(OWNER)}

    handed = [
        await http.post(
            "/api/v1/code/redeem", json={**body, "customerid": str(uuid4())}, headers=auth
        )
        for _ in range(3)
    ]

    assert [r.json() for r in handed] == [
        {"code": "OLD-2"},
        {"code": "OLD-3"},
        {"error": f"batch {old.with_codes} has no codes left for client {OWNER}"},
    ]


async def test_after_the_upgrade_a_batch_takes_codes_of_another_client(client, old):
    http, secret = client
    auth = {"Authorization": f"Bearer {secret}"}
    upload = {"file": ("codes.csv", f"client_id,code\n{OTHER},NEW-1\n".encode(), "text/csv")}

    added = await http.post(f"/v1/batches/{old.without_codes}/codes", files=upload, headers=auth)
    issued = await http.post(
        f"/v1/batches/{old.without_codes}/issues",
        json={"client_id": str(OTHER), "customer_id": "customer-9"},
        headers=auth,
    )

    assert added.status_code == 201, added.text
    assert issued.json()["code"] == "NEW-1"


# --- 0013_offer_console: the version each offer was at is kept -------------------------------


async def test_the_offer_console_upgrade_keeps_the_version_each_offer_is_at(empty_url):
    database = Database(empty_url)
    offer_id, key = uuid4(), uuid4()
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0012")
            await conn.execute(
                games.insert().values(
                    id="galaxy", name="Galaxy", metadata={}, created_at=THEN, updated_at=THEN
                )
            )
            await conn.execute(
                offers.insert().values(
                    game_id="galaxy", id=offer_id, key=key, version=3, name="Gems",
                    product_id="gems", cost=None, contents={"gems": 5}, metadata={},
                    placement="store", period_every="", period_max=1, frequency_every="",
                    frequency_max=1, trigger_from=0, trigger_to=10, enabled=True, filters={},
                    created_at=THEN, updated_at=THEN,
                )
            )  # fmt: skip
        await migrate.upgrade(database.engine)
        async with database.begin() as conn:
            kept_versions = offer_service.offer_versions_of(
                conn, game_id="galaxy", offer_id=offer_id
            )
            [kept] = await kept_versions
    finally:
        await database.dispose()

    assert (kept.version, kept.key, kept.spec.name, kept.created_at) == (3, key, "Gems", THEN)


# 0015_promocode_holds


HOLDS_BEFORE = "0012"  # the promo code tables' revision before 0015_promocode_holds


@pytest.fixture
async def upgraded(empty_url: str) -> AsyncIterator[str]:
    """A database at 0012 holding code OLD-1 (3 uses) with two redemptions, then upgraded."""
    database = Database(empty_url)
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, HOLDS_BEFORE)
            generation_id = (
                await conn.execute(
                    promocode_generations.insert()
                    .values(
                        pattern="OLD-1",
                        charset="A",
                        count=1,
                        discount_percentage=Decimal(10),
                        usage_count=3,
                        created_at=THEN,
                    )
                    .returning(promocode_generations.c.id)
                )
            ).scalar_one()
            code_id = (
                await conn.execute(
                    promocodes.insert()
                    .values(code="OLD-1", generation_id=generation_id, usage_count=1)
                    .returning(promocodes.c.id)
                )
            ).scalar_one()
            await conn.execute(
                promocode_redemptions.insert(),
                [
                    {"promocode_id": code_id, "customer": f"c{n}@example.com", "redeemed_at": THEN}
                    for n in range(2)
                ],
            )
        await migrate.upgrade(database.engine)
    finally:
        await database.dispose()
    return empty_url


@dataclass(frozen=True)
class Served:
    http: httpx.AsyncClient
    auth: dict[str, str]
    database: Database


@pytest.fixture
async def served(upgraded: str) -> AsyncIterator[Served]:
    """Promos on the upgraded database, with a sales API key."""
    clock = FakeClock(datetime(2026, 12, 1, tzinfo=UTC))
    app = create_app(Settings(database_url=upgraded), clock=clock)
    async with app.router.lifespan_context(app):
        database = app.state.promos.database
        auth = {"Authorization": f"Bearer {await make_api_key(database, now=clock())}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            yield Served(http, auth, database)


async def test_a_hold_after_the_upgrade_keeps_an_id_above_the_old_redemptions(served):
    body = {"customer": "new@example.com", "order": "o-1", "products": []}
    held = await served.http.post("/v1/promocodes/OLD-1/holds", json=body, headers=served.auth)
    confirmed = await served.http.post(
        f"/v1/promocode-holds/{held.json()['id']}/confirm", headers=served.auth
    )

    async with served.database.begin() as conn:
        rows = (
            await conn.execute(
                select(promocode_redemptions.c.id, promocode_redemptions.c.order_ref).order_by(
                    promocode_redemptions.c.id
                )
            )
        ).all()
    assert held.status_code == 201, held.text
    assert confirmed.status_code == 200, confirmed.text
    assert [tuple(r) for r in rows] == [(1, None), (2, None), (3, "o-1")]
    assert confirmed.json()["id"] == held.json()["id"] == 3


async def test_after_the_upgrade_an_old_redemption_rolled_back_gives_its_use_back(served):
    undone = await served.http.post("/v1/redemptions/1/rollback", headers=served.auth)

    assert undone.status_code == 200, undone.text
    assert undone.json()["use_given_back"] is True
    assert undone.json()["usage_count"] == 2


async def test_after_the_upgrade_an_old_redemption_has_no_cart_and_its_returns_leave_it_standing(
    served,
):
    """0021 (returns): a redemption made before has no cart: a return is recorded, the use
    stands until it is rolled back."""
    returned = await served.http.post(
        "/v1/redemptions/1/returns", json={"products": ["SKU-1"]}, headers=served.auth
    )

    assert returned.status_code == 200, returned.text
    assert (returned.json()["products"], returned.json()["returned"]) == ([], ["SKU-1"])
    assert returned.json()["use_stands"] is True
    assert returned.json()["redemption"]["usage_count"] == 1


async def test_a_key_made_before_scopes_keeps_every_scope_of_its_role(empty_url):
    """0017 (API keys' scopes): a key without scope rows holds what its role holds."""
    database = Database(empty_url)
    secret = "pk_made-before-scopes"
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0012")
            await conn.execute(
                api_keys.insert().values(
                    name="old",
                    prefix=secret[:10],
                    digest=digest(secret),
                    role="sales",
                    created_at=THEN,
                )
            )
        await migrate.upgrade(database.engine)
    finally:
        await database.dispose()
    app = create_app(Settings(database_url=empty_url), clock=FakeClock(THEN))
    headers = {"Authorization": f"Bearer {secret}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            assert (await http.get("/v1/promocodes", headers=headers)).status_code == 200
            assert (await http.get("/v1/games", headers=headers)).status_code == 200
            refused = await http.get("/v1/audit", headers=headers)
            assert refused.json()["error"]["code"] == "admin_required"


# --- 0020_pool_code_holds ----------------------------------------------------------------------


async def test_after_the_upgrade_an_old_batch_holds_a_code_and_burns_it_when_released(client, old):
    http, secret = client
    auth = {"Authorization": f"Bearer {secret}"}
    body = {"client_id": str(OWNER), "customer_id": "customer-9", "order": "order-1"}

    held = await http.post(f"/v1/batches/{old.with_codes}/holds", json=body, headers=auth)
    released = await http.post(f"/v1/pool-code-holds/{held.json()['id']}/release", headers=auth)

    assert held.json()["code"] == "OLD-2"
    assert released.json()["returned"] is False


async def test_the_pool_holds_migration_downgrades_and_upgrades_again(empty_url, old):
    database = Database(empty_url)
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "0020-1"))
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("batches"))
        await migrate.upgrade(database.engine)
        async with database.engine.connect() as conn:
            again = await conn.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await database.dispose()

    assert "pool_code_holds" not in tables
    assert "return_released_codes" not in {c["name"] for c in columns}
    assert "pool_code_holds" in again


# --- 0023: the client in the keys of the quota and Idempotency-Key lock rows -----------------


async def test_a_customers_issues_before_0023_still_count_toward_the_rule(empty_url):
    database = Database(empty_url)
    batch_id = uuid4()
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "0010_pool_counts")
            await conn.execute(clients.insert().values(id=OWNER, created_at=THEN))
            await conn.execute(
                batches.insert().values(
                    id=batch_id,
                    client_id=OWNER,
                    name="One each",
                    max_per_customer=1,
                    expired=False,
                    created_at=THEN,
                )
            )
            await conn.execute(
                codes.insert(),
                [
                    {
                        "client_id": OWNER,
                        "code": f"RULE-{n}",
                        "batch_id": batch_id,
                        "seq": n + 1,
                        "customer_id": "ann" if n == 0 else None,
                        "issued_at": THEN if n == 0 else None,
                    }
                    for n in range(2)
                ],
            )
            if conn.dialect.name == "postgresql":  # PostgreSQL counts on the quota rows
                await conn.execute(
                    text(
                        "INSERT INTO customer_quotas (batch_id, customer_id, issued) "
                        "VALUES (:batch_id, 'ann', ARRAY[CAST(:then AS timestamptz)])"
                    ),
                    {"batch_id": batch_id, "then": THEN},
                )
        await migrate.upgrade(database.engine)
    finally:
        await database.dispose()
    app = create_app(Settings(database_url=empty_url), clock=FakeClock(THEN))
    async with app.router.lifespan_context(app):
        secret = await make_api_key(app.state.promos.database, now=THEN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            again = await http.post(
                f"/v1/batches/{batch_id}/issues",
                json={"client_id": str(OWNER), "customer_id": "ann"},
                headers={"Authorization": f"Bearer {secret}"},
            )

    assert again.status_code == 403, again.text
    assert again.json()["error"]["code"] == "customer_limit_reached"


# --- 0028: the bulk tables without a per-row check of their parent, on PostgreSQL -------------


def _parents(c: Connection) -> dict[str, list[str]]:
    return {
        table: sorted(key["referred_table"] for key in inspect(c).get_foreign_keys(table))
        for table in ("codes", "promocodes")
    }


async def test_codes_and_promo_codes_keep_a_key_to_their_parent_on_sqlite_alone(empty_url):
    database = Database(empty_url)
    try:
        await migrate.upgrade(database.engine)
        async with database.engine.connect() as conn:
            parents = await conn.run_sync(_parents)
    finally:
        await database.dispose()

    if empty_url.startswith("sqlite"):
        assert parents == {"codes": ["batches"], "promocodes": ["promocode_generations"]}
    else:
        assert parents == {"codes": [], "promocodes": []}


async def test_downgrading_0028_makes_the_keys_to_the_parents_again(empty_url):
    database = Database(empty_url)
    try:
        await migrate.upgrade(database.engine)
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "0028-1"))
            parents = await conn.run_sync(_parents)
    finally:
        await database.dispose()

    assert parents == {"codes": ["batches"], "promocodes": ["promocode_generations"]}
