"""Players' histories read on asyncpg itself (``DriverReads``, PostgreSQL) are the ones that
SQLAlchemy reads: the same rows, the same Python values."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from sqlalchemy import text

from promos.db import Database
from promos.offers import service
from promos.offers.counting import ClaimAsk, Counter, SeenAsk
from tests.factories.offers import make_game, make_offer

pytestmark = pytest.mark.postgres_only


async def test_histories_read_on_the_driver_equal_those_read_through_sqlalchemy(database, clock):
    await make_game(database, now=clock())
    first = await make_offer(database, now=clock(), productId="first")
    second = await make_offer(database, now=clock(), productId="second")
    counter = Counter(database)
    at = int(clock().timestamp())
    await counter.claim(ClaimAsk(first, "ann", "t-1", at, clock()))
    clock.advance(seconds=90)
    await counter.claim(ClaimAsk(first, "ann", "t-2", at + 90, clock()))
    await counter.see(SeenAsk(second, "ann", uuid4(), clock()))
    await counter.see(SeenAsk(first, "bob", uuid4(), clock()))
    players = ["ann", "bob", "nobody"]

    assert database.reads is not None
    on_driver = await service.player_histories(database.reads, game_id="galaxy", player_ids=players)
    async with database.begin() as conn:
        through_sqlalchemy = await service.player_histories(
            conn, game_id="galaxy", player_ids=players
        )

    assert on_driver == through_sqlalchemy
    assert set(on_driver["ann"]) == {first.id, second.id}
    assert on_driver["ann"][first.id].claim_count == 2
    assert on_driver["ann"][first.id].last_claim_at == clock()
    assert on_driver["ann"][second.id].impression_count == 1
    assert on_driver["nobody"] == {}


async def test_driver_reads_use_at_most_their_size_of_connections(database_url):
    database = Database(database_url, driver_reads=2)
    assert database.reads is not None
    try:
        ten_at_once = [
            service.player_histories(database.reads, game_id="galaxy", player_ids=[f"p{n}"])
            for n in range(10)
        ]
        assert await asyncio.gather(*ten_at_once) == [{f"p{n}": {}} for n in range(10)]
        assert database.reads.connections == 2
    finally:
        await database.dispose()
    assert database.reads.connections == 0


def test_sqlite_has_no_driver_reads(tmp_path):
    assert Database(f"sqlite+aiosqlite:///{tmp_path / 'promos.db'}").reads is None


async def test_a_transaction_checking_tells_whether_its_check_found_a_row(database):
    assert database.statements is not None
    found = []
    for check in ("SELECT 1 WHERE false", "SELECT 1"):
        async with database.statements.transaction_checking(check) as (_, wanted):
            found.append(wanted)
    assert found == [False, True]


async def test_a_transaction_checking_commits_its_statements(database, clock):
    assert database.statements is not None
    async with database.statements.transaction_checking("SELECT 1") as (fetch, _):
        await fetch(
            text(
                "INSERT INTO games (id, name, metadata, revision, created_at, "
                "updated_at) VALUES ('kept', 'Kept', '{}', 0, :now, :now)"
            ),
            {"now": clock()},
        )
    async with database.begin() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM games WHERE id = 'kept'")) == 1


async def test_a_transaction_checking_that_fails_is_rolled_back_and_its_connection_reused(
    database_url, clock
):
    database = Database(database_url, driver_statements=1)
    assert database.statements is not None
    try:
        with pytest.raises(RuntimeError):
            await _insert_then_fail(database, clock)
        async with database.statements.transaction_checking("SELECT 1") as (fetch, _):
            rows = await fetch(text("SELECT count(*) AS n FROM games WHERE id = 'gone'"), {})
        assert rows[0].n == 0  # undone: not seen by the next transaction on that connection
        assert database.statements.connections == 1
    finally:
        await database.dispose()


async def _insert_then_fail(database, clock) -> None:
    async with database.statements.transaction_checking("SELECT 1") as (fetch, _):
        await fetch(
            text(
                "INSERT INTO games (id, name, metadata, revision, created_at, updated_at) "
                "VALUES ('gone', 'Gone', '{}', 0, :now, :now)"
            ),
            {"now": clock()},
        )
        raise RuntimeError("the use case failed")
