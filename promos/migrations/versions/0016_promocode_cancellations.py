"""promocode cancellations: whether a cancelled redemption's use comes back, and orders

``reusable_after_cancel`` on a generation (true for every existing one: a rollback gave the
use back, and still does) and, optionally, on one code; an order's holds and redemptions
are found by its reference.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORDERED = sa.text("order_ref IS NOT NULL")


def upgrade() -> None:
    op.add_column(
        "promocode_generations",
        sa.Column("reusable_after_cancel", sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    op.add_column("promocodes", sa.Column("reusable_after_cancel", sa.Boolean(), nullable=True))
    op.create_index(
        "ix_promocode_redemptions_order",
        "promocode_redemptions",
        ["order_ref"],
        postgresql_where=_ORDERED,
        sqlite_where=_ORDERED,
    )
    op.create_index("ix_promocode_holds_order", "promocode_holds", ["order_ref"])


def downgrade() -> None:
    op.drop_index("ix_promocode_holds_order", table_name="promocode_holds")
    op.drop_index("ix_promocode_redemptions_order", table_name="promocode_redemptions")
    with op.batch_alter_table("promocodes") as batch:
        batch.drop_column("reusable_after_cancel")
    with op.batch_alter_table("promocode_generations") as batch:
        batch.drop_column("reusable_after_cancel")
