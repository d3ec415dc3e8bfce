"""codes and promo codes without a foreign key to their batch or generation, on PostgreSQL

PostgreSQL checks a foreign key row by row: a query and a lock of the parent row per inserted
row. For a 1,000,000-row upload or generation that check was 45% to 60% of PostgreSQL's CPU
(docs/performance.md, "Bulk loads"). The parents are never deleted, and every path that adds
codes or promo codes reads its batch or makes its generation in the same transaction first,
so the constraint guarded nothing Promos does (as ``offer_versions`` has none). SQLite keeps
both: its checks are cheap, and dropping a key there means rebuilding the table.

Revision ID: 0028
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0028"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEYS = (
    ("codes", "fk_codes_batch_id_batches", "batches", "batch_id", None),
    (
        "promocodes",
        "fk_promocodes_generation_id_promocode_generations",
        "promocode_generations",
        "generation_id",
        "CASCADE",
    ),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name, _, _, _ in _KEYS:
        op.drop_constraint(name, table, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name, parent, column, ondelete in _KEYS:
        op.create_foreign_key(name, table, parent, [column], ["id"], ondelete=ondelete)
