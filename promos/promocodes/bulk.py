"""Storing a generation's codes in bulk, all in the caller's transaction.

PostgreSQL: the codes stream into ``promocodes`` with COPY (asyncpg, text format) while the
next ones are drawn, in code order (``Drawer.draw_sorted``): each index on the code then takes
them in one sweep from its first page to its last, instead of touching a page at random for
every code, which made the write slower than drawing (issue 19). A collision with an existing
code (vanishingly rare in a roomy pattern; likely when the pattern draws few characters)
undoes that COPY to its savepoint, and the codes go through a temporary staging table
instead, ``CHUNK`` at a time: COPY a chunk's candidates into it, then ``INSERT ... SELECT ...
ON CONFLICT DO NOTHING``, topping the chunk up until it is full.
SQLite, which allows one writer at a time: ``stage_sqlite`` first draws the codes into a
temporary table of the connection, in short transactions that take no write lock (a temporary
table is the connection's own), so the other requests of every process go on meanwhile; then,
in the caller's transaction, one ``INSERT ... SELECT`` moves them into place, and chunks of plain
inserts top them up if a code was taken meanwhile.

A million codes take about a second of CPU to draw, sort and encode: the event loop is handed
back every ``SLICE`` codes, and between the sorted groups (``generate.SORTED_RUN`` codes at
most, tens of milliseconds of work), so the other requests of the process are answered
meanwhile, and the progress callback hears of every chunk or slice stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.db import reading
from promos.promocodes.errors import PatternExhausted
from promos.promocodes.generate import CodeShape, Drawer
from promos.promocodes.tables import promocodes

CHUNK = 50_000
# Codes drawn (and handed to COPY) between two turns of the event loop: about 2 ms of CPU.
SLICE = 5_000
SQLITE_CHUNK = 2_000
MAX_ROUNDS = 12
SAMPLE = 1000  # codes returned to the caller; the rest are read back through the listing
# Below this chance of two codes of one draw colliding, skip remembering what was drawn.
_COLLISION_RISK = 1e-4

Progress = Callable[[int], None]


async def store_codes(
    conn: AsyncConnection,
    *,
    shape: CodeShape,
    count: int,
    generation_id: int,
    usage_count: int,
    on_progress: Progress | None = None,
    staged: bool = False,
) -> list[str]:
    """Draw and store ``count`` new unique codes; returns the first ``SAMPLE`` of them.
    ``staged``: SQLite only, ``stage_sqlite`` drew them on this connection already."""
    drawer = Drawer(shape)
    if staged:
        return await _publish_staged(
            conn,
            drawer=drawer,
            count=count,
            generation_id=generation_id,
            usage_count=usage_count,
            on_progress=on_progress,
        )
    if conn.dialect.name == "postgresql":
        return await _store_postgresql(
            conn,
            drawer=drawer,
            shape=shape,
            count=count,
            generation_id=generation_id,
            usage_count=usage_count,
            on_progress=on_progress,
        )
    return await _store_sqlite(
        conn,
        drawer=drawer,
        count=count,
        generation_id=generation_id,
        usage_count=usage_count,
        on_progress=on_progress,
    )


def _slices(drawer: Drawer, count: int) -> Iterator[list[str]]:
    """Slices of drawn codes adding up to ``count`` (not checked for repeats)."""
    left = count
    while left > 0:
        drawn = drawer.draw(min(SLICE, left))
        left -= len(drawn)
        yield drawn


async def _store_postgresql(
    conn: AsyncConnection,
    *,
    drawer: Drawer,
    shape: CodeShape,
    count: int,
    generation_id: int,
    usage_count: int,
    on_progress: Progress | None,
) -> list[str]:
    raw: Any = (await conn.get_raw_connection()).driver_connection
    risky = count * count > shape.capacity * _COLLISION_RISK
    if not risky:
        sample: list[str] = []
        done = 0
        row_end = f"\t{generation_id}\t{usage_count}\n"

        async def data() -> AsyncIterator[bytes]:
            # COPY's text format, a slice of rows joined at a time (in C): a code holds
            # letters, digits and . _ ~ - only (``code_shape``), nothing COPY would escape.
            nonlocal done
            for run in drawer.draw_sorted(count):
                for start in range(0, len(run), SLICE):
                    drawn = run[start : start + SLICE]
                    if len(sample) < SAMPLE:
                        sample.extend(drawn[: SAMPLE - len(sample)])
                    yield (row_end.join(drawn) + row_end).encode("ascii")
                    done += len(drawn)
                    if on_progress is not None:
                        on_progress(done)
                    # asyncpg sends the slices without awaiting between them: hand the event
                    # loop back once a slice, or other requests wait for the whole COPY.
                    await asyncio.sleep(0)

        savepoint = await conn.begin_nested()
        try:
            await raw.copy_to_table(
                "promocodes",
                source=data(),
                columns=["code", "generation_id", "usage_count"],
                format="text",
            )
        except asyncpg.UniqueViolationError:
            await savepoint.rollback()
            if on_progress is not None:
                on_progress(0)
        else:
            await savepoint.commit()
            return sample
    return await _store_staged(
        conn,
        raw,
        drawer=drawer,
        count=count,
        generation_id=generation_id,
        usage_count=usage_count,
        on_progress=on_progress,
    )


_STAGE = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS promocode_staging (code text NOT NULL) ON COMMIT DROP"
)
# Codes already taken (by other generations, or by this one's earlier chunks) are left out
# before the LIMIT, so that the extra codes drawn stand in for them (a LIMIT alone would try
# only the first ``wanted``, whether taken or not). The test is a scalar subquery, one index
# probe per candidate: as NOT EXISTS the planner chose a hash anti join, reading the whole
# table once a chunk. Only a count and the first codes of the sample come back: a million
# codes returned would be decoded in one blocking go.
_FROM_STAGE = text(
    "WITH made AS ("
    "INSERT INTO promocodes (code, generation_id, usage_count) "
    "SELECT s.code, :generation_id, :usage_count FROM promocode_staging AS s "
    "WHERE (SELECT true FROM promocodes AS p WHERE p.code = s.code) IS NULL LIMIT :wanted "
    "ON CONFLICT (code) DO NOTHING RETURNING code) "
    "SELECT (SELECT count(*) FROM made) AS n, ARRAY(SELECT code FROM made LIMIT :sample) AS codes"
)


async def _candidates(drawer: Drawer, count: int) -> AsyncIterator[tuple[str]]:
    """``count`` drawn codes, less their repeats, as COPY rows; the loop is handed back once
    a slice (asyncpg reads the rows without awaiting between them)."""
    seen: set[str] = set()
    for drawn in _slices(drawer, count):
        for code in drawn:
            if code not in seen:
                seen.add(code)
                yield (code,)
        await asyncio.sleep(0)


async def _store_staged(
    conn: AsyncConnection,
    raw: Any,
    *,
    drawer: Drawer,
    count: int,
    generation_id: int,
    usage_count: int,
    on_progress: Progress | None,
) -> list[str]:
    await conn.execute(_STAGE)
    sample: list[str] = []
    done = 0
    while done < count:
        wanted = min(CHUNK, count - done)
        for _ in range(MAX_ROUNDS):
            await conn.execute(text("TRUNCATE promocode_staging"))
            # Draw more than is missing: some of them may be taken already.
            await raw.copy_records_to_table(
                "promocode_staging", records=_candidates(drawer, wanted + wanted // 4 + 16)
            )
            made, codes = (
                await conn.execute(
                    _FROM_STAGE,
                    {
                        "generation_id": generation_id,
                        "usage_count": usage_count,
                        "wanted": wanted,
                        "sample": SAMPLE - len(sample),
                    },
                )
            ).one()
            sample.extend(codes)
            done += made
            wanted -= made
            if on_progress is not None:
                on_progress(done)
            if wanted == 0:
                break
        else:
            raise _exhausted(count, done)
    return sample


_NEW_STAGING = text(
    "CREATE TEMPORARY TABLE IF NOT EXISTS promocode_staging (code TEXT PRIMARY KEY) WITHOUT ROWID"
)
# A drawn code goes in unless a promo code has it, or it was drawn already.
_STAGE_DRAWN = text(
    "INSERT OR IGNORE INTO promocode_staging (code) SELECT :code "
    "WHERE NOT EXISTS (SELECT 1 FROM promocodes WHERE code = :code)"
)
# The connection's inserts so far: their difference is what a statement inserted, which
# SQLite's executemany does not report through SQLAlchemy.
_CHANGES = text("SELECT total_changes()")
_PUBLISH = text(
    "INSERT INTO promocodes (code, generation_id, usage_count) "
    "SELECT s.code, :generation_id, :usage_count FROM promocode_staging AS s "
    "WHERE NOT EXISTS (SELECT 1 FROM promocodes AS p WHERE p.code = s.code) LIMIT :count"
)
_PUBLISHED_SAMPLE = text(
    "SELECT s.code FROM promocode_staging AS s JOIN promocodes AS p ON p.code = s.code "
    "WHERE p.generation_id = :generation_id LIMIT :sample"
)


async def stage_sqlite(
    conn: AsyncConnection, *, shape: CodeShape, count: int, on_progress: Progress | None = None
) -> None:
    """Draw ``count`` distinct codes that no promo code has into a temporary table of
    ``conn``, a slice per short transaction that holds no write lock; ``store_codes`` with
    ``staged=True``, on the same connection, stores them."""
    drawer = Drawer(shape)
    async with reading(conn):
        await conn.execute(_NEW_STAGING)
        await conn.execute(text("DELETE FROM promocode_staging"))
    staged = 0
    for _ in range(MAX_ROUNDS * (count // SLICE + 1)):
        if staged >= count:
            return
        drawn = drawer.draw(min(SLICE, count - staged))
        async with reading(conn):
            before = (await conn.execute(_CHANGES)).scalar_one()
            await conn.execute(_STAGE_DRAWN, [{"code": c} for c in drawn])
            staged += (await conn.execute(_CHANGES)).scalar_one() - before
        if on_progress is not None:
            on_progress(staged)
    if staged < count:
        raise _exhausted(count, staged)


async def drop_staging(conn: AsyncConnection) -> None:
    """Forget what ``stage_sqlite`` drew (the pooled connection outlives the generation)."""
    async with reading(conn):
        await conn.execute(text("DROP TABLE IF EXISTS promocode_staging"))


async def _publish_staged(
    conn: AsyncConnection,
    *,
    drawer: Drawer,
    count: int,
    generation_id: int,
    usage_count: int,
    on_progress: Progress | None,
) -> list[str]:
    ids = {"generation_id": generation_id, "usage_count": usage_count}
    made = (await conn.execute(_PUBLISH, {**ids, "count": count})).rowcount
    sample = list((await conn.execute(_PUBLISHED_SAMPLE, {**ids, "sample": SAMPLE})).scalars())
    if made < count:  # codes stored by somebody else since they were drawn
        more = await _store_sqlite(
            conn,
            drawer=drawer,
            count=count - made,
            generation_id=generation_id,
            usage_count=usage_count,
            on_progress=None,
        )
        sample.extend(more[: SAMPLE - len(sample)])
    if on_progress is not None:
        on_progress(count)
    return sample


_EXISTING = select(promocodes.c.code).where(
    promocodes.c.code.in_(bindparam("codes", expanding=True))
)


async def _store_sqlite(
    conn: AsyncConnection,
    *,
    drawer: Drawer,
    count: int,
    generation_id: int,
    usage_count: int,
    on_progress: Progress | None,
) -> list[str]:
    sample: list[str] = []
    done = 0
    rounds = 0
    while done < count:
        rounds += 1
        if rounds > MAX_ROUNDS * (count // SQLITE_CHUNK + 1):
            raise _exhausted(count, done)
        wanted = min(SQLITE_CHUNK, count - done)
        # Draw more than is missing, as on PostgreSQL: some may be taken, or drawn twice.
        drawn = list(dict.fromkeys(drawer.draw(wanted + wanted // 4 + 16)))
        # The codes this generation stored already are in the table too (same transaction).
        taken = set((await conn.execute(_EXISTING, {"codes": drawn})).scalars())
        fresh = [c for c in drawn if c not in taken][:wanted]
        if not fresh:
            continue
        await conn.execute(
            promocodes.insert(),
            [
                {"code": c, "generation_id": generation_id, "usage_count": usage_count}
                for c in fresh
            ],
        )
        sample.extend(fresh[: max(0, SAMPLE - len(sample))])
        done += len(fresh)
        if on_progress is not None:
            on_progress(done)
    return sample


def _exhausted(count: int, done: int) -> PatternExhausted:
    return PatternExhausted(
        f"only {done} of {count} codes could be drawn that no other promo code has: "
        "the pattern's space is crowded; add # to the pattern or characters to the charset"
    )
