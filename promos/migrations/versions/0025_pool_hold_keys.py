"""pool code holds: the client in their keys, so that Citus can place them with the codes

On Citus, ``pool_code_holds`` is distributed by ``client_id``, co-located with ``codes``
(docs/deployment.md, "Growing past one database"), and a distributed table's unique keys
must hold its distribution column. So the unique indexes of a live hold per order and per
Idempotency-Key lead with the client, and on PostgreSQL the primary key becomes
(client_id, id); ``id`` keeps its sequence and stays unique by itself. SQLite keeps ``id``
alone as the key: there it is the rowid, which numbers the holds.

Revision ID: 0025_pool_hold_keys
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_pool_hold_keys"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = sa.text("status IN ('held', 'confirmed')")
_KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    _unique_indexes(["client_id"])
    if op.get_bind().dialect.name == "postgresql":
        _primary_key(["client_id", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _primary_key(["id"])
    _unique_indexes([])


def _primary_key(columns: list[str]) -> None:
    op.drop_constraint("pk_pool_code_holds", "pool_code_holds", type_="primary")
    op.create_primary_key("pk_pool_code_holds", "pool_code_holds", columns)


def _unique_indexes(lead: list[str]) -> None:
    for name, key, where in (
        ("uq_pool_code_holds_order", "order_ref", _LIVE),
        ("uq_pool_code_holds_idempotency", "idempotency_key", _KEYED),
    ):
        op.drop_index(name, table_name="pool_code_holds")
        op.create_index(
            name,
            "pool_code_holds",
            [*lead, "batch_id", key],
            unique=True,
            postgresql_where=where,
            sqlite_where=where,
        )
