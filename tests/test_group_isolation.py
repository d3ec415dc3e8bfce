"""Requests served together in one statement: one request's bad data fails that request alone.

Issuing, claims, impressions and history reads group concurrent requests into one statement.
A request the database refuses must get its own answer and leave its neighbours' untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from uuid import uuid4

import pytest

from promos.batching import Batcher
from promos.codes.errors import BatchNotFound
from promos.codes.issuer import IssueFailed, Issuer
from promos.codes.service import IssuedCode, IssueRequest
from promos.errors import Unavailable
from promos.offers.counting import ClaimAsk, Claimed, Counter, Seen, SeenAsk
from promos.offers.player import HistoryReader
from tests.factories.codes import CLIENT, make_batch
from tests.factories.offers import make_game, make_offer

GROUP = 8
# A NUL character is valid Python text that PostgreSQL refuses to store or compare: the kind of
# value that could slip past a route's checks and reach the group statement.
REFUSED = "nul\x00byte"


def grouped_issuer(database, clock) -> Issuer:
    """An issuer that waits until GROUP requests are there and serves them in one group."""
    return Issuer(database, clock, group_size=GROUP, linger_seconds=30)


async def test_an_idempotent_issue_for_an_unknown_batch_fails_only_itself(database, clock):
    batch = await make_batch(database, now=clock(), codes=GROUP)
    requests = [IssueRequest(batch.id, CLIENT, f"customer-{n}", f"key-{n}") for n in range(7)]
    requests.insert(3, IssueRequest(uuid4(), CLIENT, "stranger", "key-stranger"))

    issuer = grouped_issuer(database, clock)
    outcomes = await asyncio.gather(*(issuer.issue(r) for r in requests), return_exceptions=True)

    assert isinstance(outcomes.pop(3), BatchNotFound)
    assert all(isinstance(o, IssuedCode) for o in outcomes)
    assert len({o.code for o in outcomes if isinstance(o, IssuedCode)}) == 7


@pytest.mark.postgres_only
@pytest.mark.parametrize("keyed", [False, True], ids=["without keys", "with keys"])
async def test_an_issue_the_database_refuses_fails_only_itself(database, clock, keyed):
    batch = await make_batch(database, now=clock(), codes=GROUP)
    customers = [f"customer-{n}" for n in range(GROUP)]
    customers[5] = REFUSED
    requests = [
        IssueRequest(batch.id, CLIENT, c, f"key-{n}" if keyed else None)
        for n, c in enumerate(customers)
    ]

    issuer = grouped_issuer(database, clock)
    outcomes = await asyncio.gather(*(issuer.issue(r) for r in requests), return_exceptions=True)

    assert isinstance(outcomes.pop(5), IssueFailed)
    assert [o.customer_id for o in outcomes if isinstance(o, IssuedCode)] == [
        c for c in customers if c != REFUSED
    ]


@pytest.fixture
async def offer(database, clock, state):
    await make_game(database, now=clock())
    return await make_offer(
        database,
        now=clock(),
        catalog=state.offers,
        period={"every": "", "max": 1000},
        frequency={"every": "", "max": 1000},
    )


async def one_then_a_group(calls: list[Awaitable[object]]) -> list[object]:
    """With one statement at a time, the first call runs alone and the others as one group."""
    return await asyncio.gather(*calls, return_exceptions=True)


@pytest.mark.postgres_only
async def test_a_claim_the_database_refuses_fails_only_itself(database, clock, offer):
    counter = Counter(database, group_size=GROUP, concurrency=1)
    players = [f"player-{n}" for n in range(GROUP)]
    players[4] = REFUSED

    answers = await one_then_a_group(
        [counter.claim(ClaimAsk(offer, p, f"tx-{n}", 1, clock())) for n, p in enumerate(players)]
    )

    assert not isinstance(answers.pop(4), Claimed)
    assert all(isinstance(a, Claimed) and not a.replayed for a in answers)


@pytest.mark.postgres_only
async def test_an_impression_the_database_refuses_fails_only_itself(database, clock, offer):
    counter = Counter(database, group_size=GROUP, concurrency=1)
    players = [f"player-{n}" for n in range(GROUP)]
    players[6] = REFUSED

    answers = await one_then_a_group(
        [counter.see(SeenAsk(offer, p, uuid4(), clock())) for p in players]
    )

    assert not isinstance(answers.pop(6), Seen)
    assert all(isinstance(a, Seen) for a in answers)


@pytest.mark.postgres_only
async def test_a_history_read_the_database_refuses_fails_only_itself(database, clock, offer):
    counter = Counter(database)
    await counter.claim(ClaimAsk(offer, "player-2", "tx-1", 1, clock()))
    reader = HistoryReader(database, group_size=GROUP, concurrency=1)
    players = [f"player-{n}" for n in range(GROUP)]
    players[3] = REFUSED

    histories = await one_then_a_group([reader.read("galaxy", p) for p in players])

    assert isinstance(histories.pop(3), Exception)
    assert [list(h) for h in histories] == [[], [], [offer.id], [], [], [], []]


# The grouping itself, without a database: which items get which answers.


class Refused(Exception):
    pass


async def test_a_group_that_fails_is_run_again_in_halves_until_the_failing_item_is_alone():
    runs: list[list[int]] = []

    async def double(items: Sequence[int]) -> list[int]:
        runs.append(list(items))
        if 5 in items:
            raise Refused
        return [2 * i for i in items]

    batcher: Batcher[int, int] = Batcher(double, group_size=GROUP, concurrency=1, linger=30)
    answers = await asyncio.gather(
        *(batcher.submit(i) for i in range(GROUP)), return_exceptions=True
    )

    assert isinstance(answers[5], Refused)
    assert [a for i, a in enumerate(answers) if i != 5] == [0, 2, 4, 6, 8, 12, 14]
    assert runs == [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]


async def test_an_outage_fails_the_whole_group_at_once():
    runs = 0

    async def down(items: Sequence[int]) -> list[int]:
        nonlocal runs
        runs += 1
        raise Unavailable("database unavailable")

    batcher: Batcher[int, int] = Batcher(down, group_size=GROUP, concurrency=1, linger=30)
    answers = await asyncio.gather(
        *(batcher.submit(i) for i in range(GROUP)), return_exceptions=True
    )

    assert all(isinstance(a, Unavailable) for a in answers)
    assert runs == 1
