"""pool code holds: a pool code taken for an order for a while, then confirmed or ended

A held code leaves the free codes as an issued one does (``issued_at`` set), so the issuing
statement and ``ix_codes_free`` are untouched; the hold lives in its own table. A batch's
``return_released_codes`` says whether a released or expired hold's code goes back to the
pool (true) or is burnt (false, the default: a code a customer has seen may be shared).

Revision ID: 0020
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HELD = sa.text("status = 'held'")
_LIVE = sa.text("status IN ('held', 'confirmed')")
_KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    # Plain ADD COLUMN: a batch would make SQLite copy the table, which the codes' foreign
    # key forbids.
    op.add_column(
        "batches",
        sa.Column("return_released_codes", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "pool_code_holds",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("order_ref", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("returned", sa.Boolean(), nullable=True),
        sa.CheckConstraint(
            "status IN ('held', 'confirmed', 'released', 'expired')",
            name=op.f("ck_pool_code_holds_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_pool_code_holds_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["client_id", "code"],
            ["codes.client_id", "codes.code"],
            name=op.f("fk_pool_code_holds_client_id_codes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_code_holds")),
    )
    op.create_index(
        "ix_pool_code_holds_held",
        "pool_code_holds",
        ["batch_id", "expires_at"],
        postgresql_where=_HELD,
        sqlite_where=_HELD,
    )
    op.create_index(
        "uq_pool_code_holds_order",
        "pool_code_holds",
        ["batch_id", "order_ref"],
        unique=True,
        postgresql_where=_LIVE,
        sqlite_where=_LIVE,
    )
    op.create_index(
        "uq_pool_code_holds_idempotency",
        "pool_code_holds",
        ["batch_id", "idempotency_key"],
        unique=True,
        postgresql_where=_KEYED,
        sqlite_where=_KEYED,
    )


def downgrade() -> None:
    op.drop_table("pool_code_holds")
    # Plain DROP COLUMN (SQLite 3.35+): a batch would copy a table others refer to.
    op.drop_column("batches", "return_released_codes")
