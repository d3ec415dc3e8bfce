"""offer console: each version of an offer kept, and a player's claims and impressions by time

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09

``offer_versions`` holds every version of every offer as it was made (the console shows two
side by side); the version each offer is at is copied in, since the versions before it were
never kept. The two indexes read one player's claims and impressions, newest first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_SPEC = (
    "name, product_id, cost, contents, metadata, placement, period_every, period_max, "
    "frequency_every, frequency_max, trigger_from, trigger_to, filters"
)


def upgrade() -> None:
    op.create_table(
        "offer_versions",
        sa.Column("game_id", sa.String(length=255), nullable=False),
        sa.Column("offer_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", sa.Uuid(), nullable=False),
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
        sa.Column("filters", Document, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("game_id", "offer_id", "version", name=op.f("pk_offer_versions")),
    )
    op.execute(
        f"INSERT INTO offer_versions (game_id, offer_id, version, key, {_SPEC}, created_at) "  # noqa: S608 - constants
        f"SELECT game_id, id, version, key, {_SPEC}, updated_at FROM offers"
    )
    op.create_index(
        "ix_offer_claims_game_player", "offer_claims", ["game_id", "player_id", "claimed_at"]
    )
    op.create_index(
        "ix_offer_impressions_game_player", "offer_impressions", ["game_id", "player_id", "seen_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_offer_impressions_game_player", table_name="offer_impressions")
    op.drop_index("ix_offer_claims_game_player", table_name="offer_claims")
    op.drop_table("offer_versions")
