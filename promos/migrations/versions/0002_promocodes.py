"""promo codes, specials and upgrade programs, brand users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "brand_users",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("secret_digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_brand_users")),
    )
    op.create_table(
        "promocode_generations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("pattern", sa.String(length=255), nullable=False),
        sa.Column("charset", sa.String(length=255), nullable=False),
        sa.Column("prefix", sa.String(length=255), server_default="", nullable=False),
        sa.Column("postfix", sa.String(length=255), server_default="", nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("discount_percentage", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("discount_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.Column("expires_in", sa.Date(), nullable=True),
        sa.Column("usage_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(discount_percentage IS NULL) <> (discount_amount IS NULL)",
            name=op.f("ck_promocode_generations_one_discount"),
        ),
        sa.CheckConstraint("count > 0", name=op.f("ck_promocode_generations_count_positive")),
        sa.CheckConstraint(
            "discount_amount IS NULL OR discount_amount > 0",
            name=op.f("ck_promocode_generations_amount_positive"),
        ),
        sa.CheckConstraint(
            "discount_percentage IS NULL OR (discount_percentage > 0 AND discount_percentage <= 100)",
            name=op.f("ck_promocode_generations_percentage_range"),
        ),
        sa.CheckConstraint(
            "usage_count >= 0", name=op.f("ck_promocode_generations_usage_count_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promocode_generations")),
    )
    op.create_index(
        op.f("ix_promocode_generations_usage_by"),
        "promocode_generations",
        ["usage_by"],
        unique=False,
    )
    op.create_table(
        "specials",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("discount_percentage", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("discount_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(CASE WHEN price IS NULL THEN 0 ELSE 1 END + CASE WHEN discount_percentage IS NULL THEN 0 ELSE 1 END + CASE WHEN discount_amount IS NULL THEN 0 ELSE 1 END) = 1",
            name=op.f("ck_specials_one_offer"),
        ),
        sa.CheckConstraint(
            "starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at",
            name=op.f("ck_specials_window"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_specials")),
    )
    op.create_index("ix_specials_sku", "specials", ["sku", "starts_at"], unique=False)
    op.create_table(
        "upgrade_programs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("from_sku", sa.String(length=255), nullable=False),
        sa.Column("to_sku", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("discount_percentage", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("discount_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(discount_percentage IS NULL) <> (discount_amount IS NULL)",
            name=op.f("ck_upgrade_programs_one_discount"),
        ),
        sa.CheckConstraint(
            "starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at",
            name=op.f("ck_upgrade_programs_window"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upgrade_programs")),
    )
    op.create_table(
        "promocode_products",
        sa.Column(
            "generation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["promocode_generations.id"],
            name=op.f("fk_promocode_products_generation_id_promocode_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("generation_id", "sku", name=op.f("pk_promocode_products")),
    )
    op.create_table(
        "promocodes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column(
            "generation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("usage_count", sa.Integer(), nullable=False),
        sa.CheckConstraint("usage_count >= 0", name=op.f("ck_promocodes_usage_count_not_negative")),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["promocode_generations.id"],
            name=op.f("fk_promocodes_generation_id_promocode_generations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promocodes")),
        sa.UniqueConstraint("code", name=op.f("uq_promocodes_code")),
    )
    op.create_table(
        "promocode_redemptions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "promocode_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("customer", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["promocode_id"],
            ["promocodes.id"],
            name=op.f("fk_promocode_redemptions_promocode_id_promocodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promocode_redemptions")),
    )
    op.create_index(
        "ix_promocode_redemptions_promocode_id",
        "promocode_redemptions",
        ["promocode_id"],
        unique=False,
    )
    op.create_index(
        "uq_promocode_redemptions_idempotency",
        "promocode_redemptions",
        ["promocode_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_promocode_redemptions_idempotency",
        table_name="promocode_redemptions",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.drop_index("ix_promocode_redemptions_promocode_id", table_name="promocode_redemptions")
    op.drop_table("promocode_redemptions")
    op.drop_table("promocodes")
    op.drop_table("promocode_products")
    op.drop_table("upgrade_programs")
    op.drop_index("ix_specials_sku", table_name="specials")
    op.drop_table("specials")
    op.drop_index(op.f("ix_promocode_generations_usage_by"), table_name="promocode_generations")
    op.drop_table("promocode_generations")
    op.drop_table("brand_users")
