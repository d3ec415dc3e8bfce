"""A batch's counters for the console (promos.codes.counts): codes held, issued and left, and
issues per day, exact without counting the batch's codes on each read."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, select

from promos.codes import counts, service
from promos.codes.counts import MARGIN, NEVER, REFRESH_AFTER, DayIssues, PoolCounts
from promos.codes.errors import DuplicateCode
from promos.codes.service import IssueRequest
from promos.codes.tables import codes, pool_counts
from promos.db import Database
from promos.state import AppState
from tests.conftest import FakeClock
from tests.factories.codes import CLIENT, make_batch


async def issue(state: AppState, batch_id: UUID, customer: str = "customer-1") -> None:
    await state.issuer.issue(IssueRequest(batch_id, CLIENT, customer))


async def counts_now(database: Database, clock: FakeClock, batch_id: UUID) -> PoolCounts:
    async with database.begin() as conn:
        return await counts.counts(conn, batch_id, now=clock())


async def checkpoint_of(database: Database, batch_id: UUID) -> tuple[int, object]:
    async with database.begin() as conn:
        row = (
            await conn.execute(select(pool_counts).where(pool_counts.c.batch_id == batch_id))
        ).one()
    return row.issued, row.counted_until


async def test_a_new_batch_counts_nothing(database, clock):
    async with database.begin() as conn:
        batch = await service.create_batch(
            conn, client_id=CLIENT, name="Empty", rules=service.Rules(), now=clock()
        )

    assert await counts_now(database, clock, batch.id) == PoolCounts(batch.id, 0, 0)


async def test_total_counts_every_code_added(database, clock):
    batch = await make_batch(database, now=clock(), codes=5)
    async with database.begin() as conn:
        await service.add_codes(conn, batch, [(2, "MORE-1"), (3, "MORE-2")])

    found = await counts_now(database, clock, batch.id)

    assert (found.total, found.issued, found.left) == (7, 0, 7)


async def test_codes_of_an_upload_that_failed_are_not_counted(database, clock):
    batch = await make_batch(database, now=clock(), codes=3, prefix="ONE")
    with pytest.raises(DuplicateCode):
        async with database.begin() as conn:
            await service.add_codes(conn, batch, [(2, "NEW-1"), (3, "ONE-0")])

    assert (await counts_now(database, clock, batch.id)).total == 3


async def test_issued_counts_each_issue_at_once(state, database, clock):
    batch = await make_batch(database, now=clock(), codes=5)
    await issue(state, batch.id, "a")
    await issue(state, batch.id, "b")

    found = await counts_now(database, clock, batch.id)

    assert (found.total, found.issued, found.left) == (5, 2, 3)


async def test_issues_stay_counted_once_the_checkpoint_moves_past_them(state, database, clock):
    batch = await make_batch(database, now=clock(), codes=5)
    await issue(state, batch.id, "a")
    clock.advance(days=1)
    await issue(state, batch.id, "b")
    clock.advance(days=1)

    first = await counts_now(database, clock, batch.id)
    again = await counts_now(database, clock, batch.id)

    assert first.issued == again.issued == 2
    assert await checkpoint_of(database, batch.id) == (2, clock() - MARGIN)


async def test_a_read_moves_the_checkpoint_only_when_it_is_due(state, database, clock):
    batch = await make_batch(database, now=clock(), codes=5)
    await issue(state, batch.id, "a")
    clock.advance(days=1)
    await counts_now(database, clock, batch.id)
    placed = await checkpoint_of(database, batch.id)
    await issue(state, batch.id, "b")

    clock.now += REFRESH_AFTER
    found = await counts_now(database, clock, batch.id)

    assert await checkpoint_of(database, batch.id) == placed
    assert found.issued == 2


async def test_a_batch_without_issues_since_its_checkpoint_is_not_written_to(database, clock):
    batch = await make_batch(database, now=clock(), codes=5)
    clock.advance(days=1)

    await counts_now(database, clock, batch.id)

    assert await checkpoint_of(database, batch.id) == (0, NEVER)


async def test_an_issue_stamped_before_a_checkpoint_but_committed_after_it_is_counted(
    state, database, clock
):
    batch = await make_batch(database, now=clock(), codes=5)
    read_at = clock()
    await counts_now(database, clock, batch.id)  # the checkpoint is now read_at - MARGIN
    # An issue whose clock read (its stamp) came before that read, committed after it.
    clock.now = read_at - MARGIN / 2
    await issue(state, batch.id, "slow")
    clock.now = read_at + MARGIN + REFRESH_AFTER + timedelta(seconds=1)

    assert (await counts_now(database, clock, batch.id)).issued == 1
    assert (await counts_now(database, clock, batch.id)).issued == 1


async def test_counts_of_reads_many_batches_at_once(state, database, clock):
    first = await make_batch(database, now=clock(), codes=3)
    second = await make_batch(database, now=clock(), codes=4)
    await issue(state, second.id)

    async with database.begin() as conn:
        found = await counts.counts_of(conn, [first.id, second.id], now=clock())

    assert found == {
        first.id: PoolCounts(first.id, 3, 0),
        second.id: PoolCounts(second.id, 4, 1),
    }


async def test_issues_per_day_lists_each_day_today_last(state, database, clock):
    batch = await make_batch(database, now=clock(), codes=10)
    await issue(state, batch.id, "a")
    clock.advance(days=2)
    await issue(state, batch.id, "b")
    await issue(state, batch.id, "c")
    today = clock().date()

    async with database.begin() as conn:
        days = await counts.issues_per_day(conn, batch.id, days=4, now=clock())

    assert days == [
        DayIssues(today - timedelta(days=3), 0),
        DayIssues(today - timedelta(days=2), 1),
        DayIssues(today - timedelta(days=1), 0),
        DayIssues(today, 2),
    ]


async def test_issues_per_day_are_the_same_before_and_after_a_checkpoint(state, database, clock):
    batch = await make_batch(database, now=clock(), codes=10)
    await issue(state, batch.id, "a")
    clock.advance(days=1)
    await issue(state, batch.id, "b")
    async with database.begin() as conn:
        before = await counts.issues_per_day(conn, batch.id, days=3, now=clock())
    clock.advance(days=1)
    async with database.begin() as conn:
        await counts.counts(conn, batch.id, now=clock())  # checkpoints both issues
        after = await counts.issues_per_day(conn, batch.id, days=4, now=clock())

    assert after[:3] == before
    assert [d.issued for d in after] == [0, 1, 1, 0]


async def test_a_day_is_a_utc_day(state, database, clock):
    clock.now = clock.now.replace(hour=23, minute=59)
    batch = await make_batch(database, now=clock(), codes=3)
    await issue(state, batch.id, "late")

    async with database.begin() as conn:
        days = await counts.issues_per_day(conn, batch.id, days=1, now=clock())

    assert days == [DayIssues(date(2026, 3, 1), 1)]


@pytest.mark.postgres_only
async def test_concurrent_reads_count_each_issue_once(state, database, clock):
    batch = await make_batch(database, now=clock(), codes=30)
    for n in range(20):
        await issue(state, batch.id, f"customer-{n}")
    clock.advance(days=1)

    async def read() -> int:
        async with database.begin() as conn:
            return (await counts.counts(conn, batch.id, now=clock())).issued

    seen = await asyncio.gather(*(read() for _ in range(10)))

    assert seen == [20] * 10
    async with database.begin() as conn:
        issued = (
            await conn.execute(
                select(func.count()).where(
                    codes.c.batch_id == batch.id, codes.c.issued_at.is_not(None)
                )
            )
        ).scalar_one()
    assert await checkpoint_of(database, batch.id) == (issued, clock() - MARGIN)
