"""Taking a pool code one statement at a time, where one statement cannot do it all (Citus:
a batch's rule counts on its own client's shard, the code is on the asking client's).

The customer's quota row is locked first (``LOCK_QUOTA``, in customer order), then a free code
with ``SKIP LOCKED`` (``FREE_LOCKED``), and the quota set (``SET_QUOTA``), in one transaction.
Issuing (``promos.codes.issue``) and pool code holds (``promos.codes.holds``) share them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, String, Uuid, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from promos.codes.tables import codes

LOCK_QUOTA = text(
    "INSERT INTO customer_quotas AS q (client_id, batch_id, customer_id, issued) "
    "VALUES (:owner, :batch_id, :customer_id, CAST(ARRAY[] AS timestamptz[])) "
    "ON CONFLICT (client_id, batch_id, customer_id) DO UPDATE SET issued = q.issued "
    "RETURNING q.issued"
).bindparams(
    bindparam("owner", type_=Uuid()),
    bindparam("batch_id", type_=Uuid()),
    bindparam("customer_id", type_=String()),
)
SET_QUOTA = text(
    "UPDATE customer_quotas SET issued = :issued "
    "WHERE client_id = :owner AND batch_id = :batch_id AND customer_id = :customer_id"
).bindparams(
    bindparam("owner", type_=Uuid()),
    bindparam("batch_id", type_=Uuid()),
    bindparam("customer_id", type_=String()),
    bindparam("issued", type_=ARRAY(DateTime(timezone=True))),
)
# The first free codes of a batch's client, in upload order (SQLite reads them so, its one
# writer at a time); locked, skipping those another transaction holds (``FREE_LOCKED``).
FREE_OF_CLIENT = (
    select(codes.c.code)
    .where(
        codes.c.batch_id == bindparam("batch_id"),
        codes.c.client_id == bindparam("client_id"),
        codes.c.issued_at.is_(None),
    )
    .order_by(codes.c.seq)
    .limit(bindparam("wanted"))
)
FREE_LOCKED = FREE_OF_CLIENT.with_for_update(skip_locked=True)
# Where a rule without a time limit begins counting: the first issue ever counts.
NEVER = datetime(1, 1, 1, tzinfo=UTC)
