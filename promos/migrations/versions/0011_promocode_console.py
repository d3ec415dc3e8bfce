"""promocodes: what the console's listings and background generations need

The listing reads codes in code order, bytewise (``COLLATE "C"`` on PostgreSQL, whose
default collation may not be bytewise; SQLite's is), overall, within a generation, and among
the used-up codes; a code's page reads its redemptions newest first. Generations started in
the console run in the background and report their progress in
``promocode_generation_jobs``.

Revision ID: 0011_promocode_console
Revises: 0002
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_promocode_console"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE INDEX ix_promocodes_code_c ON promocodes (code COLLATE "C")')
        op.execute(
            "CREATE INDEX ix_promocodes_generation_code "
            'ON promocodes (generation_id, code COLLATE "C")'
        )
        op.execute(
            'CREATE INDEX ix_promocodes_used_up ON promocodes (code COLLATE "C") '
            "WHERE usage_count = 0"
        )
    else:
        # SQLite compares text bytewise already: the unique index on code serves the order.
        op.create_index("ix_promocodes_generation_code", "promocodes", ["generation_id", "code"])
        op.create_index(
            "ix_promocodes_used_up",
            "promocodes",
            ["code"],
            sqlite_where=sa.text("usage_count = 0"),
        )
    op.create_index("ix_promocode_generations_expires_in", "promocode_generations", ["expires_in"])
    op.create_index("ix_promocode_products_sku", "promocode_products", ["sku"])
    op.create_index(
        "ix_promocode_redemptions_promocode_id_id",
        "promocode_redemptions",
        ["promocode_id", "id"],
    )
    op.create_table(
        "promocode_generation_jobs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("generation_id", _ID, nullable=True),
        sa.Column("message", sa.String(length=1000), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')",
            name=op.f("ck_promocode_generation_jobs_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["promocode_generations.id"],
            name=op.f("fk_promocode_generation_jobs_generation_id_promocode_generations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promocode_generation_jobs")),
    )


def downgrade() -> None:
    op.drop_table("promocode_generation_jobs")
    op.drop_index("ix_promocode_redemptions_promocode_id_id", "promocode_redemptions")
    op.drop_index("ix_promocode_products_sku", "promocode_products")
    op.drop_index("ix_promocode_generations_expires_in", "promocode_generations")
    op.drop_index("ix_promocodes_used_up", "promocodes")
    op.drop_index("ix_promocodes_generation_code", "promocodes")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_promocodes_code_c", "promocodes")
