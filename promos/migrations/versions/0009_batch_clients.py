"""code pools: a batch may hold codes of several clients

Revision ID: 0009_batch_clients
Revises: 0001
Create Date: 2026-12-08

``batch_clients`` lists the clients whose codes each batch holds (with the batch's own
client), filled from the batches and codes already there; the index of free codes gains the
client, so that an issue for (batch, client) walks only that client's free codes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_batch_clients"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FREE = sa.text("issued_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "batch_clients",
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_clients_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_batch_clients_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("client_id", "batch_id", name=op.f("pk_batch_clients")),
    )
    op.create_index("ix_batch_clients_batch", "batch_clients", ["batch_id", "client_id"])
    # Until now a batch held its own client's codes only; a code's client is known as a
    # client all the same (an upload registers every client it names from now on).
    op.execute(
        "INSERT INTO clients (id, created_at) "
        "SELECT c.client_id, min(b.created_at) FROM codes c JOIN batches b ON b.id = c.batch_id "
        "WHERE NOT EXISTS (SELECT 1 FROM clients k WHERE k.id = c.client_id) "
        "GROUP BY c.client_id"
    )
    op.execute(
        "INSERT INTO batch_clients (client_id, batch_id) "
        "SELECT client_id, id FROM batches "
        "UNION SELECT DISTINCT client_id, batch_id FROM codes"
    )
    op.drop_index("ix_codes_free", table_name="codes", postgresql_where=_FREE, sqlite_where=_FREE)
    op.create_index(
        "ix_codes_free",
        "codes",
        ["batch_id", "client_id", "seq"],
        postgresql_where=_FREE,
        sqlite_where=_FREE,
    )


def downgrade() -> None:
    op.drop_index("ix_codes_free", table_name="codes", postgresql_where=_FREE, sqlite_where=_FREE)
    op.create_index(
        "ix_codes_free", "codes", ["batch_id", "seq"], postgresql_where=_FREE, sqlite_where=_FREE
    )
    op.drop_index("ix_batch_clients_batch", table_name="batch_clients")
    op.drop_table("batch_clients")
