"""Promos on a Citus cluster (PROMOS_TEST_CITUS_URL): the tables placed as promos.citus says,
and every hot statement routed to one shard (Citus' plan: one task, on one worker).

Without PROMOS_TEST_CITUS_URL these are skipped with one line; the rest of the suite's
PostgreSQL variants then run on plain PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from promos import citus
from promos.codes import holds
from promos.codes.errors import CustomerLimitReached
from promos.codes.issue import _TAKE_CITUS, _TAKE_DELEGATED, issue_codes_citus_lean
from promos.codes.service import IssuedCode, IssueRequest, Rules
from promos.db import Database
from promos.events import service as events_service
from promos.events.outbox import postgresql_wanted_check
from promos.events.tables import outbox
from promos.events.types import OFFER_CLAIMED
from promos.offers.counting import (
    _CLAIMS_CITUS,
    _CLAIMS_DELEGATED,
    _IMPRESSIONS,
    _IMPRESSIONS_DELEGATED,
    ClaimAsk,
    Counter,
    SeenAsk,
)
from promos.offers.service import Offer
from tests import _citus
from tests.conftest import FakeClock
from tests.factories.codes import CLIENT, add_client_codes, make_batch
from tests.factories.offers import make_game, make_offer

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture(autouse=True)
def on_citus(citus_url: str) -> str:
    """Skipped, with one line, unless PROMOS_TEST_CITUS_URL names a cluster."""
    return citus_url


async def plan(conn: AsyncConnection, statement: TextClause, params: dict[str, Any]) -> str:
    """Citus' plan of ``statement`` with these values bound (as the app sends it)."""
    # The statement's own typed parameters, for EXPLAIN of the same text.
    explain = text(f"EXPLAIN {statement.text}").bindparams(*statement._bindparams.values())
    return "\n".join(row[0] for row in await conn.execute(explain, params))


def assert_one_shard(found: str, coordinator_port: int) -> None:
    """Every step of the plan one task, every task on one worker. Citus plans a statement
    whose CTEs insert from a SELECT as steps (subplans) run in turn, in one transaction; the
    last one, which only joins the steps' results, runs on the coordinator."""
    assert "Custom Scan (Citus" in found, found
    counts = re.findall(r"Task Count: (\d+)", found)
    assert counts, found
    assert set(counts) == {"1"}, found
    ports = {int(port) for port in re.findall(r"Node: host=\S+ port=(\d+)", found)}
    assert len(ports - {coordinator_port}) == 1, found


async def test_the_app_knows_at_start_up_that_it_runs_on_citus(database: Database) -> None:
    assert database.citus


async def test_every_table_is_placed_as_promos_citus_says(database: Database) -> None:
    async with database.begin() as conn:
        found = await citus.placed(conn)
    assert found == {
        **dict.fromkeys(citus.REFERENCE_TABLES, "reference"),
        **{d.table: "distributed" for d in citus.DISTRIBUTED_TABLES},
    }


def coordinator(url: str) -> int:
    return make_url(url).port or 5432


async def test_issuing_codes_runs_on_the_clients_shard(
    database: Database, clock: FakeClock, citus_url: str
) -> None:
    batch = await make_batch(
        database, now=clock(), codes=5, rules=Rules(max_per_customer=1, time_limit_days=7)
    )
    params = {
        "batch_id": batch.id,
        "client_id": CLIENT,
        "quota_client": CLIENT,
        "wanted": 2,
        "customers": ["ann", "bob"],
        "keys": [None, None],
        "now": clock(),
        "from_seq": 0,
        "since": clock() - timedelta(days=7),
        "most": 1,
        "days": 7,
    }
    async with database.begin() as conn:
        assert_one_shard(await plan(conn, _TAKE_CITUS, params), coordinator(citus_url))


