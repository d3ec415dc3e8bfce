"""Serve concurrent issue requests in groups: one statement (one commit) per group and batch.

A request waits only while the allowed statements are busy; the requests that arrive
meanwhile leave together in the next one. At low load a request leaves at once, alone.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from promos.clock import Clock
from promos.codes.issue import Outcomes, issue_codes, needs_transaction
from promos.codes.service import IssuedCode, IssueRequest
from promos.db import Database
from promos.errors import PromosError, Unavailable

log = logging.getLogger(__name__)


class Issuer:
    """Issues codes for many concurrent callers through ``issue_codes``, in groups."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        group_size: int = 64,
        concurrency: int = 1,
        linger_seconds: float = 0.0,
    ) -> None:
        self._database = database
        self._clock = clock
        self._group_size = group_size
        # SQLite has one writer: more than one transaction at a time would only queue there.
        self._concurrency = 1 if database.is_sqlite else concurrency
        self._linger = linger_seconds
        self._pending: list[tuple[IssueRequest, asyncio.Future[IssuedCode]]] = []
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._free_code_hints: dict[UUID, int] = {}

    async def issue(self, request: IssueRequest) -> IssuedCode:
        """Issue one code; raises the request's ``PromosError`` if it cannot be issued."""
        future: asyncio.Future[IssuedCode] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._dispatch()
        return await future

    async def drain(self) -> None:
        """Wait until every accepted request has its answer (for a graceful shutdown)."""
        while self._pending or self._tasks:
            self._dispatch(force=True)
            if self._tasks:
                await asyncio.wait(set(self._tasks))

    def _dispatch(self, *, force: bool = False) -> None:
        if self._linger and not force and len(self._pending) < self._group_size:
            if self._timer is None and self._pending:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._linger, self._on_timer)
            return
        while self._pending and self._running < self._concurrency:
            group = self._pending[: self._group_size]
            del self._pending[: self._group_size]
            self._start(group)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch(force=True)

    def _start(self, group: list[tuple[IssueRequest, asyncio.Future[IssuedCode]]]) -> None:
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._run(group))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running -= 1
        if self._pending:
            self._dispatch(force=True)

    async def _run(self, group: list[tuple[IssueRequest, asyncio.Future[IssuedCode]]]) -> None:
        requests = [request for request, _ in group]
        database = self._database
        in_transaction = needs_transaction(database.dialect, requests)
        outcomes: Outcomes = [None] * len(group)
        try:
            async with database.begin() if in_transaction else database.autocommit() as conn:
                await issue_codes(
                    conn, requests, outcomes, now=self._clock(), hints=self._free_code_hints
                )
        # Whatever failed fails the requests it undid, and only those. Outside a transaction,
        # what an earlier statement issued is committed: those requests get their codes.
        except Exception as exc:  # noqa: BLE001
            self._answer(group, [] if in_transaction else outcomes)
            self._fail(group, "issuing failed", exc)
            return
        except BaseException as exc:
            self._answer(group, [] if in_transaction else outcomes)
            self._fail(group, "issuing was cancelled", exc)
            raise
        self._answer(group, outcomes)

    @staticmethod
    def _answer(
        group: list[tuple[IssueRequest, asyncio.Future[IssuedCode]]], outcomes: Outcomes
    ) -> None:
        for (_, future), outcome in zip(group, outcomes, strict=False):
            if future.done() or outcome is None:
                continue
            if isinstance(outcome, PromosError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    @staticmethod
    def _fail(
        group: list[tuple[IssueRequest, asyncio.Future[IssuedCode]]],
        why: str,
        exc: BaseException,
    ) -> None:
        log.error(why, exc_info=exc)
        for _, future in group:
            if not future.done():
                future.set_exception(IssueFailed(why))


class IssueFailed(Unavailable):
    """The database failed the statement a request was in: the request issued nothing."""
