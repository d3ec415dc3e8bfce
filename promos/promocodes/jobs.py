"""Generations run in the background, for the console: a million codes take seconds, and a
page must not wait for them.

The generation itself is the API's (``changes.generate_apart``): all the codes or none,
audited with the person who asked. Around it, a row of ``promocode_generation_jobs`` says how
far it got, so that a progress page served by any node or worker can show it: the progress is
written every ``PROGRESS_SECONDS`` in short transactions of its own (on SQLite too: there the
codes are drawn before the generation takes the one writer, and the page reads without it).
The process running a job shows its fresher progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.auth.service import Principal
from promos.clock import Clock
from promos.db import Database
from promos.errors import NotFound, PromosError
from promos.promocodes import changes
from promos.promocodes.service import GenerationSpec, check_spec
from promos.promocodes.tables import promocode_generation_jobs as jobs

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.5
# A running job whose row has not moved for this long, and that no task of this process
# runs, was cut off (its server stopped or died): its codes were never committed.
STALE = timedelta(minutes=2)
_STOPPED = "stopped with the server before it ended: no code was written"
Status = Literal["running", "done", "failed", "interrupted"]


class GenerationJobNotFound(NotFound):
    code = "generation_job_not_found"


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    status: Status
    summary: str
    count: int
    done: int
    generation_id: int | None
    message: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def percent(self) -> int:
        return min(100, self.done * 100 // self.count) if self.count else 100


async def create_job(
    conn: AsyncConnection, *, summary: str, count: int, created_by: str, now: datetime
) -> int:
    """A new job, running, nothing done yet; its id."""
    job_id: int = (
        await conn.execute(
            jobs.insert()
            .values(
                status="running",
                summary=summary[:500],
                count=count,
                done=0,
                created_by=created_by[:255],
                created_at=now,
                updated_at=now,
            )
            .returning(jobs.c.id)
        )
    ).scalar_one()
    return job_id


async def get_job(conn: AsyncConnection, job_id: int) -> Job:
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
    if row is None:
        raise GenerationJobNotFound(f"generation job {job_id} does not exist")
    return Job(**dict(row._mapping))  # noqa: SLF001 - SQLAlchemy's public row mapping


async def record_progress(conn: AsyncConnection, job_id: int, *, done: int, now: datetime) -> None:
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == "running")
        .values(done=done, updated_at=now)
    )


async def finish_job(
    conn: AsyncConnection,
    job_id: int,
    *,
    status: Literal["done", "failed"],
    done: int,
    now: datetime,
    generation_id: int | None = None,
    message: str | None = None,
) -> None:
    """Record the job's outcome, once (a job already finished keeps its first one)."""
    await conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == "running")
        .values(
            status=status,
            done=done,
            generation_id=generation_id,
            message=None if message is None else message[:1000],
            updated_at=now,
        )
    )


def summary_of(spec: GenerationSpec) -> str:
    """What a job makes, in a few words: ``1,000 codes SUMMER-####``."""
    shape = f"{spec.prefix}{spec.pattern}{spec.postfix}"
    return f"{spec.count:,} code{'s' if spec.count != 1 else ''} {shape}"


class GenerationRunner:
    """Runs generations as tasks of this process and knows how far each one got."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database = database
        self._clock = clock
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._done: dict[int, int] = {}

    async def start(self, *, actor: Principal, spec: GenerationSpec) -> int:
        """Check ``spec`` (the API's checks, raised here, before anything is written), record
        the job and start it; the job's id."""
        now = self._clock()
        check_spec(spec, today=now.date())
        async with self._database.begin() as conn:
            job_id = await create_job(
                conn,
                summary=summary_of(spec),
                count=spec.count,
                created_by=f"{actor.kind}:{actor.id} ({actor.name})",
                now=now,
            )
        self._done[job_id] = 0
        task = asyncio.create_task(self._run(job_id, actor, spec), name=f"generation {job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._forget(job_id))
        return job_id

    def _forget(self, job_id: int) -> None:
        self._tasks.pop(job_id, None)
        self._done.pop(job_id, None)

    async def job(self, conn: AsyncConnection, job_id: int) -> Job:
        """The job as its row says, with this process's fresher progress of a job it runs,
        and "interrupted" for a job nobody runs any more."""
        found = await get_job(conn, job_id)
        if found.status != "running":
            return found
        if job_id in self._tasks:
            done = max(found.done, self._done.get(job_id, 0))
            return replace(found, done=done)
        if self._clock() - found.updated_at > STALE:
            return replace(found, status="interrupted")
        return found

    async def wait(self, job_id: int) -> None:
        """Until the job of this process ends (at once if it is not running here)."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)

    async def drain(self) -> None:
        """Stop every job of this process (at shutdown): each is rolled back and recorded as
        failed, so nothing is left half-written or shown as running."""
        running = dict(self._tasks)
        if not running:
            return  # nothing to record: a shutdown during an outage must not need the database
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        # A task cancelled before its first step never reached its own ``finally``.
        async with self._database.begin() as conn:
            for job_id in running:
                await finish_job(
                    conn, job_id, status="failed", done=0, now=self._clock(), message=_STOPPED
                )

    async def _run(self, job_id: int, actor: Principal, spec: GenerationSpec) -> None:
        writes: set[asyncio.Task[None]] = set()
        last = time.monotonic()

        def progress(done: int) -> None:
            nonlocal last
            self._done[job_id] = done
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                write = asyncio.create_task(self._write_progress(job_id, done))
                writes.add(write)
                write.add_done_callback(writes.discard)

        status: Literal["done", "failed"] = "failed"
        generation_id = None
        message = None
        try:
            made = await changes.generate_apart(
                self._database, actor=actor, spec=spec, now=self._clock(), on_progress=progress
            )
            status, generation_id = "done", made.generation.id
        except PromosError as exc:
            message = exc.message
        except asyncio.CancelledError:
            message = _STOPPED
            raise
        except Exception:
            log.exception("promo code generation job %s failed", job_id)
            message = "failed (the server's log says why): no code was written"
        finally:
            await asyncio.gather(*writes, return_exceptions=True)
            async with self._database.begin() as conn:
                await finish_job(
                    conn,
                    job_id,
                    status=status,
                    done=spec.count if status == "done" else 0,
                    now=self._clock(),
                    generation_id=generation_id,
                    message=message,
                )

    async def _write_progress(self, job_id: int, done: int) -> None:
        try:
            async with self._database.begin() as conn:
                await record_progress(conn, job_id, done=done, now=self._clock())
        except Exception:  # noqa: BLE001 - progress is a courtesy; the generation goes on
            log.warning("could not record the progress of generation job %s", job_id)