async def test_issuing_is_one_call_run_on_the_clients_worker_and_committed_in_one_phase(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(
        database, now=clock(), codes=5, rules=Rules(max_per_customer=1, time_limit_days=7)
    )
    assert database.citus_delegated
    compiled = _TAKE_DELEGATED.compile(dialect=database.engine.dialect)
    values = {
        "client_id": CLIENT,
        "batch_id": batch.id,
        "customers": ["ann", "bob"],
        "keys": [None, None],
        "now": clock(),
        "from_seq": 0,
    }
    conn = await asyncpg.connect(_citus.dsn(database.url), timeout=5)
    messages: list[str] = []
    conn.add_log_listener(lambda _, message: messages.append(message.message))
    try:
        await conn.execute("SET client_min_messages = debug1")
        await conn.execute("SET citus.log_remote_commands = on")
        async with conn.transaction():
            names = compiled.positiontup or ()
            rows = await conn.fetch(str(compiled), *[values[n] for n in names])
    finally:
        await conn.close()
    assert [row["code"] is not None for row in rows] == [True, True]
    assert "pushing down the function call" in messages, messages
    sent = [m.removeprefix("issuing ") for m in messages if m.startswith("issuing ")]
    # the call itself, then a plain COMMIT: no step of the statement, no two-phase commit
    assert [m.split(" ")[0] for m in sent] == ["BEGIN", "SELECT", "COMMIT"], sent


async def test_a_group_of_requests_is_issued_through_the_delegated_call(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(
        database, now=clock(), codes=5, rules=Rules(max_per_customer=1, time_limit_days=7)
    )
    asks = [IssueRequest(batch.id, CLIENT, c) for c in ("ann", "bob", "ann", "cy")]
    found = await issue_codes_citus_lean(database, asks, [None] * len(asks), now=clock())
    issued = [o for o in found if isinstance(o, IssuedCode)]
    assert [o.customer_id for o in issued] == ["ann", "bob", "cy"]
    assert len({o.code for o in issued}) == 3
    assert isinstance(found[2], CustomerLimitReached)
    async with database.begin() as conn:
        rows = await conn.execute(
            text("SELECT code, customer_id FROM codes WHERE batch_id = :b AND issued_at > :t"),
            {"b": batch.id, "t": clock() - timedelta(days=1)},
        )
        assert {row.code: row.customer_id for row in rows} == {
            o.code: o.customer_id for o in issued
        }


async def test_with_fewer_codes_than_requests_a_refused_customers_code_goes_to_the_next(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(
        database, now=clock(), codes=3, rules=Rules(max_per_customer=1, time_limit_days=7)
    )
    first = [IssueRequest(batch.id, CLIENT, "ann")]
    await issue_codes_citus_lean(database, first, [None], now=clock())
    asks = [IssueRequest(batch.id, CLIENT, c) for c in ("ann", "bob", "cy")]
    found = await issue_codes_citus_lean(database, asks, [None] * len(asks), now=clock())
    assert isinstance(found[0], CustomerLimitReached)
    assert [isinstance(o, IssuedCode) for o in found[1:]] == [True, True]


OTHER_CLIENT = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")


async def test_a_group_for_two_clients_issues_each_from_its_clients_codes(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=2, prefix="MINE")
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=2, prefix="THEIRS", now=clock()
    )
    asks = [IssueRequest(batch.id, CLIENT, "ann"), IssueRequest(batch.id, OTHER_CLIENT, "bob")]
    found = await issue_codes_citus_lean(database, asks, [None, None], now=clock())
    assert [o.code.split("-")[0] for o in found if isinstance(o, IssuedCode)] == [
        "MINE",
        "THEIRS",
    ]


def _counting_params(now: datetime, game_id: str, offer_id: Any) -> dict[str, Any]:
    return {"game_id": game_id, "now": now, "players": ["p1"], "offers": [offer_id]}


async def test_claims_run_on_the_games_shard(
    database: Database, clock: FakeClock, citus_url: str
) -> None:
    await make_game(database, now=clock())
    offer = await make_offer(database, now=clock())
    params = {
        **_counting_params(clock(), offer.game_id, offer.id),
        "transactions": ["t-1"],
        "versions": [offer.version],
        "purchased": [int(clock().timestamp())],
        "contents": [orjson.dumps({"gems": 5}).decode()],
        "caps": [0],
        "next_ats": [None],
    }
    async with database.begin() as conn:
        assert_one_shard(await plan(conn, _CLAIMS_CITUS, params), coordinator(citus_url))


async def test_impressions_run_on_the_games_shard(
    database: Database, clock: FakeClock, citus_url: str
) -> None:
    await make_game(database, now=clock())
    offer = await make_offer(database, now=clock())
    params = {
        **_counting_params(clock(), offer.game_id, offer.id),
        "impressions": [uuid4()],
        "caps": [0],
        "next_ats": [None],
    }
    async with database.begin() as conn:
        assert_one_shard(await plan(conn, _IMPRESSIONS, params), coordinator(citus_url))


async def delegated_call(
    database: Database, statement: TextClause, values: dict[str, Any], *, in_transaction: bool
) -> tuple[list[asyncpg.Record], list[str]]:
    """``statement``'s rows, sent as the app sends it, and what Citus logged meanwhile."""
    compiled = statement.compile(dialect=database.engine.dialect)
    names = compiled.positiontup or ()
    conn = await asyncpg.connect(_citus.dsn(database.url), timeout=5)
    messages: list[str] = []
    conn.add_log_listener(lambda _, message: messages.append(message.message))
    try:
        await conn.execute("SET client_min_messages = debug1")
        await conn.execute("SET citus.log_remote_commands = on")
        if in_transaction:  # as the app sends it: BEGIN with the events' demand, read first
            await conn.execute(f"BEGIN; {postgresql_wanted_check(OFFER_CLAIMED)}")
            rows = await conn.fetch(str(compiled), *[values[n] for n in names])
            await conn.execute("COMMIT")
        else:
            rows = await conn.fetch(str(compiled), *[values[n] for n in names])
    finally:
        await conn.close()
    return rows, messages


def sent_commands(messages: list[str]) -> list[str]:
    """The first word of each command the coordinator sent a worker."""
    return [m.removeprefix("issuing ").split(" ")[0] for m in messages if m.startswith("issuing ")]


async def test_the_app_knows_at_start_up_that_claims_and_impressions_are_delegated(
    database: Database,
) -> None:
    assert database.citus_counting


async def test_a_claim_is_one_call_run_on_the_games_worker_and_committed_in_one_phase(
    database: Database, clock: FakeClock
) -> None:
    await make_game(database, now=clock())
    offer = await make_offer(database, now=clock())
    values = {
        **_counting_params(clock(), offer.game_id, offer.id),
        "transactions": ["t-1"],
        "versions": [offer.version],
        "purchased": [int(clock().timestamp())],
        "contents": [orjson.dumps({"gems": 5}).decode()],
        "caps": [0],
        "next_ats": [None],
    }
    rows, messages = await delegated_call(database, _CLAIMS_DELEGATED, values, in_transaction=True)
    assert [row["counted"] for row in rows] == [True]
    assert "pushing down the function call" in messages, messages
    # the call itself, then a plain COMMIT: no step of a statement, no two-phase commit
    assert sent_commands(messages) == ["BEGIN", "SELECT", "COMMIT"], messages


async def test_an_impression_is_one_call_run_on_the_games_worker(
    database: Database, clock: FakeClock
) -> None:
    await make_game(database, now=clock())
    offer = await make_offer(database, now=clock())
    values = {
        **_counting_params(clock(), offer.game_id, offer.id),
        "impressions": [uuid4()],
        "caps": [0],
        "next_ats": [None],
    }
    rows, messages = await delegated_call(
        database, _IMPRESSIONS_DELEGATED, values, in_transaction=False
    )
    assert [row["counted"] for row in rows] == [True]
    assert "pushing down the function call" in messages, messages
    assert sent_commands(messages) == ["SELECT"], messages


async def capped_offer(database: Database, clock: FakeClock, *, most: int) -> Offer:
    await make_game(database, now=clock())
    return await make_offer(
        database,
        now=clock(),
        period={"every": "1h", "max": most},
        frequency={"every": "1h", "max": most},
    )


async def player_counts(database: Database, offer: Offer) -> tuple[int, int, int, int]:
    """Claims and impressions counted on the player rows, and their recorded rows."""
    async with database.begin() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT coalesce(sum(claim_count), 0) FROM offer_players "
                    "        WHERE game_id = :g) AS claims, "
                    "       (SELECT count(*) FROM offer_claims WHERE game_id = :g) AS claimed, "
                    "       (SELECT coalesce(sum(impression_count), 0) FROM offer_players "
                    "        WHERE game_id = :g) AS seen, "
                    "       (SELECT count(*) FROM offer_impressions WHERE game_id = :g) AS shown"
                ),
                {"g": offer.game_id},
            )
        ).one()
    return int(row.claims), int(row.claimed), int(row.seen), int(row.shown)


