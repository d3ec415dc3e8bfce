"""The Prometheus metrics every process records, and how ``/metrics`` collects them.

With ``PROMETHEUS_MULTIPROC_DIR`` set before this module is first imported (``promos serve
--workers N`` sets it up, see ``promos.observability.multiproc``), every value lives in a
memory-mapped file of its process, and a scrape sums the files of all workers. Otherwise the
values live in this process's memory.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

# No *_created series: multiprocess mode has none, and the output is the same either way.
disable_created_metrics()  # type: ignore[no-untyped-call]

# What a worker writes to files (chosen by prometheus_client when it was imported).
MULTIPROCESS = values.ValueClass is not values.MutexValue

# --- HTTP -----------------------------------------------------------------------------------

# Labels: the method (unknown ones as OTHER), the route's template (never the raw path), and
# the status. The histogram's ``_count`` is the number of requests (no separate counter: one
# value less to write per request). Its buckets span the hot routes' ~1 ms to an upload's
# seconds.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_REQUESTS = Histogram(
    "promos_http_request_duration_seconds",
    "HTTP requests by method, route template and status: how many (_count) and how long, "
    "from arrival to the end of the response, in seconds.",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)

# How long a request's observation may wait in memory before its histogram has it.
FLUSH_SECONDS = 1.0


class _Times:
    """The observations of one (method, route, status) not yet in its histogram child."""

    __slots__ = ("child", "counts", "pending", "total")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        self.counts = [0] * (len(HTTP_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0
        self.pending = False


class RequestTimes:
    """``HTTP_REQUESTS``, observed in memory and handed to prometheus_client in bulk.

    A ``Histogram.observe`` takes a lock and writes two values, to memory-mapped files under
    ``--workers N``: with the observer's other work, that was twice the cost of the rest. Here
    an observation is a list increment; ``flush`` (at most ``FLUSH_SECONDS`` later, before a
    scrape, and when the app stops) adds each bucket's count and the sum with one write each.
    That uses the histogram child's ``_sum`` and ``_buckets``: prometheus_client has no public
    way to add many observations at once (tests/test_metrics.py checks the result against
    ``observe``).
    """

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._series: dict[tuple[str, str, int], _Times] = {}
        self._pending: list[_Times] = []
        self._flushing_on: asyncio.AbstractEventLoop | None = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request (inside the event loop, which flushes it within a second)."""
        key = (method, route, status)
        times = self._series.get(key)
        if times is None:
            times = _Times(self._histogram.labels(method, route, str(status)))
            self._series[key] = times
        if not times.pending:
            times.pending = True
            self._pending.append(times)
        # The first bucket whose bound is >= seconds, as Histogram.observe picks it.
        times.counts[bisect_left(HTTP_BUCKETS, seconds)] += 1
        times.total += seconds
        loop = asyncio.get_running_loop()
        if self._flushing_on is not loop:  # one timer per loop (a test's loop may be gone)
            self._flushing_on = loop
            loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Hand every pending observation to the histogram."""
        self._flushing_on = None
        pending, self._pending = self._pending, []
        for times in pending:
            child = times.child
            child._sum.inc(times.total)  # noqa: SLF001 - see the class docstring
            for bucket, count in zip(child._buckets, times.counts, strict=True):  # noqa: SLF001
                if count:
                    bucket.inc(count)
            times.counts = [0] * len(times.counts)
            times.total = 0.0
            times.pending = False


REQUEST_TIMES = RequestTimes(HTTP_REQUESTS)

# --- domain events, counted once their change is committed ----------------------------------

CODES_ISSUED = Counter(
    "promos_codes_issued", "Pool codes issued to customers (idempotent replays not counted)."
)
PROMOCODES_REDEEMED = Counter(
    "promos_promocodes_redeemed", "Promo code uses taken at checkout (replays not counted)."
)
OFFER_CLAIMS = Counter(
    "promos_offer_claims", "Offer claims counted (replayed transaction ids not counted)."
)
REFERRAL_REWARDS = Counter(
    "promos_referral_rewards", "Referral rewards granted to referrers (once per referred user)."
)
WEBHOOK_DELIVERED = Counter(
    "promos_webhook_deliveries", "Webhook and callback deliveries that a receiver accepted (2xx)."
)
WEBHOOK_FAILURES = Counter(
    "promos_webhook_delivery_failures",
    "Delivery attempts that failed (no answer, or not 2xx); each is retried after a backoff.",
)
WEBHOOK_GIVEN_UP = Counter(
    "promos_webhook_deliveries_given_up",
    "Deliveries marked failed after their last attempt (they can still be replayed).",
)

# --- the database pool of each process, summed over the live workers ------------------------

DB_POOL_IN_USE = Gauge(
    "promos_db_pool_connections_in_use",
    "Database connections checked out of the pools now (summed over live processes).",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "promos_db_pool_size",
    "Connections the pools keep (PROMOS_DB_POOL_SIZE per process; PROMOS_DB_MAX_OVERFLOW "
    "more may open at peaks).",
    multiprocess_mode="livesum",
)


def observe_pool(engine: AsyncEngine) -> None:
    """Count this engine's checked-out connections in ``DB_POOL_IN_USE`` (once per engine)."""

    # Every checkout is matched by one checkin, also for a connection that was invalidated;
    # the listeners stay with the engine's pool when ``dispose()`` recreates it.
    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(*_: Any) -> None:
        DB_POOL_IN_USE.inc()

    @event.listens_for(engine.sync_engine, "checkin")
    def _checkin(*_: Any) -> None:
        DB_POOL_IN_USE.dec()


def _pool_size(engine: AsyncEngine) -> int:
    pool = engine.sync_engine.pool
    return pool.size() if isinstance(pool, QueuePool) else 0


def app_started(engine: AsyncEngine) -> None:
    """An app serves from this engine now: its pool's size counts."""
    DB_POOL_SIZE.inc(_pool_size(engine))


def app_stopped(engine: AsyncEngine) -> None:
    """The app has stopped: its requests are counted, its pool no longer counts, and a worker
    leaves the live sums."""
    REQUEST_TIMES.flush()
    DB_POOL_SIZE.dec(_pool_size(engine))
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if MULTIPROCESS and directory:
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


class _Together(Collector):
    def __init__(self, parts: Iterable[Collector]) -> None:
        self._parts = list(parts)

    def collect(self) -> Iterable[Any]:
        for part in self._parts:
            yield from part.collect()


def collector(*extra: Collector) -> Collector:
    """What a scrape shows: every worker's metrics (or this process's), and ``extra``."""
    REQUEST_TIMES.flush()  # this process's requests up to now; other workers' within a second
    if MULTIPROCESS:
        workers = CollectorRegistry()
        MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
        return _Together([workers, *extra])
    return _Together([REGISTRY, *extra])
