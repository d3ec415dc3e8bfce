"""Delivering the outbox: claim due deliveries, POST them, record each attempt, retry later.

Delivery is at least once. A claimed delivery's ``next_attempt_at`` is pushed one lease ahead
before it is sent, so a dispatcher that dies mid-send leaves it due again when the lease runs
out; a failed attempt makes it due again after an exponential backoff; after
``max_attempts`` it is ``failed`` (and can be replayed). Claiming is one statement: on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so that dispatchers in several processes never
take the same delivery at once; on SQLite the one writer does the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from promos import __version__
from promos.clock import Clock
from promos.db import Database
from promos.events.destinations import Destinations
from promos.events.errors import DestinationRefused
from promos.events.signing import signed_headers
from promos.events.tables import webhook_attempts, webhook_deliveries, webhook_subscriptions
from promos.observability import metrics
from promos.settings import Settings

log = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500
EXCERPT_LENGTH = 500  # characters of a receiver's answer kept with the attempt
EXCERPT_BYTES = 4 * EXCERPT_LENGTH  # read at most: enough for 500 characters of UTF-8
SUCCESS = range(200, 300)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt ``n`` failed: the next is due ``min(base * 2**(n-1), most)`` seconds later."""

    max_attempts: int = 20
    base_seconds: float = 2.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        seconds = min(self.base_seconds * 2 ** max(attempts - 1, 0), self.max_seconds)
        return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    event_id: int
    event_type: str
    kind: str
    url: str
    content_type: str
    body: str
    attempts: int
    secret: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    # The start of the receiver's answer, as text (for the delivery log).
    excerpt: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code in SUCCESS