async def test_a_replayed_delegated_claim_answers_as_the_first_and_counts_nothing(
    database: Database, clock: FakeClock
) -> None:
    offer = await capped_offer(database, clock, most=5)
    counter = Counter(database)
    first = await counter.claim(ClaimAsk(offer, "p1", "t-1", 1, clock()))
    clock.advance(minutes=1)
    again = await counter.claim(ClaimAsk(offer, "p1", "t-1", 1, clock()))
    assert (first.replayed, again.replayed) == (False, True)
    assert (again.contents, again.next_at) == (first.contents, first.next_at)
    assert await player_counts(database, offer) == (1, 1, 0, 0)


async def test_a_delegated_claim_at_the_cap_answers_no_next_time(
    database: Database, clock: FakeClock
) -> None:
    offer = await capped_offer(database, clock, most=2)
    counter = Counter(database)
    answers = [await counter.claim(ClaimAsk(offer, "p1", f"t-{n}", 1, clock())) for n in (1, 2)]
    assert answers[0].next_at == int(clock().timestamp()) + 3600
    assert answers[1].next_at is None


async def test_concurrent_delegated_claims_from_several_servers_are_each_counted_once(
    database: Database, clock: FakeClock
) -> None:
    offer = await capped_offer(database, clock, most=0)
    asks = [ClaimAsk(offer, f"p{n % 3}", f"t-{n}", 1, clock()) for n in range(24)]
    servers = [Counter(database, group_size=4, concurrency=2) for _ in range(3)]
    answers = await asyncio.gather(*(s.claim(a) for s in servers for a in asks))
    assert sum(not a.replayed for a in answers) == len(asks)
    assert await player_counts(database, offer) == (24, 24, 0, 0)


