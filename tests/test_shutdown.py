"""Graceful shutdown of a real ``promos serve``: SIGTERM under load loses no issued code.

On SIGTERM the server stops listening (new connections are refused, so that a proxy sends
them to another node), finishes the requests it has begun, drains the issuer, then exits.
Whatever it committed, a client was told in a 200; whatever a client was not told (a
connection error, a 503), it did not commit.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes.service import Batch
from promos.codes.tables import codes
from promos.db import Database
from tests._servers import Server, running_servers, server_env
from tests.factories.codes import CLIENT, make_batch

pytestmark = pytest.mark.postgres_only

REDEEM = "/api/v1/code/redeem"
IN_FLIGHT = 32  # concurrent requests, the whole time
PER_CALLER = 50  # each caller's most requests: the load is bounded whatever the server does
TERMINATE_AFTER = 100  # answered requests before SIGTERM: the server is warm and busy
POLL_SECONDS = 0.02
POLLS = 250  # 5 s at most for each condition waited for
EXIT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class Answer:
    """What one request came back with: a status and a code, or a connection error."""

    customer: UUID
    status: int | None  # None: a connection error (refused, or closed before any response)
    code: str | None
    after_refusal: bool  # answered once the server had stopped accepting connections


@dataclass(slots=True)
class Load:
    answers: list[Answer] = field(default_factory=list)
    warm: asyncio.Event = field(default_factory=asyncio.Event)  # TERMINATE_AFTER answers came
    refusing: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, customer: UUID, status: int | None, code: str | None = None) -> None:
        self.answers.append(Answer(customer, status, code, self.refusing.is_set()))
        if len(self.answers) >= TERMINATE_AFTER:
            self.warm.set()


@pytest.fixture(params=[1, 2], ids=["one worker", "two workers"])
def server(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Server]:
    """One ``promos serve`` (with 1 or 2 worker processes) on this test's PostgreSQL database."""
    env = server_env(database_url, PROMOS_WORKERS=str(request.param))
    with running_servers(1, env, tmp_path) as (started,):
        yield started


async def issue_until_refused(
    server: Server, auth: dict[str, str], batch: Batch, load: Load
) -> None:
    """Issue codes with IN_FLIGHT requests at once, each caller until its connection is refused
    (or PER_CALLER requests)."""

    async def caller(http: httpx.AsyncClient) -> None:
        for _ in range(PER_CALLER):
            customer = uuid4()
            body = {"batchid": str(batch.id), "clientid": str(CLIENT), "customerid": str(customer)}
            try:
                response = await http.post(REDEEM, json=body, headers=auth)
            except httpx.ConnectError:
                load.record(customer, None)
                return
            except httpx.TransportError:
                # An idle keep-alive connection closed under a new request: it was never read.
                load.record(customer, None)
                continue
            ok = response.status_code == 200
            load.record(customer, response.status_code, response.json()["code"] if ok else None)

    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=20) as http:
        await asyncio.gather(*(caller(http) for _ in range(IN_FLIGHT)))


async def terminate_mid_issue(server: Server, database: Database, load: Load) -> None:
    """SIGTERM the server while it holds issue requests between their arrival and their commit.

    A table lock holds the issuing statements back; it is released once the server refuses
    new connections, so that those requests are answered during the shutdown.
    """
    await load.warm.wait()
    async with database.begin() as conn:
        await conn.execute(text("LOCK TABLE codes IN EXCLUSIVE MODE"))
        await poll(
            lambda: issuing_blocked(conn, citus=bool(database.citus)),
            "no issuing statement waited for the lock",
        )
        server.process.send_signal(signal.SIGTERM)
        await poll(lambda: refuses_connections(server), "the server still accepts connections")
        load.refusing.set()


async def poll(condition: Callable[[], Awaitable[bool]], failure: str) -> None:
    """Wait until ``condition`` holds, for POLLS * POLL_SECONDS at most."""
    for _ in range(POLLS):
        if await condition():
            return
        await asyncio.sleep(POLL_SECONDS)
    pytest.fail(failure)


async def issuing_blocked(conn: AsyncConnection, *, citus: bool) -> bool:
    """Whether an issuing statement waits for the lock (on Citus, the lock reaches the workers,
    and the issuing call, delegated there, waits on its worker: citus_stat_activity sees it)."""
    waiting = await conn.execute(
        text(
            "SELECT count(*) FROM citus_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if citus
        else text(
            "SELECT count(*) FROM pg_locks WHERE relation = 'codes'::regclass AND NOT granted"
        )
    )
    return bool(waiting.scalar_one())


async def refuses_connections(server: Server) -> bool:
    address = urlsplit(server.url)
    try:
        _, writer = await asyncio.open_connection(address.hostname, address.port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def issued_in_db(database: Database, batch: Batch) -> dict[str, UUID]:
    async with database.begin() as conn:
        rows = await conn.execute(
            select(codes.c.code, codes.c.customer_id).where(
                codes.c.batch_id == batch.id, codes.c.issued_at.is_not(None)
            )
        )
        return {row.code: UUID(row.customer_id) for row in rows}


async def test_sigterm_under_load_loses_no_issued_code(server, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=IN_FLIGHT * PER_CALLER + 100)
    load = Load()

    await asyncio.gather(
        issue_until_refused(server, auth, batch, load),
        terminate_mid_issue(server, database, load),
    )
    returncode = server.process.wait(timeout=EXIT_SECONDS)

    answers = load.answers
    assert {a.status for a in answers} <= {200, 503, None}, {a.status for a in answers}
    told = {a.code: a.customer for a in answers if a.status == 200}
    assert len(told) == sum(a.status == 200 for a in answers), "a code was handed out twice"
    # Every code the database holds as issued reached its customer, and nothing else was issued.
    assert await issued_in_db(database, batch) == told
    # The requests held at SIGTERM were answered after the server had stopped listening.
    assert any(a.status == 200 and a.after_refusal for a in answers)
    # uvicorn exits by re-raising SIGTERM once it has shut down; its supervisor exits with 0.
    assert returncode in {0, -signal.SIGTERM}, server.log.read_text(errors="replace")
