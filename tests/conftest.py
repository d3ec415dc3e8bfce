"""Every test runs on SQLite and on PostgreSQL; the rate-limit tests also on Redis.

PostgreSQL: one fresh database per run, migrated once, emptied before each test.
SQLite: one migrated file per run, copied for each test.
Without a reachable PostgreSQL or Redis, the tests that need it are skipped (one line in the
summary for each); with CI=true both are mandatory and such tests fail instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher, profiles
from fastapi import FastAPI
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from promos import migrate
from promos.app import create_app
from promos.auth import service as auth_service
from promos.db import Database
from promos.settings import Settings
from promos.state import AppState
from promos.tables import metadata
from tests import _citus
from tests._receiver import Receiver
from tests.factories.auth import make_api_key, make_user

PG_URL = os.environ.get("PROMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# A Citus coordinator: when set, the PostgreSQL variants run on a database of the cluster
# (tests/_citus.py), and a cluster missing or without Citus fails them instead of skipping.
CITUS_URL = os.environ.get("PROMOS_TEST_CITUS_URL", "")
REDIS_URL = os.environ.get("PROMOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...: `make test` runs pytest -n


class FakeClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def _migrate(url: str) -> None:
    database = Database(url)
    try:
        await migrate.upgrade(database.engine)
    finally:
        await database.dispose()


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of real concurrency run on PostgreSQL only: their SQLite variant is not collected."""
    keep, drop = [], []
    for item in items:
        on_sqlite = "[sqlite" in item.nodeid or "-sqlite" in item.nodeid
        (drop if on_sqlite and item.get_closest_marker("postgres_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True, scope="session")
def no_default_database_of_the_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Whatever a test leaves unconfigured, never the user's own database: the default one
    (``$XDG_DATA_HOME/promos/promos.db``) is in this run's temporary directory, for the
    commands run in-process and the servers started as processes alike."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
        yield


@pytest.fixture(autouse=True)
def one_concurrency_test_at_a_time(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Under pytest-xdist, a test of real concurrency (``postgres_only``) waits until no other
    worker runs one: each holds up to 30 pooled connections, or starts servers with pools of
    their own, and PostgreSQL's 100 connections are for every worker's tests at once.

    A file lock in the run's own temporary directory, shared by its workers; taken before any
    other function-scoped fixture (autouse, defined here), released after all of them.
    """
    if request.node.get_closest_marker("postgres_only") is None or not XDIST_WORKER:
        yield
        return
    lock = tmp_path_factory.getbasetemp().parent / "postgres_concurrency.lock"
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2 at its cheapest: at the default cost every user a test makes, and every password
    it checks, takes about 0.2 s of CPU. What is stored and checked stays argon2id."""
    default = auth_service.use_password_hasher(PasswordHasher.from_parameters(profiles.CHEAPEST))
    yield
    auth_service.use_password_hasher(default)


class ServiceMissing(pytest.skip.Exception):
    """The skip of a test whose PostgreSQL or Redis is not there."""


def _unreachable(service: str, url: str, variable: str, tests: str, exc: Exception) -> None:
    """Fail where the service is mandatory (CI); elsewhere skip the test, for a reason that the
    summary shows on one line however many tests it skips (``pytest_runtest_makereport``)."""
    where = f"{make_url(url).render_as_string(hide_password=True)} ({variable})"
    if IN_CI:
        pytest.fail(f"{service} is mandatory in CI and unreachable at {where}: {exc}")
    raise ServiceMissing(f"{service} is not reachable at {where}: {tests} are skipped")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A skip for a missing service is reported at one place, so that `-ra` folds them all into
    one line (pytest puts a fixture's skip at each test's own line)."""
    report: pytest.TestReport = yield
    if call.excinfo is not None and call.excinfo.errisinstance(ServiceMissing):
        assert isinstance(report.longrepr, tuple)
        reason = call.excinfo.value.msg
        report.longrepr = (__file__, _unreachable.__code__.co_firstlineno, f"Skipped: {reason}")
    return report


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this run (this worker); on the Citus
    cluster, distributed, when PROMOS_TEST_CITUS_URL is set."""
    if CITUS_URL:
        yield from _citus_database()
        return
    admin_dsn = _asyncpg_dsn(PG_URL)
    name = f"promos_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError) as exc:
        _unreachable(
            "PostgreSQL",
            PG_URL,
            "PROMOS_TEST_POSTGRES_URL",
            "the PostgreSQL variants of the tests",
            exc,
        )
    url = str(
        make_url(admin_dsn)
        .set(database=name, drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )
    asyncio.run(_migrate(url))
    yield url

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def _citus_database() -> Iterator[str]:
    """The run's database on the Citus cluster: migrated, then distributed. Set and
    unreachable (or without Citus), the tests fail: never a silent skip."""
    admin_dsn = _citus.dsn(CITUS_URL)
    name = f"promos_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_citus.create(admin_dsn, name))
    except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
        where = make_url(CITUS_URL).render_as_string(hide_password=True)
        pytest.fail(f"no Citus cluster at {where} (PROMOS_TEST_CITUS_URL): {exc}")
    url = str(
        make_url(admin_dsn)
        .set(database=name, drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )
    try:
        asyncio.run(_migrate(url))
        asyncio.run(_citus.distribute(url))
        yield url
    finally:
        asyncio.run(_citus.drop(admin_dsn, name))


@pytest.fixture(scope="session")
def citus_url(request: pytest.FixtureRequest) -> str:
    """The run's distributed database; without PROMOS_TEST_CITUS_URL the Citus tests are
    skipped (one line), in CI too: CI cannot build Citus."""
    if not CITUS_URL:
        raise ServiceMissing(
            "PROMOS_TEST_CITUS_URL is not set: the tests of Promos on Citus are skipped"
        )
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis of the rate-limit tests; each test keeps its keys under a prefix of its own."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except RedisError as exc:
        variants = "the Redis variants of the rate-limit tests"
        _unreachable("Redis", REDIS_URL, "PROMOS_TEST_REDIS_URL", variants, exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


# Every row deleted, children first, and every sequence used set back to its start: what
# `TRUNCATE ... RESTART IDENTITY` does, at a few ms instead of 0.2-0.4 s (a TRUNCATE gives each
# of the tables new files, whether it holds a row or not). One round trip.
_RESTART_SEQUENCES = (
    "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, false)"
    " FROM pg_sequences WHERE last_value IS NOT NULL"
)
_EMPTY_POSTGRES = ";\n".join(
    [
        # The names are those of Promos's own tables.
        *(f'DELETE FROM "{table.name}"' for table in reversed(metadata.sorted_tables)),  # noqa: S608
        _RESTART_SEQUENCES,
    ]
)


def _empty_postgres(url: str) -> None:
    async def empty() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(url))
        try:
            # On Citus, one transaction may not write a reference table after writing a
            # distributed one's shards in parallel: sequentially, it may.
            sequential = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential';\n"
            await conn.execute((sequential if CITUS_URL else "") + _EMPTY_POSTGRES)
        finally:
            await conn.close()

    asyncio.run(empty())


# `-m "not postgres"` leaves the PostgreSQL variants out (`make test-quick`).
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """The URL of an empty, migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "promos.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    # Asked for here only: a run of the SQLite variants alone never looks for PostgreSQL.
    postgres_url: str = request.getfixturevalue("postgres_url")
    _empty_postgres(postgres_url)
    return postgres_url


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver for webhooks, on 127.0.0.1 (tests/_receiver.py)."""
    receiving = Receiver()
    await receiving.start()
    yield receiving
    await receiving.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def fast_path() -> bool:
    """Whether the hot routes take the lean ASGI path; ``both_paths`` tests run both ways."""
    return True


@pytest.fixture
def settings(database_url: str, fast_path: bool) -> Settings:
    return Settings(
        database_url=database_url, db_pool_size=20, db_max_overflow=10, fast_path=fast_path
    )


@pytest.fixture
async def app(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def state(app: FastAPI) -> AppState:
    promos_state: AppState = app.state.promos
    return promos_state


@pytest.fixture
def database(state: AppState) -> Database:
    return state.database


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # A 500 is a response to assert on, not an exception out of the test client.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
        yield http


@pytest.fixture
async def api_key(database: Database, clock: FakeClock) -> str:
    """The secret of a sales API key."""
    return await make_api_key(database, now=clock())


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    """Headers that authenticate as a sales service."""
    return {"Authorization": f"Bearer {api_key}"}


ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture
async def admin_auth(database: Database, clock: FakeClock) -> dict[str, str]:
    """HTTP Basic headers of an admin user."""
    user = await make_user(
        database, username="root", password=ADMIN_PASSWORD, role="admin", now=clock()
    )
    return {"Authorization": httpx.BasicAuth(user.username, ADMIN_PASSWORD)._auth_header}
