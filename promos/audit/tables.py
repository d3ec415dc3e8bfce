"""The audit log: one row per change made through a management route, never updated."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, String, Table

from promos.db import BigIntId, UTCDateTime, metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    # Who: the credential's kind and id (Principal.credential_id), its name and role then.
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", BigInteger, nullable=False),
    Column("actor_name", String(255), nullable=False),
    Column("actor_role", String(16), nullable=False),
    # What: "<target_type>.<verb>", e.g. "special.update", and the thing it was done to.
    Column("action", String(64), nullable=False),
    Column("target_type", String(64), nullable=False),
    Column("target_id", String(255), nullable=False),
    # The target as it was and as it became (JSON, secrets left out); NULL where none.
    Column("before", JSON(none_as_null=True), nullable=True),
    Column("after", JSON(none_as_null=True), nullable=True),
    # The listing is newest first (by id) within each filter.
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_actor", "actor_kind", "actor_id", "id"),
    Index("ix_audit_log_action", "action", "id"),
    Index("ix_audit_log_target", "target_type", "target_id", "id"),
)
