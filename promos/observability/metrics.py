"""The Prometheus metrics every process records, and how ``/metrics`` collects them.

With ``PROMETHEUS_MULTIPROC_DIR`` set before this module is first imported (``promos serve
--workers N`` sets it up, see ``promos.observability.multiproc``), every value lives in a
memory-mapped file of its process, and a scrape sums the files of all workers. Otherwise the
values live in this process's memory.
"""

from __future__ import annotations

import os
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
HTTP_REQUESTS = Histogram(
    "promos_http_request_duration_seconds",
    "HTTP requests by method, route template and status: how many (_count) and how long, "
    "from arrival to the end of the response, in seconds.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

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
    """The app has stopped: its pool no longer counts; a worker leaves the live sums."""
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
    if MULTIPROCESS:
        workers = CollectorRegistry()
        MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
        return _Together([workers, *extra])
    return _Together([REGISTRY, *extra])
