"""referral refunds: each refund reported, and its Idempotency-Key

Until now a refund only lowered the referred user's total, so a retried request lowered it
twice. Each refund is now a row (amount, the total after it, what it reversed, the key), the
key unique per referred user. Refunds recorded before this migration have no rows.

Revision ID: 0024
Revises: 0018
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_refunds",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("referral_id", sa.BigInteger(), sa.ForeignKey("referrals.id"), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("total_after", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("reversal", sa.String(16), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("referral_id", "idempotency_key", name="uq_referral_refunds_key"),
    )


def downgrade() -> None:
    op.drop_table("referral_refunds")