class Dispatcher:
    """Delivers due deliveries; ``start()`` runs it in the background until ``stop()``."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock,
        callback_secret: str | None,
        destinations: Destinations | None = None,
        policy: RetryPolicy | None = None,
        timeout_seconds: float = 10.0,
        poll_seconds: float = 1.0,
        batch_size: int = 32,
        lease_seconds: float | None = None,
        wait: Callable[[asyncio.Event, float], Awaitable[None]] | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._callback_secret = callback_secret
        # Where subscriptions' webhooks may go; the billing callback is the operator's own.
        self._destinations = destinations or Destinations()
        self.policy = policy or RetryPolicy()
        self._timeout = timeout_seconds
        self._poll = poll_seconds
        self._batch_size = batch_size
        # Long enough that a live dispatcher always finishes an attempt within it.
        self.lease = timedelta(seconds=lease_seconds or timeout_seconds + 30)
        self._wait = wait or _wait_for_event
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._callback_http: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings, database: Database, clock: Clock) -> Dispatcher:
        """The dispatcher the settings describe (in the server, or ``promos worker``)."""
        secret = settings.webhook_secret
        return cls(
            database,
            clock=clock,
            callback_secret=secret.get_secret_value() if secret is not None else None,
            destinations=Destinations.allowing(settings.webhook_allowed_hosts),
            policy=RetryPolicy(
                max_attempts=settings.webhook_max_attempts,
                base_seconds=settings.webhook_retry_base_seconds,
                max_seconds=settings.webhook_retry_max_seconds,
            ),
            timeout_seconds=settings.webhook_timeout_seconds,
            poll_seconds=settings.webhook_poll_seconds,
        )

    # --- one pass --------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Claim the deliveries due now, send them all, record the outcomes; how many."""
        now = self._clock()
        async with self._database.begin() as conn:
            claimed = await claim(
                conn,
                now=now,
                lease=self.lease,
                limit=self._batch_size,
                callback_secret=self._callback_secret,
            )
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(self._client(c.kind), c) for c in claimed))
        async with self._database.begin() as conn:
            for delivery, outcome in zip(claimed, outcomes, strict=True):
                await record(conn, delivery, outcome, now=self._clock(), policy=self.policy)
        self._report(claimed, outcomes)
        return len(claimed)

    def _report(self, claimed: list[Claimed], outcomes: list[Outcome]) -> None:
        """Count the recorded attempts; a warning per failure (never the URL: it may hold a key)."""
        for delivery, outcome in zip(claimed, outcomes, strict=True):
            if outcome.ok:
                metrics.WEBHOOK_DELIVERED.inc()
                continue
            metrics.WEBHOOK_FAILURES.inc()
            attempt = delivery.attempts + 1
            why = f"HTTP {outcome.status_code}" if outcome.status_code else _kind(outcome.error)
            if attempt >= self.policy.max_attempts:
                metrics.WEBHOOK_GIVEN_UP.inc()
                log.error(
                    "webhook delivery %s (event %s) failed for good after %s attempts: %s",
                    delivery.id,
                    delivery.event_id,
                    attempt,
                    why,
                )
            else:
                log.warning(
                    "webhook delivery %s (event %s) attempt %s of %s failed: %s",
                    delivery.id,
                    delivery.event_id,
                    attempt,
                    self.policy.max_attempts,
                    why,
                )

    async def _send(self, http: httpx.AsyncClient, delivery: Claimed) -> Outcome:
        body = delivery.body.encode()
        headers = {
            "Content-Type": delivery.content_type,
            "User-Agent": f"Promos/{__version__}",
            "Promos-Event": delivery.event_type,
            "Promos-Event-Id": str(delivery.event_id),
            "Promos-Delivery": str(delivery.id),
        }
        if delivery.secret:
            headers.update(
                signed_headers(
                    delivery.secret,
                    # The same for every attempt and replay of the message (Standard Webhooks).
                    message_id=f"{delivery.kind}_{delivery.event_id}",
                    timestamp=int(self._clock().timestamp()),
                    body=body,
                )
            )
        started = time.monotonic()
        try:
            async with http.stream("POST", delivery.url, content=body, headers=headers) as response:
                excerpt = await _excerpt(response)
        except DestinationRefused as exc:
            # Refused before any connection; due again later like any failure, so that a host
            # allowed meanwhile (or a name that resolves elsewhere again) gets it.
            return Outcome(None, f"DestinationRefused: {exc.message}", _ms_since(started))
        except httpx.HTTPError as exc:
            failure = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH]
            return Outcome(None, failure, _ms_since(started))
        refused = None if response.is_success else f"HTTP {response.status_code}"
        return Outcome(response.status_code, refused, _ms_since(started), excerpt)

    def _client(self, kind: str) -> httpx.AsyncClient:
        # No redirects followed (a redirect is not a delivery) and no proxies from the
        # environment: deliveries go where they are addressed. Webhooks only to the
        # destinations allowed, checked on the addresses connected to.
        if kind == "callback":
            if self._callback_http is None:
                self._callback_http = httpx.AsyncClient(
                    timeout=self._timeout, follow_redirects=False, trust_env=False
                )
            return self._callback_http
        if self._http is None:
            self._http = self._destinations.client(timeout=self._timeout)
        return self._http

    # --- running in the background -----------------------------------------------------------

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name="promos-dispatcher"
            )

    async def run(self) -> None:
        """Deliver until ``stop()``: a full pass goes again at once, else wait for a wake-up."""
        while not self._stopping:
            try:
                sent = await self.deliver_due()
            except Exception:
                # The database (or anything else) failing must not stop the dispatcher: the
                # deliveries stay in the database, and the next pass tries again.
                log.exception("webhook dispatcher: a pass failed; retrying after the poll")
                sent = 0
            if sent < self._batch_size and not self._stopping:
                self._wake.clear()
                await self._wait(self._wake, self._poll)

    async def stop(self) -> None:
        """Finish the attempts in flight (up to one timeout), then stop."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=self._timeout + 5)
            except TimeoutError:
                log.warning("webhook dispatcher: stopped before its attempts finished")
        await self.close()

    async def close(self) -> None:
        for http in (self._http, self._callback_http):
            if http is not None:
                await http.aclose()
        self._http = self._callback_http = None


async def _wait_for_event(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


def _kind(error: str | None) -> str:
    """The exception's name alone: its message may quote the receiver's URL."""
    return (error or "no answer").split(":", 1)[0]


async def _excerpt(response: httpx.Response) -> str | None:
    """The start of the answer's body as text (``EXCERPT_LENGTH`` characters at most); the
    rest is not read (the connection is closed instead of reused)."""
    read = b""
    async for chunk in response.aiter_bytes():
        read += chunk
        if len(read) >= EXCERPT_BYTES:
            break
    if not read:
        return None
    try:
        text = read[:EXCERPT_BYTES].decode(response.charset_encoding or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        text = read[:EXCERPT_BYTES].decode("utf-8", "replace")
    # PostgreSQL's text holds no NUL character.
    return text[:EXCERPT_LENGTH].replace("\x00", "\ufffd")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


_CLAIM_COLUMNS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.event_id,
    webhook_deliveries.c.event_type,
    webhook_deliveries.c.url,
    webhook_deliveries.c.content_type,
    webhook_deliveries.c.body,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.kind,
    webhook_deliveries.c.subscription_id,
)


async def claim(
    conn: AsyncConnection,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    callback_secret: str | None = None,
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries for one lease, soonest due first."""
    due = (
        select(webhook_deliveries.c.id)
        .where(
            webhook_deliveries.c.status == "pending", webhook_deliveries.c.next_attempt_at <= now
        )
        .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = (
        await conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + lease)
            .returning(*_CLAIM_COLUMNS)
        )
    ).all()
    secrets = await _subscription_secrets(conn, {r.subscription_id for r in rows})
    claimed = [
        Claimed(
            id=r.id,
            event_id=r.event_id,
            event_type=r.event_type,
            kind=r.kind,
            url=r.url,
            content_type=r.content_type,
            body=r.body,
            attempts=r.attempts,
            secret=callback_secret if r.kind == "callback" else secrets.get(r.subscription_id),
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda c: c.id)


async def _subscription_secrets(conn: AsyncConnection, ids: set[Any]) -> dict[int, str]:
    ids.discard(None)
    if not ids:
        return {}
    rows = await conn.execute(
        select(webhook_subscriptions.c.id, webhook_subscriptions.c.secret).where(
            webhook_subscriptions.c.id.in_(ids)
        )
    )
    return {row.id: row.secret for row in rows}


async def record(
    conn: AsyncConnection,
    delivery: Claimed,
    outcome: Outcome,
    *,
    now: datetime,
    policy: RetryPolicy,
) -> None:
    """Log the attempt; the delivery is delivered, due again after the backoff, or failed."""
    number = delivery.attempts + 1
    await conn.execute(
        webhook_attempts.insert().values(
            delivery_id=delivery.id,
            number=number,
            attempted_at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            response_excerpt=outcome.excerpt,
        )
    )
    values: dict[str, Any] = {
        "attempts": webhook_deliveries.c.attempts + 1,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    if outcome.ok:
        values.update(status="delivered", delivered_at=now)
    elif number >= policy.max_attempts:
        values.update(status="failed")
    else:
        values.update(next_attempt_at=now + policy.delay(number))
    await conn.execute(
        update(webhook_deliveries)
        .where(
            and_(webhook_deliveries.c.id == delivery.id, webhook_deliveries.c.status == "pending")
        )
        .values(**values)
    )
