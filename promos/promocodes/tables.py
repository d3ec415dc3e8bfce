"""Promo codes, the generations they came from, and their redemptions.

What a generation's codes share (pattern, discount, expiry, products, bound customer) lives
once on the generation; a code row holds only what is its own: the code and its uses left.
That keeps a million-code generation a million narrow rows.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    text,
    true,
)

from promos.db import BigIntId, UTCDateTime, metadata

promocode_generations = Table(
    "promocode_generations",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("pattern", String(255), nullable=False),
    Column("charset", String(255), nullable=False),
    Column("prefix", String(255), nullable=False, server_default=""),
    Column("postfix", String(255), nullable=False, server_default=""),
    Column("count", Integer, nullable=False),
    Column("discount_percentage", Numeric(5, 2), nullable=True),
    Column("discount_amount", Numeric(12, 2), nullable=True),
    Column("usage_count", Integer, nullable=False),
    Column("expires_in", Date, nullable=True, index=True),
    # The one customer (an e-mail, lower-cased) allowed to use the codes, if any.
    Column("usage_by", String(255), nullable=True, index=True),
    Column("created_at", UTCDateTime, nullable=False),
    # Whether a cancelled redemption's use comes back to its code (docs/operations.md,
    # "Cancellations"); a code may say otherwise for itself.
    Column("reusable_after_cancel", Boolean, nullable=False, server_default=true()),
    CheckConstraint(
        "(discount_percentage IS NULL) <> (discount_amount IS NULL)", name="one_discount"
    ),
    CheckConstraint(
        "discount_percentage IS NULL OR (discount_percentage > 0 AND discount_percentage <= 100)",
        name="percentage_range",
    ),
    CheckConstraint("discount_amount IS NULL OR discount_amount > 0", name="amount_positive"),
    CheckConstraint("usage_count >= 0", name="usage_count_not_negative"),
    CheckConstraint("count > 0", name="count_positive"),
)

# The SKUs a generation's codes apply to; none = every product.
promocode_products = Table(
    "promocode_products",
    metadata,
    Column(
        "generation_id",
        BigIntId,
        ForeignKey("promocode_generations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("sku", String(255), primary_key=True),
    Index("ix_promocode_products_sku", "sku"),
)

promocodes = Table(
    "promocodes",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    # Unique across every promo code Promos holds.
    Column("code", Text, nullable=False, unique=True),
    Column("generation_id", BigIntId, nullable=False),
    # Uses left; a redemption takes one in a conditional UPDATE, so it never goes below zero.
    Column("usage_count", Integer, nullable=False),
    # This code's own cancellation policy; none: its generation's.
    Column("reusable_after_cancel", Boolean, nullable=True),
    CheckConstraint("usage_count >= 0", name="usage_count_not_negative"),
    # The console's listing reads codes in code order (bytewise, "C" on PostgreSQL, so that a
    # prefix is one range), overall, within a generation, and among the used-up ones
    # (migration 0011_promocode_console; docs/console.md says which filter each serves).
    Index("ix_promocodes_code_c", text('code COLLATE "C"')).ddl_if(dialect="postgresql"),
    Index("ix_promocodes_generation_code", "generation_id", text('code COLLATE "C"')).ddl_if(
        dialect="postgresql"
    ),
    Index(
        "ix_promocodes_used_up",
        text('code COLLATE "C"'),
        postgresql_where=text("usage_count = 0"),
    ).ddl_if(dialect="postgresql"),
    # SQLite only: on PostgreSQL the per-row check of a generation cost more than the codes
    # themselves, and generations are never deleted (migration 0028).
    ForeignKeyConstraint(
        ["generation_id"], ["promocode_generations.id"], ondelete="CASCADE"
    ).ddl_if(dialect="sqlite"),
)

promocode_redemptions = Table(
    "promocode_redemptions",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "promocode_id",
        BigIntId,
        ForeignKey("promocodes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("customer", String(255), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("redeemed_at", UTCDateTime, nullable=False),
    Column("rolled_back_at", UTCDateTime, nullable=True),
    # The checkout's order, when the redemption was a confirmed hold (promocode_holds).
    Column("order_ref", String(255), nullable=True),
    # Redemptions per day (the dashboard), those rolled back told apart within the index.
    Index("ix_promocode_redemptions_redeemed", "redeemed_at", "rolled_back_at"),
    # A code's redemptions: its page lists them newest first, paged by id; counted, and
    # deleted with it (one index by the code: migration 0027).
    Index("ix_promocode_redemptions_promocode_id_id", "promocode_id", "id"),
    # An order's redemptions, to cancel them.
    Index(
        "ix_promocode_redemptions_order",
        "order_ref",
        postgresql_where=text("order_ref IS NOT NULL"),
        sqlite_where=text("order_ref IS NOT NULL"),
    ),
    Index(
        "uq_promocode_redemptions_idempotency",
        "promocode_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
        sqlite_where=text("idempotency_key IS NOT NULL"),
    ),
)


# A use of a code taken for an order for a while (docs/operations.md, "Holds"). A hold takes
# its use off ``promocodes.usage_count`` as a redemption does, so that every rule that counts
# uses counts it; confirming it makes it a redemption with the same id (the ids are drawn
# from the redemptions' sequence), releasing or expiring it gives the use back. An expired
# hold still ``held`` gives its use back when the next taker of the code finds it.
promocode_holds = Table(
    "promocode_holds",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=False),
    Column(
        "promocode_id",
        BigIntId,
        ForeignKey("promocodes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("customer", String(255), nullable=False),
    Column("order_ref", String(255), nullable=False),
    Column("idempotency_key", String(255), nullable=True),
    Column("status", String(16), nullable=False),  # held, confirmed, released, expired
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # When it was confirmed, released or found expired.
    Column("ended_at", UTCDateTime, nullable=True),
    CheckConstraint("status IN ('held', 'confirmed', 'released', 'expired')", name="status_known"),
    # The holds still holding a use, by when they expire: what a taker gives back.
    Index(
        "ix_promocode_holds_held",
        "promocode_id",
        "expires_at",
        postgresql_where=text("status = 'held'"),
        sqlite_where=text("status = 'held'"),
    ),
    # An order's holds, of every code, to cancel them.
    Index("ix_promocode_holds_order", "order_ref"),
    # One live hold per order and code: the same order asking again gets the same hold.
    Index(
        "uq_promocode_holds_order",
        "promocode_id",
        "order_ref",
        unique=True,
        postgresql_where=text("status IN ('held', 'confirmed')"),
        sqlite_where=text("status IN ('held', 'confirmed')"),
    ),
    Index(
        "uq_promocode_holds_idempotency",
        "promocode_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
        sqlite_where=text("idempotency_key IS NOT NULL"),
    ),
)


# The cart a use was taken for (``products`` of a redeem or a hold), by the use's id: a hold
# keeps its id as a redemption, so its cart is its redemption's. What a partial return is
# measured against (``promos.promocodes.returns``); a use taken without products has none.
promocode_use_products = Table(
    "promocode_use_products",
    metadata,
    Column("use_id", BigIntId, primary_key=True, autoincrement=False),
    Column("sku", String(255), primary_key=True),
    Column(
        "promocode_id",
        BigIntId,
        ForeignKey("promocodes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Index("ix_promocode_use_products_promocode_id", "promocode_id"),
)

# A partial return of a redemption: the products of its cart it names, newly returned
# (docs/api.md, "Returns"). The return that leaves no product the code applies to kept ends
# the use as a rollback does (``use_ended``), the code's policy deciding ``use_given_back``.
promocode_returns = Table(
    "promocode_returns",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "redemption_id",
        BigIntId,
        ForeignKey("promocode_redemptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("idempotency_key", String(255), nullable=True),
    Column("products", JSON, nullable=False),  # the SKUs it returned, sorted
    Column("returned_at", UTCDateTime, nullable=False),
    Column("use_ended", Boolean, nullable=False),
    Column("use_given_back", Boolean, nullable=True),
    Index("ix_promocode_returns_redemption_id", "redemption_id", "id"),
    Index(
        "uq_promocode_returns_idempotency",
        "redemption_id",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
        sqlite_where=text("idempotency_key IS NOT NULL"),
    ),
)

# Generations the console runs in the background (a million codes take seconds): what a
# progress page reads, from any node. The codes themselves are written all or nothing, in
# one transaction of the generation (promos.promocodes.jobs).
promocode_generation_jobs = Table(
    "promocode_generation_jobs",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("status", String(16), nullable=False),  # running, done, failed
    Column("summary", String(500), nullable=False),
    Column("count", Integer, nullable=False),
    Column("done", Integer, nullable=False, server_default="0"),
    Column(
        "generation_id",
        BigIntId,
        ForeignKey("promocode_generations.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("message", String(1000), nullable=True),
    Column("created_by", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Moved on with each step of progress: a running job not heard of for a while was cut off.
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("status IN ('running', 'done', 'failed')", name="status_known"),
)
