"""promocode holds: a use of a code taken for an order for a while, then confirmed or given back

A hold's id is drawn from the redemptions' ids (it keeps it when confirmed), so the table has
no sequence of its own; a confirmed hold's redemption names its order.

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HELD = sa.text("status = 'held'")
_LIVE = sa.text("status IN ('held', 'confirmed')")
_KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    op.add_column(
        "promocode_redemptions", sa.Column("order_ref", sa.String(length=255), nullable=True)
    )
    op.create_table(
        "promocode_holds",
        sa.Column("id", _ID, autoincrement=False, nullable=False),
        sa.Column("promocode_id", _ID, nullable=False),
        sa.Column("customer", sa.String(length=255), nullable=False),
        sa.Column("order_ref", sa.String(length=255), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('held', 'confirmed', 'released', 'expired')",
            name=op.f("ck_promocode_holds_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["promocode_id"],
            ["promocodes.id"],
            name=op.f("fk_promocode_holds_promocode_id_promocodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promocode_holds")),
    )
    op.create_index(
        "ix_promocode_holds_held",
        "promocode_holds",
        ["promocode_id", "expires_at"],
        postgresql_where=_HELD,
        sqlite_where=_HELD,
    )
    op.create_index(
        "uq_promocode_holds_order",
        "promocode_holds",
        ["promocode_id", "order_ref"],
        unique=True,
        postgresql_where=_LIVE,
        sqlite_where=_LIVE,
    )
    op.create_index(
        "uq_promocode_holds_idempotency",
        "promocode_holds",
        ["promocode_id", "idempotency_key"],
        unique=True,
        postgresql_where=_KEYED,
        sqlite_where=_KEYED,
    )


def downgrade() -> None:
    op.drop_table("promocode_holds")
    with op.batch_alter_table("promocode_redemptions") as batch:
        batch.drop_column("order_ref")
