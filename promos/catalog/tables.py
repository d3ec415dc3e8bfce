"""Specials and upgrade programs. Each has an active window; open ends mean "always"."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Index, Numeric, String, Table, Text

from promos.db import BigIntId, UTCDateTime, metadata

specials = Table(
    "specials",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("sku", String(255), nullable=False),
    Column("title", String(255), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    # Exactly one of: a special price, a percentage off, an amount off.
    Column("price", Numeric(12, 2), nullable=True),
    Column("discount_percentage", Numeric(5, 2), nullable=True),
    Column("discount_amount", Numeric(12, 2), nullable=True),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "(CASE WHEN price IS NULL THEN 0 ELSE 1 END"
        " + CASE WHEN discount_percentage IS NULL THEN 0 ELSE 1 END"
        " + CASE WHEN discount_amount IS NULL THEN 0 ELSE 1 END) = 1",
        name="one_offer",
    ),
    CheckConstraint("starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at", name="window"),
    Index("ix_specials_sku", "sku", "starts_at"),
)

upgrade_programs = Table(
    "upgrade_programs",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("from_sku", String(255), nullable=False),
    Column("to_sku", String(255), nullable=False),
    Column("title", String(255), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("discount_percentage", Numeric(5, 2), nullable=True),
    Column("discount_amount", Numeric(12, 2), nullable=True),
    Column("starts_at", UTCDateTime, nullable=True),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "(discount_percentage IS NULL) <> (discount_amount IS NULL)", name="one_discount"
    ),
    CheckConstraint("starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at", name="window"),
)
