"""Large generations, stored chunk by chunk: progress in steps, all or nothing, unique codes.

The chunks are made small here (100 codes) so that a generation of 1,000 codes takes many
of them; the code under test is the same one that stores a million in chunks of 50,000. The
generations run as the API runs them (``changes.generate_apart``): on SQLite the codes are
drawn before the generation takes the one writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from promos.auth.service import Principal
from promos.promocodes import bulk, changes, service
from promos.promocodes.errors import PatternExhausted
from promos.promocodes.generate import CodeShape
from promos.promocodes.service import Generated, GenerationSpec
from promos.promocodes.tables import promocode_generations, promocodes

STEP = 100
# On PostgreSQL, 12 drawn characters stream through COPY; 5 (a real chance of collisions in
# 1,000 codes) go through the staging table. SQLite has one way for both.
ROOMY = "############"
CROWDED = "#####"


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk, "CHUNK", STEP)
    monkeypatch.setattr(bulk, "SLICE", STEP)
    monkeypatch.setattr(bulk, "SQLITE_CHUNK", STEP)


ACTOR = Principal("user", 1, "marketing", "sales")


def spec_of(pattern: str, count: int) -> GenerationSpec:
    return GenerationSpec(
        pattern=pattern, count=count, usage_count=1, discount_percentage=Decimal(5)
    )


async def generate(database, clock, *, pattern: str, count: int, on_progress=None) -> Generated:
    return await changes.generate_apart(
        database, actor=ACTOR, spec=spec_of(pattern, count), now=clock(), on_progress=on_progress
    )


async def stored(database) -> tuple[int, int, int]:
    """Codes, distinct codes, generations."""
    async with database.begin() as conn:
        codes, distinct = (
            await conn.execute(select(func.count(), func.count(promocodes.c.code.distinct())))
        ).one()
        generations = (
            await conn.execute(select(func.count()).select_from(promocode_generations))
        ).scalar_one()
    return codes, distinct, generations


@pytest.mark.parametrize("pattern", [ROOMY, CROWDED], ids=["roomy", "crowded"])
async def test_a_large_generation_reports_its_progress_chunk_by_chunk(
    database, clock, small_chunks, pattern
):
    seen: list[int] = []

    await generate(database, clock, pattern=pattern, count=1000, on_progress=seen.append)

    assert len(seen) >= 1000 // STEP
    assert seen == sorted(seen)
    assert max(b - a for a, b in zip([0, *seen], seen, strict=False)) <= STEP
    assert seen[-1] == 1000


@pytest.mark.parametrize("pattern", [ROOMY, CROWDED], ids=["roomy", "crowded"])
async def test_a_generation_failing_midway_leaves_nothing(database, clock, small_chunks, pattern):
    def fail_halfway(done: int) -> None:
        if done >= 500:
            raise RuntimeError("stopped halfway")

    with pytest.raises(RuntimeError, match="stopped halfway"):
        await generate(database, clock, pattern=pattern, count=1000, on_progress=fail_halfway)

    assert await stored(database) == (0, 0, 0)


async def test_codes_stored_in_chunks_are_unique_and_skip_the_codes_taken(
    database, clock, small_chunks
):
    # 29,791 codes of ###: 7,000 of them drawn in chunks of 100 collide often.
    await generate(database, clock, pattern="###", count=2000)

    made = await generate(database, clock, pattern="###", count=5000)

    assert await stored(database) == (7000, 7000, 2)
    assert len(set(made.codes)) == len(made.codes) == bulk.SAMPLE


class CountingDrawer:
    """Draws C000001, C000002, ... (each drawer from the start): which codes a generation
    draws is known."""

    def __init__(self, shape: CodeShape) -> None:  # noqa: ARG002 - Drawer's signature
        self.drawn = 0

    def draw(self, n: int) -> list[str]:
        codes = [f"C{i:06}" for i in range(self.drawn + 1, self.drawn + n + 1)]
        self.drawn += n
        return codes

    def draw_sorted(self, n: int) -> Iterator[list[str]]:
        yield sorted(self.draw(n))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_sqlite_a_generation_draws_its_codes_while_another_writer_holds_the_database(
    database, clock, small_chunks, monkeypatch
):
    monkeypatch.setattr(bulk, "Drawer", CountingDrawer)
    all_drawn = asyncio.Event()

    def progress(done: int) -> None:
        if done == 100:
            all_drawn.set()

    async with database.begin() as conn:
        # This transaction holds SQLite's one writer until the generation has drawn them all,
        # and meanwhile takes C000001, one of the codes the generation drew.
        generation = asyncio.create_task(
            generate(database, clock, pattern=ROOMY, count=100, on_progress=progress)
        )
        await asyncio.wait_for(all_drawn.wait(), timeout=10)
        assert not generation.done()
        await service.generate(conn, spec=spec_of(ROOMY, 1), now=clock())

    made = await asyncio.wait_for(generation, timeout=10)

    assert await stored(database) == (101, 101, 2)
    assert "C000001" not in made.codes
    assert "C000101" in made.codes  # drawn again in its place


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_sqlite_a_failed_generation_leaves_no_drawn_codes_behind(
    database, clock, small_chunks, monkeypatch
):
    monkeypatch.setattr(bulk, "Drawer", CountingDrawer)

    def fail_once_drawn(done: int) -> None:
        if done == 300:
            raise RuntimeError("stopped once drawn")

    with pytest.raises(RuntimeError, match="stopped once drawn"):
        await generate(database, clock, pattern=ROOMY, count=300, on_progress=fail_once_drawn)
    made = await generate(database, clock, pattern=ROOMY, count=200)

    assert await stored(database) == (200, 200, 1)
    assert made.codes[:2] == ["C000001", "C000002"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_on_sqlite_a_read_does_not_wait_for_a_writer(database):
    async with database.begin() as conn:
        await conn.execute(promocode_generations.delete())  # takes the write lock

        async def read() -> int:
            async with database.read() as other:
                return (
                    await other.execute(select(func.count()).select_from(promocodes))
                ).scalar_one()

        assert await asyncio.wait_for(read(), timeout=5) == 0


async def test_a_generation_that_cannot_draw_enough_new_codes_stores_nothing(
    database, clock, small_chunks, monkeypatch
):
    class StuckDrawer(CountingDrawer):
        def draw(self, n: int) -> list[str]:
            return ["C000001"] * n

    monkeypatch.setattr(bulk, "Drawer", StuckDrawer)

    with pytest.raises(PatternExhausted, match="only 1 of 5 codes could be drawn"):
        await generate(database, clock, pattern=ROOMY, count=5)

    assert await stored(database) == (0, 0, 0)
