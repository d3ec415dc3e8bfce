"""What ``/metrics`` reads from the database at scrape time: codes left, the outbox backlog.

One process answers a scrape; the database is shared, so its view is every worker's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes.tables import batch_clients, batches, codes
from promos.db import Database, DatabaseUnavailable
from promos.events.tables import webhook_deliveries
from promos.observability import metrics

log = logging.getLogger(__name__)

# A scrape answers within Prometheus' own timeout (10 s by default), database or not.
READ_TIMEOUT_SECONDS = 5.0

# Free codes per batch and client: a walk of the partial index of free codes (ix_codes_free)
# alone.
_FREE_BY_BATCH = (
    select(codes.c.batch_id, codes.c.client_id, func.count())
    .where(codes.c.issued_at.is_(None))
    .group_by(codes.c.batch_id, codes.c.client_id)
)
# Each client of each unexpired batch, exhausted or not.
_OPEN_BATCHES = (
    select(batch_clients.c.batch_id, batch_clients.c.client_id)
    .join(batches, batches.c.id == batch_clients.c.batch_id)
    .where(batches.c.expired.is_(False))
)


@dataclass(frozen=True, slots=True)
class Stock:
    """The database's side of a scrape."""

    # (batch, client, free codes) of each client of each unexpired batch
    codes_left: list[tuple[UUID, UUID, int]]
    outbox_due: int  # pending deliveries due now
    outbox_scheduled: int  # pending deliveries due later (backing off, or leased to a sender)
    oldest_due_seconds: float  # how long the longest-waiting due delivery has been due


async def read_stock(conn: AsyncConnection, *, now: datetime) -> Stock:
    """Codes left per client of each unexpired batch (exhausted ones as 0) and the outbox's
    pending deliveries."""
    free: dict[tuple[UUID, UUID], int] = {
        (row[0], row[1]): int(row[2]) for row in await conn.execute(_FREE_BY_BATCH)
    }
    left = [
        (row[0], row[1], free.get((row[0], row[1]), 0)) for row in await conn.execute(_OPEN_BATCHES)
    ]
    due_at = webhook_deliveries.c.next_attempt_at
    pending, due, earliest = (
        await conn.execute(
            select(func.count(), func.sum(case((due_at <= now, 1), else_=0)), func.min(due_at))
            # The partial index of pending deliveries (ix_webhook_deliveries_due) answers this.
            .where(webhook_deliveries.c.status == "pending")
        )
    ).one()
    due = int(due or 0)
    overdue = (now - earliest).total_seconds() if due and earliest is not None else 0.0
    return Stock(left, due, int(pending) - due, max(overdue, 0.0))


class StockCollector(Collector):
    """The ``Stock`` of one scrape as gauges, and whether the database could be read."""

    def __init__(self, stock: Stock | None) -> None:
        self._stock = stock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stock = self._stock
        yield GaugeMetricFamily(
            "promos_database_up",
            "1 if this scrape could read the database, else 0.",
            value=0 if stock is None else 1,
        )
        if stock is None:
            return
        left = GaugeMetricFamily(
            "promos_pool_codes_left",
            "Free codes of each client of each unexpired batch (0 when exhausted).",
            labels=["batch_id", "client_id"],
        )
        for batch_id, client_id, count in stock.codes_left:
            left.add_metric([str(batch_id), str(client_id)], count)
        yield left
        backlog = GaugeMetricFamily(
            "promos_outbox_backlog",
            "Webhook and callback deliveries not delivered yet: due now, or scheduled later.",
            labels=["state"],
        )
        backlog.add_metric(["due"], stock.outbox_due)
        backlog.add_metric(["scheduled"], stock.outbox_scheduled)
        yield backlog
        yield GaugeMetricFamily(
            "promos_outbox_oldest_due_seconds",
            "How long the longest-waiting due delivery has been due (0 when none is).",
            value=stock.oldest_due_seconds,
        )


async def exposition(database: Database, *, now: datetime) -> bytes:
    """The text a scrape answers: every worker's metrics and what the database holds now."""
    stock: Stock | None
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS), database.autocommit() as conn:
            stock = await read_stock(conn, now=now)
    except (DatabaseUnavailable, SQLAlchemyError, OSError, TimeoutError) as exc:
        # The rest of the metrics are worth answering with; promos_database_up says it.
        log.warning("metrics: the database could not be read: %s", type(exc).__name__)
        stock = None
    return generate_latest(metrics.collector(StockCollector(stock)))
