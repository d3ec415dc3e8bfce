"""Brand users: an id of the integrator's and a secret, stored only as a SHA-256 digest."""

from __future__ import annotations

from sqlalchemy import Column, String, Table

from promos.db import UTCDateTime, metadata

brand_users = Table(
    "brand_users",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("secret_digest", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
