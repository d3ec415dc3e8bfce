"""Users, their sign-in tokens, and API keys. Secrets are stored only as digests."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    String,
    Table,
)

from promos.db import BigIntId, UTCDateTime, metadata

ROLES = ("admin", "sales")

users = Table(
    "users",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled_at", UTCDateTime, nullable=True),
    CheckConstraint("role IN ('admin', 'sales')", name="role_known"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    # SHA-256 of a 256-bit random secret: a fast digest is safe for a secret of that entropy.
    Column("digest", String(64), nullable=False, unique=True),
    Column("user_id", BigIntId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    # The first characters of the key, shown in listings so that a key can be recognised.
    Column("prefix", String(16), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    CheckConstraint("role IN ('admin', 'sales')", name="role_known"),
)
