"""The console's own tables: its sign-in sessions."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from promos.db import BigIntId, UTCDateTime, metadata

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    # SHA-256 of the cookie's 256-bit random secret: the secret itself is never stored.
    Column("digest", String(64), nullable=False, unique=True),
    Column("user_id", BigIntId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Moved on at most once a minute (sessions.TOUCH_EVERY): the idle expiry counts from it.
    Column("last_seen_at", UTCDateTime, nullable=False),
    # A message for the next page this session shows ("User sally created"), then cleared.
    Column("flash", String(500), nullable=True),
    Index("ix_console_sessions_user", "user_id"),
    Index("ix_console_sessions_last_seen", "last_seen_at"),
)

# A sign-in whose password was right, waiting for the second factor: the browser holds the
# secret in a short-lived HttpOnly cookie (never the password); only its digest is stored.
console_pending_sign_ins = Table(
    "console_pending_sign_ins",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_id", BigIntId, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_console_pending_sign_ins_created", "created_at"),
)