async def test_a_replayed_delegated_impression_answers_as_the_first_and_counts_nothing(
    database: Database, clock: FakeClock
) -> None:
    offer = await capped_offer(database, clock, most=5)
    counter = Counter(database)
    seen = uuid4()
    first = await counter.see(SeenAsk(offer, "p1", seen, clock()))
    clock.advance(minutes=1)
    again = await counter.see(SeenAsk(offer, "p1", seen, clock()))
    assert (first.replayed, again.replayed, again.next_at) == (False, True, first.next_at)
    assert await player_counts(database, offer) == (0, 0, 1, 1)


async def test_a_delegated_impression_at_the_cap_answers_no_next_time(
    database: Database, clock: FakeClock
) -> None:
    offer = await capped_offer(database, clock, most=2)
    counter = Counter(database)
    answers = [await counter.see(SeenAsk(offer, "p1", uuid4(), clock())) for _ in range(2)]
    assert answers[0].next_at == int(clock().timestamp()) + 3600
    assert answers[1].next_at is None


async def test_concurrent_delegated_impressions_from_several_servers_are_each_counted_once(
    database: Database, clock: FakeClock
) -> None:
    offer = await capped_offer(database, clock, most=0)
    asks = [SeenAsk(offer, f"p{n % 3}", uuid4(), clock()) for n in range(24)]
    servers = [Counter(database, group_size=4, concurrency=2) for _ in range(3)]
    answers = await asyncio.gather(*(s.see(a) for s in servers for a in asks))
    assert sum(not a.replayed for a in answers) == len(asks)
    assert await player_counts(database, offer) == (0, 0, 24, 24)


async def test_without_the_functions_placed_claims_and_impressions_take_the_statements(
    database: Database, clock: FakeClock
) -> None:
    """A database distributed before the functions (``Database.citus_counting`` False)."""
    offer = await capped_offer(database, clock, most=0)
    database.citus_counting = False
    counter = Counter(database)
    claimed = await counter.claim(ClaimAsk(offer, "p1", "t-1", 1, clock()))
    seen = await counter.see(SeenAsk(offer, "p1", uuid4(), clock()))
    assert (claimed.replayed, seen.replayed) == (False, False)
    assert await player_counts(database, offer) == (1, 1, 1, 1)


async def subscribe(database: Database, clock: FakeClock, event_type: str) -> None:
    async with database.begin() as conn:
        await events_service.create_subscription(
            conn, url="http://127.0.0.1:9/hook", event_types=[event_type], secret="s", now=clock()
        )


async def outbox_types(database: Database) -> list[str]:
    async with database.begin() as conn:
        found = await conn.execute(select(outbox.c.event_type).order_by(outbox.c.id))
        return list(found.scalars())


async def test_a_delegated_issue_writes_its_events_when_a_subscription_wants_them(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=5)
    await subscribe(database, clock, "code.issued")
    asks = [IssueRequest(batch.id, CLIENT, c) for c in ("ann", "bob")]
    await issue_codes_citus_lean(database, asks, [None, None], now=clock())
    assert await outbox_types(database) == ["code.issued", "code.issued"]


