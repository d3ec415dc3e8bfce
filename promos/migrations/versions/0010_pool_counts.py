"""code pools: the console's counters (total, issued, issues per day) and their indexes

Revision ID: 0010_pool_counts
Revises: 0001
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from promos.codes.counts import NEVER
from promos.db import UTCDateTime

revision: str = "0010_pool_counts"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pool_counts",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("counted_until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_pool_counts_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_pool_counts")),
    )
    op.create_table(
        "pool_daily_issues",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_pool_daily_issues_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", "day", name=op.f("pk_pool_daily_issues")),
    )
    op.create_index(
        "ix_codes_issued",
        "codes",
        ["batch_id", "issued_at"],
        unique=False,
        postgresql_where=sa.text("issued_at IS NOT NULL"),
        sqlite_where=sa.text("issued_at IS NOT NULL"),
    )
    op.create_index("ix_batches_created", "batches", ["created_at", "id"], unique=False)
    # Existing batches: their totals once, here; their issues are counted at the first read
    # (from NEVER on, through ix_codes_issued), as a new batch's are.
    op.get_bind().execute(
        sa.text(
            "INSERT INTO pool_counts (batch_id, total, issued, counted_until) "
            "SELECT b.id, (SELECT count(*) FROM codes c WHERE c.batch_id = b.id), 0, :never "
            "FROM batches b"
        ).bindparams(sa.bindparam("never", NEVER, type_=UTCDateTime()))
    )


def downgrade() -> None:
    op.drop_index("ix_batches_created", table_name="batches")
    op.drop_index(
        "ix_codes_issued",
        table_name="codes",
        postgresql_where=sa.text("issued_at IS NOT NULL"),
        sqlite_where=sa.text("issued_at IS NOT NULL"),
    )
    op.drop_table("pool_daily_issues")
    op.drop_table("pool_counts")
