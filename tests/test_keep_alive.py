"""A 500 is answered on a kept-alive connection, and the connection serves the next request.

On a real ``promos serve``: uvicorn closes a connection when the app raises after its
response (as Starlette's own handler for ``Exception`` does), and a pooled client's next,
unrelated request on it then fails with a reset. The failure is a real one: a table the route
reads is renamed away for the one request, then back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from promos.db import Database
from tests._servers import Server, running_servers, server_env
from tests.factories.auth import make_api_key
from tests.factories.offers import make_game, make_offer


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    with running_servers(1, server_env(database_url), tmp_path) as (started,):
        yield started


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The server's database, for the test's own set-up (not an app of the test's)."""
    opened = Database(database_url, pool_size=1, max_overflow=0)
    yield opened
    await opened.dispose()


@asynccontextmanager
async def renamed_away(database: Database, table: str) -> AsyncIterator[None]:
    async with database.begin() as conn:
        await conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        async with database.begin() as conn:
            await conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def connection_of(response: httpx.Response) -> object:
    """The client's own address of the connection that carried ``response``."""
    return response.extensions["network_stream"].get_extra_info("client_addr")


async def a_500_then_a_healthcheck(
    server: Server, database: Database, table: str, method: str, path: str, **kw: object
) -> tuple[httpx.Response, httpx.Response]:
    one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=server.url, limits=one_connection, timeout=10) as http:
        async with renamed_away(database, table):
            failed = await http.request(method, path, **kw)  # type: ignore[arg-type]
        first = connection_of(failed)
        ordinary = await http.get("/healthcheck")
        assert connection_of(ordinary) == first
    assert failed.status_code == 500, failed.text
    assert ordinary.status_code == 200, ordinary.text
    return failed, ordinary


def logged_errors(server: Server) -> list[str]:
    return [
        line
        for line in server.log.read_text(errors="replace").splitlines()
        if "unhandled error" in line or "Exception in ASGI application" in line
    ]


async def test_a_500_of_a_framework_route_keeps_its_connection_for_the_next_request(
    server, database
):
    key = await make_api_key(database, now=datetime.now(UTC))

    failed, _ = await a_500_then_a_healthcheck(
        server, database, "batches", "GET", "/v1/batches", headers={"X-API-Key": key}
    )

    assert failed.json() == {
        "error": {"code": "internal", "message": "internal server error", "details": None}
    }
    [logged] = logged_errors(server)
    assert "unhandled error on GET /v1/batches" in logged


async def test_a_500_of_a_fast_route_keeps_its_connection_for_the_next_request(server, database):
    now = datetime.now(UTC)
    await make_game(database, now=now)
    offer = await make_offer(database, now=now)
    claim = {
        "gameId": "galaxy",
        "playerId": "ann",
        "id": str(offer.id),
        "timestamp": int(time.time()),
        "transactionId": "tx-1",
    }

    failed, _ = await a_500_then_a_healthcheck(
        server, database, "offer_players", "PUT", "/offers/claim", json=claim
    )

    assert failed.json() == {
        "error": "InternalError",
        "code": "OFF-009",
        "description": "internal server error",
    }
    [logged] = logged_errors(server)
    assert "unhandled error on PUT /offers/claim" in logged
