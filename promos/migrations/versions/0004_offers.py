"""offers: games, offer templates, per-player state, claims and impressions

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "games",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("metadata", Document, nullable=False),
        sa.Column("revision", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_games")),
    )
    op.create_table(
        "offers",
        sa.Column("game_id", sa.String(length=255), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("product_id", sa.String(length=255), nullable=True),
        sa.Column("cost", Document, nullable=True),
        sa.Column("contents", Document, nullable=False),
        sa.Column("metadata", Document, nullable=False),
        sa.Column("placement", sa.String(length=255), nullable=False),
        sa.Column("period_every", sa.String(length=64), nullable=False),
        sa.Column("period_max", sa.Integer(), nullable=False),
        sa.Column("frequency_every", sa.String(length=64), nullable=False),
        sa.Column("frequency_max", sa.Integer(), nullable=False),
        sa.Column("trigger_from", sa.BigInteger(), nullable=False),
        sa.Column("trigger_to", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("filters", Document, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["game_id"], ["games.id"], name=op.f("fk_offers_game_id_games")),
        sa.PrimaryKeyConstraint("game_id", "id", name=op.f("pk_offers")),
    )
    op.create_index("ix_offers_game_created", "offers", ["game_id", "created_at", "id"])
    op.create_index("ix_offers_game_product", "offers", ["game_id", "product_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_offers_filters",
            "offers",
            ["filters"],
            postgresql_using="gin",
            postgresql_ops={"filters": "jsonb_path_ops"},
        )
    op.create_table(
        "offer_players",
        sa.Column("game_id", sa.String(length=255), nullable=False),
        sa.Column("player_id", sa.String(length=255), nullable=False),
        sa.Column("offer_id", sa.Uuid(), nullable=False),
        sa.Column("claim_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_claim_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("impression_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_impression_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("game_id", "player_id", "offer_id", name=op.f("pk_offer_players")),
    )
    op.create_table(
        "offer_claims",
        sa.Column("game_id", sa.String(length=255), nullable=False),
        sa.Column("transaction_id", sa.String(length=255), nullable=False),
        sa.Column("player_id", sa.String(length=255), nullable=False),
        sa.Column("offer_id", sa.Uuid(), nullable=False),
        sa.Column("offer_version", sa.Integer(), nullable=False),
        sa.Column("purchased_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contents", Document, nullable=False),
        sa.Column("next_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("game_id", "transaction_id", name=op.f("pk_offer_claims")),
    )
    op.create_table(
        "offer_impressions",
        sa.Column("game_id", sa.String(length=255), nullable=False),
        sa.Column("impression_id", sa.Uuid(), nullable=False),
        sa.Column("player_id", sa.String(length=255), nullable=False),
        sa.Column("offer_id", sa.Uuid(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("game_id", "impression_id", name=op.f("pk_offer_impressions")),
    )


def downgrade() -> None:
    op.drop_table("offer_impressions")
    op.drop_table("offer_claims")
    op.drop_table("offer_players")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_offers_filters", table_name="offers")
    op.drop_index("ix_offers_game_product", table_name="offers")
    op.drop_index("ix_offers_game_created", table_name="offers")
    op.drop_table("offers")
    op.drop_table("games")
