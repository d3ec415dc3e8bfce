"""Serve concurrent issue requests in groups: one statement (one commit) per group and batch.

A request waits only while the allowed statements are busy; the requests that arrive
meanwhile leave together in the next one. At low load a request leaves at once, alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeGuard
from uuid import UUID

from promos.batching import Batcher
from promos.clock import Clock
from promos.codes.issue import (
    Outcome,
    Outcomes,
    issue_codes,
    issue_codes_citus_lean,
    issue_codes_lean,
    needs_transaction,
)
from promos.codes.service import IssuedCode, IssueRequest
from promos.db import Database
from promos.errors import PromosError, Unavailable
from promos.events.outbox import Demand, Emitted
from promos.observability import metrics

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
        on_events: Callable[[], None] | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        # Called when a group's code.issued events have committed (wakes the dispatcher).
        self._on_events = on_events
        self._code_events = Demand()
        self._free_code_hints: dict[tuple[UUID, UUID], int] = {}
        self._batcher: Batcher[IssueRequest, Outcome] = Batcher(
            self._issue_group,
            group_size=group_size,
            # SQLite has one writer: more than one transaction at a time would only queue.
            concurrency=1 if database.is_sqlite else concurrency,
            linger=linger_seconds,
            per_turn=True,
        )

    async def issue(self, request: IssueRequest) -> IssuedCode:
        """Issue one code; raises the request's ``PromosError`` if it cannot be issued."""
        outcome = await self._batcher.submit(request)
        if isinstance(outcome, PromosError):
            raise outcome
        return outcome

    async def drain(self) -> None:
        """Wait until every accepted request has its answer (for a graceful shutdown)."""
        await self._batcher.drain()

    async def _issue_group(self, requests: Sequence[IssueRequest]) -> list[Outcome]:
        outcomes: Outcomes = [None] * len(requests)
        emitted = Emitted()
        now = self._clock()
        await self._serve(requests, list(range(len(requests))), outcomes, now=now, emitted=emitted)
        # Committed now. A replay carries its first issue's time, read back from the database:
        # only codes stamped with this very `now` object are new (a repeated key shares one).
        metrics.CODES_ISSUED.inc(
            len({(o.client_id, o.code) for o in outcomes if _issued(o) and o.issued_at is now})
        )
        # After a failure too: outside a transaction, earlier statements' events committed.
        if emitted.count and self._on_events is not None:
            self._on_events()
        return [o if o is not None else IssueFailed("issuing failed") for o in outcomes]

    async def _serve(
        self,
        requests: Sequence[IssueRequest],
        indices: list[int],
        outcomes: Outcomes,
        *,
        now: datetime,
        emitted: Emitted,
    ) -> None:
        """Issue for ``requests[i]``, i in ``indices``. When the database refuses the statement
        for something in the data rather than an outage, the requests it left undecided are
        served again in halves: one request's bad data must fail that request alone, never the
        others grouped with it. A request that still fails alone is logged, with the error."""
        group = [requests[i] for i in indices]
        found, failure = await self._attempt(group, now=now, emitted=emitted)
        for i, outcome in zip(indices, found, strict=True):
            outcomes[i] = outcome
        if failure is None or isinstance(failure, Unavailable):
            return  # an outage: every undecided request answers 503, logged once by OutageLog
        undecided = [i for i in indices if outcomes[i] is None]
        if len(undecided) == 1:
            log.error("issuing failed", exc_info=failure)
            return
        half = len(undecided) // 2
        for part in (undecided[:half], undecided[half:]):
            if part:
                await self._serve(requests, part, outcomes, now=now, emitted=emitted)

    async def _attempt(
        self, requests: Sequence[IssueRequest], *, now: datetime, emitted: Emitted
    ) -> tuple[Outcomes, Exception | None]:
        """One try at ``requests``: their outcomes (None where it decided nothing) and the
        failure that stopped it, if any."""
        database = self._database
        # Unknown yet (a start during an outage): a transaction is right on every engine.
        in_transaction = needs_transaction(
            database.dialect, requests, citus=database.citus is not False
        )
        outcomes: Outcomes = [None] * len(requests)
        lean = not in_transaction and database.citus is False and database.issuing is not None
        try:
            if database.citus and database.citus_delegated and not _keyed(requests):
                # Its outcomes are filled in only once their transaction has committed.
                await issue_codes_citus_lean(
                    database,
                    requests,
                    outcomes,
                    now=now,
                    hints=self._free_code_hints,
                    emitted=emitted,
                )
                return outcomes, None
            if lean:
                await issue_codes_lean(
                    database,
                    requests,
                    outcomes,
                    now=now,
                    hints=self._free_code_hints,
                    emitted=emitted,
                    demand=self._code_events,
                )
                return outcomes, None
            async with database.begin() if in_transaction else database.autocommit() as conn:
                await issue_codes(
                    conn,
                    requests,
                    outcomes,
                    now=now,
                    hints=self._free_code_hints,
                    emitted=emitted,
                    demand=self._code_events,
                    citus=database.citus,
                )
        # What failed undoes the requests of its transaction, and only those. Outside a
        # transaction, what an earlier statement issued is committed: those keep their codes.
        except Exception as error:  # noqa: BLE001 - sorted out by the caller, per request
            committed = not in_transaction or (database.citus_delegated and not _keyed(requests))
            return (outcomes if committed else [None] * len(requests)), error
        return outcomes, None


def _keyed(requests: Sequence[IssueRequest]) -> bool:
    return any(r.idempotency_key for r in requests)


def _issued(outcome: Outcome | None) -> TypeGuard[IssuedCode]:
    return isinstance(outcome, IssuedCode)


class IssueFailed(Unavailable):
    """The database failed the statement a request was in: the request issued nothing."""
