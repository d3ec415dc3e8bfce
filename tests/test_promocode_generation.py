"""Large generations, stored chunk by chunk: progress in steps, all or nothing, unique codes.

The chunks are made small here (100 codes) so that a generation of 1,000 codes takes many
of them; the code under test is the same one that stores a million in chunks of 50,000.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from promos.promocodes import bulk, service
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


async def generate(database, clock, *, pattern: str, count: int, on_progress=None) -> Generated:
    spec = GenerationSpec(
        pattern=pattern, count=count, usage_count=1, discount_percentage=Decimal(5)
    )
    async with database.begin() as conn:
        return await service.generate(conn, spec=spec, now=clock(), on_progress=on_progress)


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
