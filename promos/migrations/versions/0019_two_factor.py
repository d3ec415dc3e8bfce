"""auth: two-factor sign-in (TOTP secrets, recovery codes, the admins' requirement)

A user's TOTP secret (pending until confirmed, with the last time step used), their recovery
codes' digests, the sign-in policies an admin sets (auth_settings), and the console's sign-ins
waiting for their second factor.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "user_totp",
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("confirmed_at", _TIME, nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        _user_fk("user_totp"),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_totp"),
    )
    op.create_table(
        "user_recovery_codes",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("used_at", _TIME, nullable=True),
        _user_fk("user_recovery_codes"),
        sa.PrimaryKeyConstraint("digest", name="pk_user_recovery_codes"),
    )
    op.create_index("ix_user_recovery_codes_user", "user_recovery_codes", ["user_id"])
    op.create_table(
        "auth_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("changed_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_auth_settings"),
    )
    op.create_table(
        "console_pending_sign_ins",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        _user_fk("console_pending_sign_ins"),
        sa.PrimaryKeyConstraint("digest", name="pk_console_pending_sign_ins"),
    )
    op.create_index(
        "ix_console_pending_sign_ins_created", "console_pending_sign_ins", ["created_at"]
    )


def downgrade() -> None:
    op.drop_table("console_pending_sign_ins")
    op.drop_table("auth_settings")
    op.drop_table("user_recovery_codes")
    op.drop_table("user_totp")
