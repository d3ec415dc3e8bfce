"""Referral programs, referrals (one per referred user), the credits ledger, e-mail indications.

A referral row is also the state of its reward: ``rewarded_at`` is set by the one statement
that grants it (``WHERE rewarded_at IS NULL``), and the ledger's ``(referral_id, kind)`` is
unique, so a referrer can never be credited twice for one referred user.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
    UniqueConstraint,
    text,
)

from promos.db import BigIntId, Money, UTCDateTime, metadata

referral_programs = Table(
    "referral_programs",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    # What the referred user is credited at sign-up.
    Column("credit_value", Money, nullable=False),
    # The referred user's running total of payments that earns the referrer this amount.
    Column("target_value", Money, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("credit_value >= 0", name="credit_not_negative"),
    CheckConstraint("target_value > 0", name="target_positive"),
)

# The program's terms are copied at registration: a referral keeps the terms it was made under.
referrals = Table(
    "referrals",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("program_id", BigIntId, ForeignKey("referral_programs.id"), nullable=False),
    Column("referrer_hash", String(255), nullable=False, index=True),
    Column("referred_hash", String(255), nullable=False),
    Column("credit_value", Money, nullable=False),
    Column("target_value", Money, nullable=False),
    Column("total_amount_paid", Money, nullable=False),
    Column("rewarded_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # A user is referred once, ever.
    UniqueConstraint("referred_hash"),
    # Sign-ups and rewards per day (the dashboard).
    Index("ix_referrals_created", "created_at"),
    Index(
        "ix_referrals_rewarded",
        "rewarded_at",
        postgresql_where=text("rewarded_at IS NOT NULL"),
        sqlite_where=text("rewarded_at IS NOT NULL"),
    ),
    CheckConstraint("referrer_hash <> referred_hash", name="not_self"),
    CheckConstraint("total_amount_paid >= 0", name="paid_not_negative"),
)

CREDIT_KINDS = ("signup", "potential", "acquired")

# Every credit: the referred user's sign-up credit, the referrer's potential credit (the
# target, promised at registration) and the credit the referrer acquired when it was reached.
referral_credits = Table(
    "referral_credits",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("referral_id", BigIntId, ForeignKey("referrals.id"), nullable=False),
    Column("user_hash", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("referral_id", "kind", name="uq_referral_credits_referral_kind"),
    CheckConstraint("kind IN ('signup', 'potential', 'acquired')", name="kind_known"),
    Index("ix_referral_credits_user", "user_hash", "kind"),
)

# An e-mail address is indicated by one referrer only (its primary key).
email_indications = Table(
    "email_indications",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("referrer_hash", String(255), nullable=False, index=True),
    Column("created_at", UTCDateTime, nullable=False),
)
