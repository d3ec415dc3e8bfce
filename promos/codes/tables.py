"""Code pools: clients, batches, their codes, and the per-customer locks of rule batches.

A code row is also the record of its issue: a code is issued at most once, ever, so the
customer, time and idempotency key of that issue live on the code itself.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from promos.db import UTCDateTime, metadata

clients = Table(
    "clients",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)

batches = Table(
    "batches",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("client_id", Uuid, ForeignKey("clients.id"), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("max_per_customer", Integer, nullable=True),
    Column("time_limit_days", Integer, nullable=True),
    Column("expired", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
    # Whether a released or expired hold's code goes back to the pool (else it is burnt).
    # Read by holds alone (promos.codes.holds), never by the issuing statements.
    Column("return_released_codes", Boolean, nullable=False, server_default=false()),
    CheckConstraint("max_per_customer IS NULL OR max_per_customer > 0", name="max_positive"),
    CheckConstraint("time_limit_days IS NULL OR time_limit_days > 0", name="time_positive"),
    # The console's listing, paged by key (promos.codes.service.batches_page).
    Index("ix_batches_created", "created_at", "id"),
)

# The clients whose codes a batch holds, and the batch's own client (batches.client_id): a
# batch may hold codes of several clients (Ango's upload names a client on every row). An
# issue for a client not listed is a client mismatch; one for a listed client whose codes are
# all gone is an exhausted pool.
batch_clients = Table(
    "batch_clients",
    metadata,
    Column("client_id", Uuid, ForeignKey("clients.id"), primary_key=True),
    Column("batch_id", Uuid, ForeignKey("batches.id"), primary_key=True),
    Index("ix_batch_clients_batch", "batch_id", "client_id"),
)

# Keyed by tenant: the primary key leads with the client, and no index orders codes across
# batches, so that the only way to find a batch's next free code is ix_codes_free.
codes = Table(
    "codes",
    metadata,
    Column("client_id", Uuid, primary_key=True),
    Column("code", Text, primary_key=True),
    Column("batch_id", Uuid, nullable=False),
    # Position in the batch (upload order); codes are issued in this order.
    Column("seq", BigInteger, nullable=False),
    Column("customer_id", String(255), nullable=True),
    Column("issued_at", UTCDateTime, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    # The free codes of a batch's client, in order: issuing walks this index and nothing else.
    # (With an index on a plain id, PostgreSQL's planner preferred it and filtered past issued
    # rows; without the client, an issue would filter past the batch's other clients' codes.)
    Index(
        "ix_codes_free",
        "batch_id",
        "client_id",
        "seq",
        postgresql_where=text("issued_at IS NULL"),
        sqlite_where=text("issued_at IS NULL"),
    ),
    # A customer's codes, and the per-customer rule count within a time window.
    Index(
        "ix_codes_customer",
        "customer_id",
        "batch_id",
        "issued_at",
        postgresql_where=text("customer_id IS NOT NULL"),
        sqlite_where=text("customer_id IS NOT NULL"),
    ),
    # A batch's issues in time: the console's counts since their checkpoint and its issues per
    # day (promos.codes.counts). Partial, so free codes cost it nothing.
    Index(
        "ix_codes_issued",
        "batch_id",
        "issued_at",
        postgresql_where=text("issued_at IS NOT NULL"),
        sqlite_where=text("issued_at IS NOT NULL"),
    ),
    # Unique per client, batch and key: a distributed table's unique keys hold its
    # distribution column (client_id, on Citus); the key's lock row makes retries take turns.
    Index(
        "uq_codes_idempotency",
        "client_id",
        "batch_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
        sqlite_where=text("idempotency_key IS NOT NULL"),
    ),
    # SQLite only: on PostgreSQL the per-row check of a bulk load cost more than the rows
    # themselves, and batches are never deleted (migration 0028).
    ForeignKeyConstraint(["batch_id"], ["batches.id"]).ddl_if(dialect="sqlite"),
)

# One row per (client, batch, Idempotency-Key). Issuing locks it before looking for the key's
# earlier code, so that concurrent retries take turns and each later one finds the first one's
# code. The client leads the key so that the row lives next to the client's codes on Citus.
idempotency_locks = Table(
    "idempotency_locks",
    metadata,
    Column("client_id", Uuid, primary_key=True),
    Column("batch_id", Uuid, ForeignKey("batches.id"), primary_key=True),
    Column("idempotency_key", String(255), primary_key=True),
    Column("locked_at", UTCDateTime, nullable=False),
)

# One row per (batch, customer) of a batch with rules, on PostgreSQL: the times of the
# customer's recent issues. Issuing updates it in the same statement that takes the code,
# with the rule in its WHERE clause, so the rule is checked on the newest row, locked.
# ``client_id`` is the batch's own client (batches.client_id), whatever client the codes are
# of: the rule counts per batch, and on Citus the row lives next to that client's codes.
customer_quotas = Table(
    "customer_quotas",
    metadata,
    Column("client_id", Uuid, primary_key=True),
    Column("batch_id", Uuid, ForeignKey("batches.id"), primary_key=True),
    Column("customer_id", String(255), primary_key=True),
    Column(
        "issued",
        ARRAY(DateTime(timezone=True)).with_variant(JSON(), "sqlite"),
        nullable=False,
    ),
)

# A batch's counters for the console (promos.codes.counts), kept off the issuing path: ``total``
# is written where codes are added; ``issued`` counts the issues before ``counted_until`` and
# is brought forward when read, from ix_codes_issued.
pool_counts = Table(
    "pool_counts",
    metadata,
    Column("batch_id", Uuid, ForeignKey("batches.id"), primary_key=True),
    Column("total", BigInteger, nullable=False),
    Column("issued", BigInteger, nullable=False),
    Column("counted_until", UTCDateTime, nullable=False),
)

# The issues of a batch per day (UTC) before its ``pool_counts.counted_until``.
pool_daily_issues = Table(
    "pool_daily_issues",
    metadata,
    Column("batch_id", Uuid, ForeignKey("batches.id"), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("issued", BigInteger, nullable=False),
)

# A pool code held for an order (promos.codes.holds). Its code has left the free codes as an
# issued one does (``codes.issued_at`` set, ``customer_id`` the holder), so issuing never
# looks here. Ended holds stay, as the record of what became of their code: ``returned``
# says whether it went back to the pool (else it was burnt; None while held or confirmed).
pool_code_holds = Table(
    "pool_code_holds",
    metadata,
    # The key is (client_id, id) on PostgreSQL (migration 0025: Citus places the holds with
    # their client's codes); on SQLite ``id`` alone, the rowid. ``id`` is unique either way.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("batch_id", Uuid, ForeignKey("batches.id"), nullable=False),
    Column("client_id", Uuid, nullable=False),
    # Null only inside the transaction that takes it (the row is inserted first, so that a
    # concurrent request of the same order waits on uq_pool_code_holds_order).
    Column("code", Text, nullable=True),
    Column("customer_id", String(255), nullable=False),
    Column("order_ref", String(255), nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("returned", Boolean, nullable=True),
    CheckConstraint("status IN ('held', 'confirmed', 'released', 'expired')", name="status_known"),
    ForeignKeyConstraint(["client_id", "code"], ["codes.client_id", "codes.code"]),
    # A batch's live holds by expiry: the console's list, and the lapsed ones to end.
    Index(
        "ix_pool_code_holds_held",
        "batch_id",
        "expires_at",
        postgresql_where=text("status = 'held'"),
        sqlite_where=text("status = 'held'"),
    ),
    # One live hold per order, client and batch: the same order asking again gets the same hold.
    Index(
        "uq_pool_code_holds_order",
        "client_id",
        "batch_id",
        "order_ref",
        unique=True,
        postgresql_where=text("status IN ('held', 'confirmed')"),
        sqlite_where=text("status IN ('held', 'confirmed')"),
    ),
    Index(
        "uq_pool_code_holds_idempotency",
        "client_id",
        "batch_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
        sqlite_where=text("idempotency_key IS NOT NULL"),
    ),
)