async def test_a_delegated_issue_writes_no_event_without_a_subscription_wanting_them(
    database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=5)
    await subscribe(database, clock, "offer.claimed")
    found = await issue_codes_citus_lean(
        database, [IssueRequest(batch.id, CLIENT, "ann")], [None], now=clock()
    )
    assert isinstance(found[0], IssuedCode)
    assert await outbox_types(database) == []


async def test_a_delegated_claim_writes_its_event_when_a_subscription_wants_it(
    database: Database, clock: FakeClock
) -> None:
    offer = await capped_offer(database, clock, most=0)
    await subscribe(database, clock, "offer.claimed")
    counter = Counter(database)
    await counter.claim(ClaimAsk(offer, "p1", "t-1", 1, clock()))
    await counter.claim(ClaimAsk(offer, "p1", "t-1", 1, clock()))  # a replay: no event
    assert await outbox_types(database) == ["offer.claimed"]


async def test_distributing_again_places_nothing(database: Database) -> None:
    assert await citus.distribute(database.engine) == []


# The statements of pool code holds that write a distributed table or lock its rows: each
# must run on one shard. (A hold is named by its id alone in the API, so confirming and
# releasing first read its client from every shard's index of ids: a read, not checked here.)
_DISTRIBUTED_WORK = re.compile(
    r"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+(codes|customer_quotas|pool_code_holds)\b"
    r"|\bFROM (codes|customer_quotas|pool_code_holds)\b.*\bFOR UPDATE\b",
    re.DOTALL,
)


@contextmanager
def statements_run(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """Every statement sent in the block, with its parameters (the first row's, for a batch)."""
    seen: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        statement, parameters, many = args[2], args[3], args[5]
        seen.append((statement, parameters[0] if many else parameters))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def assert_each_on_one_shard(
    database: Database, seen: list[tuple[str, Any]], coordinator_port: int
) -> int:
    """EXPLAIN each statement that wrote or locked distributed rows; how many there were."""
    checked = 0
    async with database.begin() as conn:
        for statement, parameters in seen:
            if _DISTRIBUTED_WORK.search(statement):
                found = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                assert_one_shard("\n".join(row[0] for row in found), coordinator_port)
                checked += 1
    return checked


async def test_holding_confirming_and_releasing_run_on_the_clients_shard(
    database: Database, clock: FakeClock, citus_url: str
) -> None:
    batch = await make_batch(
        database, now=clock(), codes=5, rules=Rules(max_per_customer=2, time_limit_days=7)
    )
    async with database.begin() as conn:
        await holds.set_returns_released_codes(conn, batch.id, value=True)
    ttl = timedelta(minutes=10)
    held = []
    with statements_run(database) as seen:
        for order in ("o-1", "o-2"):
            async with database.begin() as conn:
                hold = await holds.hold_code(
                    conn,
                    batch_id=batch.id,
                    client_id=CLIENT,
                    customer_id="ann",
                    order=order,
                    ttl=ttl,
                    now=clock(),
                    idempotency_key=f"key-{order}",
                )
            held.append(hold.id)
        async with database.begin() as conn:
            await holds.confirm(conn, hold_id=held[0], now=clock())
        async with database.begin() as conn:
            await holds.release(conn, hold_id=held[1], now=clock())
    # Held twice: the quota row, the free code, the code, the hold (and its claim); confirmed:
    # the hold; released: the hold, the code back to the pool, the quota row.
    assert await assert_each_on_one_shard(database, seen, coordinator(citus_url)) >= 12


async def test_lapsed_holds_end_on_their_clients_shard(
    database: Database, clock: FakeClock, citus_url: str
) -> None:
    batch = await make_batch(database, now=clock(), codes=3)
    async with database.begin() as conn:
        for order in ("o-1", "o-2"):
            await holds.hold_code(
                conn,
                batch_id=batch.id,
                client_id=CLIENT,
                customer_id=order,
                order=order,
                ttl=timedelta(minutes=1),
                now=clock(),
            )
    clock.advance(minutes=2)
    with statements_run(database) as seen:
        async with database.begin() as conn:
            assert await holds.end_lapsed(conn, now=clock()) == 2
    assert await assert_each_on_one_shard(database, seen, coordinator(citus_url)) >= 4
