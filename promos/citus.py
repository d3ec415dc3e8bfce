"""Promos on Citus: which tables are distributed by which key, and the step that does it.

Code pools are distributed by ``client_id`` (codes, their quota, idempotency and hold rows
on one shard per client), offers by ``game_id`` (a game's offers and every player's counters on one
shard); the small tables the hot statements read with them are reference tables (a copy on
every node). Everything else stays on the coordinator as plain PostgreSQL tables: referrals
and promo codes (rules global by their seeds' design, far smaller than the pools), the
events' outbox and deliveries (Promos' own queue) and the audit log (docs/deployment.md,
"Growing past one database").
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Read with the distributed tables by the hot statements, or referenced by them. Not the
# console's pool counters (pool_counts, pool_daily_issues): Citus has no snapshot across
# nodes, so a read of a reference table's copy on one node and of codes on others could
# meet two versions of a counter moved meanwhile (tests/test_pool_counts.py saw it); on the
# coordinator alone, a read sees one version, and counts the codes since it.
REFERENCE_TABLES = (
    "clients",
    "batches",
    "batch_clients",
    "brand_users",
    "specials",
    "upgrade_programs",
)


@dataclass(frozen=True, slots=True)
class Distributed:
    table: str
    column: str
    colocate_with: str | None = None  # the group's first table; None: the first itself


DISTRIBUTED_TABLES = (
    Distributed("codes", "client_id"),
    Distributed("customer_quotas", "client_id", "codes"),
    Distributed("idempotency_locks", "client_id", "codes"),
    Distributed("pool_code_holds", "client_id", "codes"),
    Distributed("games", "id"),
    Distributed("offers", "game_id", "games"),
    Distributed("offer_versions", "game_id", "games"),
    Distributed("offer_players", "game_id", "games"),
    Distributed("offer_claims", "game_id", "games"),
    Distributed("offer_impressions", "game_id", "games"),
)

_HAS_CITUS = text("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')")
_PLACED = text(
    "SELECT logicalrelid::regclass::text AS name, partmethod::text FROM pg_dist_partition "
    "WHERE logicalrelid::regclass::text = ANY(:names)"
)


async def has_citus(conn: AsyncConnection) -> bool:
    """Whether the database has the Citus extension (False on SQLite)."""
    if conn.dialect.name != "postgresql":
        return False
    return bool((await conn.execute(_HAS_CITUS)).scalar_one())


async def on_citus(conn: AsyncConnection) -> bool:
    """``has_citus``, asked once per pooled connection (kept in its ``info``)."""
    known = conn.info.get(_KNOWN)
    if known is None:
        known = conn.info[_KNOWN] = await has_citus(conn)
    return bool(known)


_KNOWN = "promos.citus"


async def placed(conn: AsyncConnection) -> dict[str, str]:
    """Promos' tables Citus knows, with their kind: ``distributed`` or ``reference``."""
    names = [*REFERENCE_TABLES, *(d.table for d in DISTRIBUTED_TABLES)]
    rows = await conn.execute(_PLACED, {"names": names})
    return {row.name: "reference" if row.partmethod == "n" else "distributed" for row in rows}


@dataclass(frozen=True, slots=True)
class ForeignKey:
    table: str
    name: str
    definition: str


# Citus refuses to distribute a table that a table still on the coordinator refers to: these
# keys are dropped before the tables are placed and made again once both sides are
# distributed (co-located, so that each shard's rows refer to their own shard's).
RESTORED_FOREIGN_KEYS = (
    ForeignKey(
        "pool_code_holds",
        "fk_pool_code_holds_client_id_codes",
        "FOREIGN KEY (client_id, code) REFERENCES codes (client_id, code)",
    ),
)


class NotCitus(Exception):
    """The database has no Citus extension."""


async def distribute(engine: AsyncEngine, *, shard_count: int | None = None) -> list[str]:
    """Make the reference tables and distribute the others (each once: run it again and it
    does only what is left); what it did, one line per table.

    ``shard_count``: shards per distributed table (Citus' own default, 32, when None).
    """
    done: list[str] = []
    async with engine.begin() as conn:
        if not await has_citus(conn):
            raise NotCitus("the database has no Citus extension (CREATE EXTENSION citus)")
        already = await placed(conn)
        # A transaction that wrote or read several shards at once (one connection per shard)
        # may not then write a reference table (Citus refuses: the reference table's copies
        # could not see those connections' rows). Promos' hot statements touch one shard each;
        # the few that touch many (adding codes, the console's counts) run shard by shard, on
        # one connection per worker. For sessions from now on.
        name = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        await conn.execute(
            text(f'ALTER DATABASE "{name}" SET citus.multi_shard_modify_mode TO sequential')
        )
        if any(spec.table not in already for spec in DISTRIBUTED_TABLES):
            for key in RESTORED_FOREIGN_KEYS:
                await conn.execute(
                    text(f'ALTER TABLE "{key.table}" DROP CONSTRAINT IF EXISTS "{key.name}"')
                )
    # One table per transaction: Citus copies each table's rows to its shards as it goes.
    for table in REFERENCE_TABLES:
        if table not in already:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT create_reference_table(:t)"), {"t": table})
            done.append(f"{table}: reference table")
    for spec in DISTRIBUTED_TABLES:
        if spec.table in already:
            continue
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "SELECT create_distributed_table(:t, :c, colocate_with => :with"
                    + (", shard_count => :n)" if shard_count and not spec.colocate_with else ")")
                ),
                {
                    "t": spec.table,
                    "c": spec.column,
                    "with": spec.colocate_with or "none",
                    **({"n": shard_count} if shard_count and not spec.colocate_with else {}),
                },
            )
        done.append(f"{spec.table}: distributed by {spec.column}")
    async with engine.begin() as conn:
        for key in RESTORED_FOREIGN_KEYS:
            if not await _has_constraint(conn, key):
                await conn.execute(
                    text(f'ALTER TABLE "{key.table}" ADD CONSTRAINT "{key.name}" {key.definition}')
                )
                done.append(f"{key.table}: foreign key {key.name} made again")
    return done


_CONSTRAINT = text(
    "SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = :name "
    "AND conrelid = CAST(:table AS regclass))"
)


async def _has_constraint(conn: AsyncConnection, key: ForeignKey) -> bool:
    return bool((await conn.execute(_CONSTRAINT, {"name": key.name, "table": key.table})).scalar())
