"""Users, their sign-in tokens, and API keys. Secrets are stored only as digests."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    text,
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
    # None: the key never expires.
    Column("expires_at", UTCDateTime, nullable=True),
    Column("rotated_at", UTCDateTime, nullable=True),
    # Kept in memory by each process and added here in batches (promos.auth.usage): as of the
    # last flush, not of the last request.
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("last_used_from", String(64), nullable=True),
    Column("request_count", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint("role IN ('admin', 'sales')", name="role_known"),
)

# What a scoped key may do: one row per kind, action and resource ("*": every resource of the
# kind). A key without rows holds every scope of its role (the keys made before scopes).
api_key_scopes = Table(
    "api_key_scopes",
    metadata,
    Column("key_id", BigIntId, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("action", String(16), primary_key=True),
    Column("resource", String(255), primary_key=True),
)

# The secrets a rotation replaced, each valid until the end of the grace the admin chose.
api_key_old_secrets = Table(
    "api_key_old_secrets",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("key_id", BigIntId, ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Index("ix_api_key_old_secrets_key", "key_id"),
)

# A user's TOTP secret (RFC 6238). Pending until confirmed with a code (``confirmed_at``);
# only a confirmed one is asked for at sign-in. Stored as is: the server must compute the
# codes, as every TOTP server does (docs/operations.md, "Two-factor sign-in").
user_totp = Table(
    "user_totp",
    metadata,
    Column("user_id", BigIntId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("secret", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime, nullable=True),
    # The last time step whose code was accepted: a code is accepted once, never replayed.
    Column("last_step", BigInteger, nullable=True),
)

# One row per recovery code: SHA-256 of an 80-bit random code (a fast digest is safe for a
# secret of that entropy, as for tokens); ``used_at`` once it has been used.
user_recovery_codes = Table(
    "user_recovery_codes",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_id", BigIntId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Index("ix_user_recovery_codes_user", "user_id"),
)

# Sign-in policies an admin changes through the API and the console, one row per name
# (a missing row: the default).
auth_settings = Table(
    "auth_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)
