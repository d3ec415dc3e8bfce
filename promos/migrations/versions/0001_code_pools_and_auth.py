"""code pools and auth

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'sales')", name=op.f("ck_api_keys_role_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_api_keys_digest")),
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
    )
    op.create_table(
        "users",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'sales')", name=op.f("ck_users_role_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("max_per_customer", sa.Integer(), nullable=True),
        sa.Column("time_limit_days", sa.Integer(), nullable=True),
        sa.Column("expired", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "max_per_customer IS NULL OR max_per_customer > 0", name=op.f("ck_batches_max_positive")
        ),
        sa.CheckConstraint(
            "time_limit_days IS NULL OR time_limit_days > 0", name=op.f("ck_batches_time_positive")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_batches_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index(op.f("ix_batches_client_id"), "batches", ["client_id"], unique=False)
    op.create_table(
        "tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("digest", name=op.f("uq_tokens_digest")),
    )
    op.create_table(
        "codes",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_codes_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("client_id", "code", name=op.f("pk_codes")),
    )
    op.create_index(
        "ix_codes_customer",
        "codes",
        ["customer_id", "batch_id", "issued_at"],
        unique=False,
        postgresql_where=sa.text("customer_id IS NOT NULL"),
        sqlite_where=sa.text("customer_id IS NOT NULL"),
    )
    op.create_index(
        "ix_codes_free",
        "codes",
        ["batch_id", "seq"],
        unique=False,
        postgresql_where=sa.text("issued_at IS NULL"),
        sqlite_where=sa.text("issued_at IS NULL"),
    )
    op.create_index(
        "uq_codes_idempotency",
        "codes",
        ["batch_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "customer_quotas",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column(
            "issued",
            postgresql.ARRAY(sa.DateTime(timezone=True)).with_variant(sa.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_customer_quotas_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", "customer_id", name=op.f("pk_customer_quotas")),
    )
    op.create_table(
        "idempotency_locks",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_idempotency_locks_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", "idempotency_key", name=op.f("pk_idempotency_locks")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_locks")
    op.drop_table("customer_quotas")
    op.drop_index(
        "uq_codes_idempotency",
        table_name="codes",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index(
        "ix_codes_free",
        table_name="codes",
        postgresql_where=sa.text("issued_at IS NULL"),
        sqlite_where=sa.text("issued_at IS NULL"),
    )
    op.drop_index(
        "ix_codes_customer",
        table_name="codes",
        postgresql_where=sa.text("customer_id IS NOT NULL"),
        sqlite_where=sa.text("customer_id IS NOT NULL"),
    )
    op.drop_table("codes")
    op.drop_table("tokens")
    op.drop_index(op.f("ix_batches_client_id"), table_name="batches")
    op.drop_table("batches")
    op.drop_table("users")
    op.drop_table("clients")
    op.drop_table("api_keys")
