"""promocode redemptions: one index by code, not two

``ix_promocode_redemptions_promocode_id`` (``promocode_id``) is the leading column of
``ix_promocode_redemptions_promocode_id_id`` (``promocode_id, id``), which serves every
read the first did (a code's redemptions, counted or listed, and the cascade of a code's
deletion). Every redeem and every confirmed hold wrote an entry in both; now in one
(docs/performance.md, "Promo code holds").

Revision ID: 0027
Revises: 0021
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | Sequence[str] | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_promocode_redemptions_promocode_id", table_name="promocode_redemptions")


def downgrade() -> None:
    op.create_index(
        "ix_promocode_redemptions_promocode_id", "promocode_redemptions", ["promocode_id"]
    )
