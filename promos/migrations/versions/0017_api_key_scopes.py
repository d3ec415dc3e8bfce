"""auth: API keys' scopes, expiry, rotation and usage

A key without scope rows holds every scope of its role, as every key made before did. A
rotation keeps the replaced secret's digest, valid until the grace the admin chose. The usage
columns are added to in batches by each process (promos.auth.usage).

Revision ID: 0017
Revises: 0012
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", _TIME, nullable=True))
        batch.add_column(sa.Column("rotated_at", _TIME, nullable=True))
        batch.add_column(sa.Column("last_used_at", _TIME, nullable=True))
        batch.add_column(sa.Column("last_used_from", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("request_count", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.create_table(
        "api_key_scopes",
        sa.Column("key_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("resource", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_scopes_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", "kind", "action", "resource", name="pk_api_key_scopes"),
    )
    op.create_table(
        "api_key_old_secrets",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("key_id", _ID, nullable=False),
        sa.Column("valid_until", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_old_secrets_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest", name="pk_api_key_old_secrets"),
    )
    op.create_index("ix_api_key_old_secrets_key", "api_key_old_secrets", ["key_id"])


def downgrade() -> None:
    op.drop_table("api_key_old_secrets")
    op.drop_table("api_key_scopes")
    with op.batch_alter_table("api_keys") as batch:
        for column in ("request_count", "last_used_from", "last_used_at", "rotated_at"):
            batch.drop_column(column)
        batch.drop_column("expires_at")
