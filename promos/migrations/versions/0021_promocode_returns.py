"""promocode returns: the cart a use was taken for, and partial returns of a redemption

``promocode_use_products``: the products a redeem or a hold named, by the use's id (a hold
keeps its id as a redemption); ``promocode_returns``: the products of a redemption returned,
and whether the return ended its use. Uses taken before have no cart: a return of theirs is
recorded and leaves the use standing (docs/api.md, "Returns").

Revision ID: 0021
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "promocode_use_products",
        sa.Column("use_id", _ID, autoincrement=False, nullable=False),
        sa.Column("sku", sa.String(length=255), nullable=False),
        sa.Column("promocode_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["promocode_id"],
            ["promocodes.id"],
            name=op.f("fk_promocode_use_products_promocode_id_promocodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("use_id", "sku", name=op.f("pk_promocode_use_products")),
    )
    op.create_index(
        "ix_promocode_use_products_promocode_id", "promocode_use_products", ["promocode_id"]
    )
    op.create_table(
        "promocode_returns",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("redemption_id", _ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("use_ended", sa.Boolean(), nullable=False),
        sa.Column("use_given_back", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["redemption_id"],
            ["promocode_redemptions.id"],
            name=op.f("fk_promocode_returns_redemption_id_promocode_redemptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promocode_returns")),
    )
    op.create_index(
        "ix_promocode_returns_redemption_id", "promocode_returns", ["redemption_id", "id"]
    )
    op.create_index(
        "uq_promocode_returns_idempotency",
        "promocode_returns",
        ["redemption_id", "idempotency_key"],
        unique=True,
        postgresql_where=_KEYED,
        sqlite_where=_KEYED,
    )


def downgrade() -> None:
    op.drop_table("promocode_returns")
    op.drop_table("promocode_use_products")
