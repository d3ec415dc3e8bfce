"""code pools: the client in the keys of the issuing's lock and quota rows (Citus)

A distributed table's unique keys must hold its distribution column: code pools are
distributed by ``client_id`` (docs/deployment.md, "Growing past one database"), so the
per-customer quota rows and the Idempotency-Key lock rows gain the client, and the unique
index of the codes' idempotency keys leads with it. A quota row belongs to its batch's own
client (``batches.client_id``): the rule counts per batch, whatever client a code is of.

Revision ID: 0023
Revises: 0010_pool_counts
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0010_pool_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNER = "(SELECT client_id FROM batches WHERE batches.id = {table}.batch_id)"


def upgrade() -> None:
    _key_by_client("customer_quotas", "customer_id")
    _key_by_client("idempotency_locks", "idempotency_key")
    op.drop_index("uq_codes_idempotency", table_name="codes")
    _codes_idempotency_index(["client_id", "batch_id", "idempotency_key"])


def downgrade() -> None:
    op.drop_index("uq_codes_idempotency", table_name="codes")
    _codes_idempotency_index(["batch_id", "idempotency_key"])
    for table, key in (
        ("customer_quotas", "customer_id"),
        ("idempotency_locks", "idempotency_key"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", ["batch_id", key])
            batch.drop_column("client_id")


def _key_by_client(table: str, key: str) -> None:
    """Add ``client_id`` (the batch's own client for existing rows) and lead the key with it."""
    op.add_column(table, sa.Column("client_id", sa.Uuid(), nullable=True))
    op.execute(f"UPDATE {table} SET client_id = {_OWNER.format(table=table)}")  # noqa: S608 - constants
    with op.batch_alter_table(table) as batch:
        batch.alter_column("client_id", existing_type=sa.Uuid(), nullable=False)
        batch.drop_constraint(f"pk_{table}", type_="primary")
        batch.create_primary_key(f"pk_{table}", ["client_id", "batch_id", key])


def _codes_idempotency_index(columns: list[str]) -> None:
    op.create_index(
        "uq_codes_idempotency",
        "codes",
        columns,
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )
