"""referrals and webhooks in the console: a program's funnel by day, a user's lists, the
delivery log's failures, paused subscriptions and what a receiver answered

- ``referrals.first_paid_at``: when the referred user first paid anything (the funnel's
  "paid anything"); a referral that had paid before this revision gets the time it was
  rewarded, or else the time it was made (the closest time known).
- Per program, sign-ups, first payments and rewards are index ranges of
  ``(program_id, time)``; on PostgreSQL they carry the amounts the funnel sums, so that the
  count is an index-only scan.
- A referrer's referrals and a user's ledger entries are read in id order behind the user:
  ``(referrer_hash, id)`` replaces ``(referrer_hash)``, and ``(user_hash, id)`` is added.
- ``email_indications.verified_at``: when the billing side first asked about the address
  (``POST /emailverification``); the invitations are listed newest first, overall and per
  referrer.
- ``webhook_subscriptions.deleted``: a deleted subscription is inactive for good; one that is
  only paused is inactive too, and can be resumed. Existing inactive ones were deleted.
- ``webhook_attempts.response_excerpt``: the start of what the receiver answered.
- ``ix_webhook_deliveries_failing``: the deliveries whose last attempt failed and that are
  not delivered (the dashboard's link), a small partial index.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAID = sa.text("first_paid_at IS NOT NULL")
_REWARDED = sa.text("rewarded_at IS NOT NULL")
FAILING = "status = 'failed' OR (status = 'pending' AND last_error IS NOT NULL)"


def upgrade() -> None:
    op.add_column("referrals", sa.Column("first_paid_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE referrals SET first_paid_at = COALESCE(rewarded_at, created_at) "
        "WHERE total_amount_paid > 0"
    )
    op.create_index(
        "ix_referrals_program_created",
        "referrals",
        ["program_id", "created_at"],
        postgresql_include=["credit_value"],
    )
    op.create_index(
        "ix_referrals_program_paid",
        "referrals",
        ["program_id", "first_paid_at"],
        postgresql_where=_PAID,
        sqlite_where=_PAID,
    )
    op.create_index(
        "ix_referrals_program_rewarded",
        "referrals",
        ["program_id", "rewarded_at"],
        postgresql_include=["target_value"],
        postgresql_where=_REWARDED,
        sqlite_where=_REWARDED,
    )
    op.create_index("ix_referrals_referrer", "referrals", ["referrer_hash", "id"])
    op.drop_index("ix_referrals_referrer_hash", table_name="referrals")
    op.create_index("ix_referral_credits_user_id", "referral_credits", ["user_hash", "id"])

    op.add_column("email_indications", sa.Column("verified_at", sa.DateTime(timezone=True)))
    op.create_index("ix_email_indications_created", "email_indications", ["created_at", "email"])
    op.create_index(
        "ix_email_indications_referrer",
        "email_indications",
        ["referrer_hash", "created_at", "email"],
    )
    op.drop_index("ix_email_indications_referrer_hash", table_name="email_indications")

    op.add_column(
        "webhook_subscriptions",
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.execute("UPDATE webhook_subscriptions SET deleted = NOT active")
    op.add_column("webhook_attempts", sa.Column("response_excerpt", sa.Text()))
    op.create_index(
        "ix_webhook_deliveries_failing",
        "webhook_deliveries",
        ["id"],
        postgresql_where=sa.text(FAILING),
        sqlite_where=sa.text(FAILING),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_failing", table_name="webhook_deliveries")
    op.drop_column("webhook_attempts", "response_excerpt")
    op.drop_column("webhook_subscriptions", "deleted")
    op.create_index("ix_email_indications_referrer_hash", "email_indications", ["referrer_hash"])
    op.drop_index("ix_email_indications_referrer", table_name="email_indications")
    op.drop_index("ix_email_indications_created", table_name="email_indications")
    op.drop_column("email_indications", "verified_at")
    op.drop_index("ix_referral_credits_user_id", table_name="referral_credits")
    op.create_index("ix_referrals_referrer_hash", "referrals", ["referrer_hash"])
    op.drop_index("ix_referrals_referrer", table_name="referrals")
    op.drop_index("ix_referrals_program_rewarded", table_name="referrals")
    op.drop_index("ix_referrals_program_paid", table_name="referrals")
    op.drop_index("ix_referrals_program_created", table_name="referrals")
    op.drop_column("referrals", "first_paid_at")
