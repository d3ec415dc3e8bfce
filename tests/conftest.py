"""Every test runs on SQLite and on PostgreSQL (mandatory when CI=true).

PostgreSQL: one fresh database per run, migrated once, emptied before each test.
SQLite: one migrated file per run, copied for each test.
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
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from promos import migrate
from promos.app import create_app
from promos.db import Database
from promos.settings import Settings
from promos.state import AppState
from promos.tables import metadata
from tests._receiver import Receiver
from tests.factories.auth import make_api_key, make_user

PG_URL = os.environ.get("PROMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A fresh, migrated PostgreSQL database for this run, or None where none is reachable."""
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
        if IN_CI:
            pytest.fail(f"PostgreSQL is mandatory in CI and unreachable at {PG_URL}: {exc}")
        yield None
        return
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


def _empty_postgres(url: str) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)

    async def truncate() -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(url))
        try:
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_url: str | None,
) -> str:
    """The URL of an empty, migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "promos.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    if postgres_url is None:
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}")
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
