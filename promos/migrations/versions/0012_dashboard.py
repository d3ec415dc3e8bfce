"""dashboard: indexes on the time columns the console's dashboard counts by day

Revision ID: 0012
Revises: 0002, 0003, 0004
Create Date: 2026-12-08

Each is a range of times (behind the tenant's key where the table is keyed by one), so that a
day's count is an index range scan. One revision for the four domains it indexes, as the
dashboard needs them together; it merges their branches (0001's codes come with each).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = ("0002", "0003", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REWARDED = sa.text("rewarded_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_promocode_redemptions_redeemed",
        "promocode_redemptions",
        ["redeemed_at", "rolled_back_at"],
    )
    op.create_index("ix_referrals_created", "referrals", ["created_at"])
    op.create_index(
        "ix_referrals_rewarded",
        "referrals",
        ["rewarded_at"],
        postgresql_where=_REWARDED,
        sqlite_where=_REWARDED,
    )
    op.create_index("ix_offer_claims_game_claimed", "offer_claims", ["game_id", "claimed_at"])
    op.create_index("ix_offer_impressions_game_seen", "offer_impressions", ["game_id", "seen_at"])
    op.create_index("ix_webhook_attempts_attempted", "webhook_attempts", ["attempted_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_attempted", table_name="webhook_attempts")
    op.drop_index("ix_offer_impressions_game_seen", table_name="offer_impressions")
    op.drop_index("ix_offer_claims_game_claimed", table_name="offer_claims")
    op.drop_index("ix_referrals_rewarded", table_name="referrals")
    op.drop_index("ix_referrals_created", table_name="referrals")
    op.drop_index("ix_promocode_redemptions_redeemed", table_name="promocode_redemptions")
