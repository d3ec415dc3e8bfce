"""Referral programs, referrals (one per referred user), the credits ledger, e-mail indications.

A referral row is also the state of its reward: ``rewarded_at`` is set by the one statement
that earns it (``WHERE rewarded_at IS NULL``), ``granted_at`` is when the program's hold
period lets it be granted, ``reversed_at`` is set by the one refund that voids or claws it
back (``WHERE reversed_at IS NULL``); the ledger's ``(referral_id, kind)`` is unique, so a
referrer can never be credited, nor reversed, twice for one referred user.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
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
    # Days a reward stays pending (a refund voids it) before it is granted; 0 grants at once.
    Column("reward_hold_days", Integer, nullable=False, server_default=text("0")),
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
    Column("referrer_hash", String(255), nullable=False),
    Column("referred_hash", String(255), nullable=False),
    Column("credit_value", Money, nullable=False),
    Column("target_value", Money, nullable=False),
    Column("total_amount_paid", Money, nullable=False),
    Column("rewarded_at", UTCDateTime, nullable=True),
    Column("reward_hold_days", Integer, nullable=False, server_default=text("0")),
    # rewarded_at + the hold: from then on the reward is granted (read from the clock).
    Column("granted_at", UTCDateTime, nullable=True),
    # When a refund voided the pending reward or clawed the granted one back: final.
    Column("reversed_at", UTCDateTime, nullable=True),
    # The referral.rewarded event, delivered at granted_at; a void cancels its deliveries.
    Column("reward_event_id", BigIntId, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # When the referred user first paid anything (the program's funnel).
    Column("first_paid_at", UTCDateTime, nullable=True),
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
    # A program's funnel by day (the console); on PostgreSQL the amounts it sums are in the
    # index, so that it is read alone.
    Index(
        "ix_referrals_program_created",
        "program_id",
        "created_at",
        postgresql_include=["credit_value"],
    ),
    Index(
        "ix_referrals_program_paid",
        "program_id",
        "first_paid_at",
        postgresql_where=text("first_paid_at IS NOT NULL"),
        sqlite_where=text("first_paid_at IS NOT NULL"),
    ),
    Index(
        "ix_referrals_program_rewarded",
        "program_id",
        "rewarded_at",
        postgresql_include=["target_value"],
        postgresql_where=text("rewarded_at IS NOT NULL"),
        sqlite_where=text("rewarded_at IS NOT NULL"),
    ),
    # A referrer's referrals, in the order made.
    Index("ix_referrals_referrer", "referrer_hash", "id"),
    CheckConstraint("referrer_hash <> referred_hash", name="not_self"),
    CheckConstraint("total_amount_paid >= 0", name="paid_not_negative"),
)

CREDIT_KINDS = ("signup", "potential", "acquired", "voided", "clawback")

# Every credit: the referred user's sign-up credit, the referrer's potential credit (the
# target, promised at registration), the credit the referrer acquired when it was reached
# (available from ``available_at``: pending before, granted after), and what a refund took
# back: ``voided`` (a pending reward, with its ``available_at``) or ``clawback`` (a granted one).
referral_credits = Table(
    "referral_credits",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("referral_id", BigIntId, ForeignKey("referrals.id"), nullable=False),
    Column("user_hash", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", Money, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # NULL: available when created.
    Column("available_at", UTCDateTime, nullable=True),
    UniqueConstraint("referral_id", "kind", name="uq_referral_credits_referral_kind"),
    CheckConstraint(
        "kind IN ('signup', 'potential', 'acquired', 'voided', 'clawback')", name="kind_known"
    ),
    Index("ix_referral_credits_user", "user_hash", "kind"),
    # A user's ledger, in the order credited.
    Index("ix_referral_credits_user_id", "user_hash", "id"),
)

# Every refund reported for a referred user, with what it did; a retry carrying the same
# Idempotency-Key finds its first answer here instead of lowering the total again.
referral_refunds = Table(
    "referral_refunds",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("referral_id", BigIntId, ForeignKey("referrals.id"), nullable=False),
    Column("amount", Money, nullable=False),
    Column("total_after", Money, nullable=False),
    # voided, clawback, or NULL: the refund reversed nothing.
    Column("reversal", String(16), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # NULL keys are distinct: refunds without a key are never taken for one another.
    UniqueConstraint("referral_id", "idempotency_key", name="uq_referral_refunds_key"),
)

# An e-mail address is indicated by one referrer only (its primary key).
email_indications = Table(
    "email_indications",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("referrer_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # When the billing side first asked about the address (POST /emailverification).
    Column("verified_at", UTCDateTime, nullable=True),
    # The referred user the address was verified for: one user per address.
    Column("verified_for", String(255), nullable=True),
    # Newest first, overall and per referrer (the console).
    Index("ix_email_indications_created", "created_at", "email"),
    Index("ix_email_indications_referrer", "referrer_hash", "created_at", "email"),
)
