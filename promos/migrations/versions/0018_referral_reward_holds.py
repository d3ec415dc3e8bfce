"""referral reward holds, refunds and the e-mail a referred user verified

A program's ``reward_hold_days`` (0 for every existing one: granted at once, as before),
copied to each referral with ``granted_at`` (the reward's grant, ``rewarded_at`` for the
rewards already earned), ``reversed_at`` and ``reward_event_id``; the ledger's
``available_at`` and two new kinds, ``voided`` and ``clawback``; an address's
``verified_for``. A downgrade forgets holds, voids and clawbacks: a reward earned reads as
acquired again.

Revision ID: 0018
Revises: 0014
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "kind IN ('signup', 'potential', 'acquired', 'voided', 'clawback')"
_OLD_KINDS = "kind IN ('signup', 'potential', 'acquired')"
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Its range (0 to 3650) is checked by the service: a CHECK would make SQLite copy the
    # table, which the referrals' foreign key forbids.
    op.add_column(
        "referral_programs",
        sa.Column("reward_hold_days", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    # Plain ADD COLUMN: a batch would make SQLite copy the table, which the ledger's foreign
    # key forbids.
    for column in (
        sa.Column("reward_hold_days", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("granted_at", _TIME, nullable=True),
        sa.Column("reversed_at", _TIME, nullable=True),
        sa.Column("reward_event_id", sa.BigInteger(), nullable=True),
    ):
        op.add_column("referrals", column)
    op.execute("UPDATE referrals SET granted_at = rewarded_at WHERE rewarded_at IS NOT NULL")
    with op.batch_alter_table("referral_credits") as batch:
        batch.add_column(sa.Column("available_at", _TIME, nullable=True))
        batch.drop_constraint("kind_known", type_="check")
        batch.create_check_constraint("kind_known", _KINDS)
    op.add_column("email_indications", sa.Column("verified_for", sa.String(255), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+) where a batch would copy a table another one refers to.
    op.drop_column("email_indications", "verified_for")
    op.execute("DELETE FROM referral_credits WHERE kind IN ('voided', 'clawback')")
    with op.batch_alter_table("referral_credits") as batch:
        batch.drop_constraint("kind_known", type_="check")
        batch.create_check_constraint("kind_known", _OLD_KINDS)
        batch.drop_column("available_at")
    for name in ("reward_event_id", "reversed_at", "granted_at", "reward_hold_days"):
        op.drop_column("referrals", name)
    op.drop_column("referral_programs", "reward_hold_days")
