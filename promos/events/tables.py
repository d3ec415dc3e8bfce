"""The outbox (events written with the change that caused them), subscriptions, deliveries.

An event is written to ``outbox`` in the transaction of the change it reports, together with
one ``webhook_deliveries`` row per receiver. The dispatcher claims due deliveries, sends them,
and records every attempt in ``webhook_attempts``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from promos.db import BigIntId, UTCDateTime, metadata

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("event_type", String(100), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    # Event types (or "*" for all) this subscription receives.
    Column("event_types", JSON, nullable=False),
    # Kept as given: it signs every delivery (HMAC), so it cannot be a one-way digest.
    Column("secret", String(255), nullable=False),
    # Whether it receives events: not while paused, never again once deleted.
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("deleted", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
)

DELIVERY_KINDS = ("callback", "webhook")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "cancelled")
# Failing: given up, or waiting to be tried again after a failed attempt.
FAILING = "status = 'failed' OR (status = 'pending' AND last_error IS NOT NULL)"

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("event_id", BigIntId, ForeignKey("outbox.id"), nullable=False, index=True),
    Column(
        "subscription_id",
        BigIntId,
        ForeignKey("webhook_subscriptions.id"),
        nullable=True,
        index=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # When the next attempt is due; a claimed delivery's lease (a crashed dispatcher's claims
    # become due again when it runs out).
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("replay_of", BigIntId, ForeignKey("webhook_deliveries.id"), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    CheckConstraint("kind IN ('callback', 'webhook')", name="kind_known"),
    CheckConstraint(
        "status IN ('pending', 'delivered', 'failed', 'cancelled')", name="status_known"
    ),
    # What the dispatcher claims: pending deliveries, soonest due first.
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        "id",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    # The log's failing deliveries, newest first (few: a partial index).
    Index(
        "ix_webhook_deliveries_failing",
        "id",
        postgresql_where=text(FAILING),
        sqlite_where=text(FAILING),
    ),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id", BigIntId, ForeignKey("webhook_deliveries.id"), nullable=False, index=True
    ),
    Column("number", Integer, nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    # The start of the receiver's answer (promos.events.dispatcher.EXCERPT_LENGTH).
    Column("response_excerpt", Text, nullable=True),
    # Failed attempts per day (the dashboard).
    Index("ix_webhook_attempts_attempted", "attempted_at"),
)
