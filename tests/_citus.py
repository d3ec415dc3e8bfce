"""A database of its own on a Citus cluster, for a test run (PROMOS_TEST_CITUS_URL).

Citus keeps its metadata per database: the run's database is created on the coordinator and
on every worker the coordinator's own database lists, with the extension in each, the
workers registered, the schema migrated and distributed (4 shards per table, so that
emptying the tables between tests stays quick).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from promos import citus
from promos.db import Database

SHARDS = 4


def dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def workers(admin_dsn: str) -> list[tuple[str, int]]:
    """The workers registered in the coordinator's admin database; fails without Citus."""
    conn = await asyncpg.connect(admin_dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 ORDER BY nodeport"
        )
    finally:
        await conn.close()
    if not rows:
        raise RuntimeError("the coordinator has no workers registered (pg_dist_node)")
    return [(row["nodename"], row["nodeport"]) for row in rows]


def _node_dsn(admin_dsn: str, host: str, port: int, database: str) -> str:
    url = make_url(admin_dsn).set(host=host, port=port, database=database)
    return url.render_as_string(hide_password=False)


async def create(admin_dsn: str, name: str) -> None:
    """The database ``name`` on the coordinator and its workers, Citus ready, no tables."""
    nodes = await workers(admin_dsn)
    coordinator = make_url(admin_dsn)
    for host, port in [(coordinator.host or "127.0.0.1", coordinator.port or 5432), *nodes]:
        conn = await asyncpg.connect(_node_dsn(admin_dsn, host, port, "postgres"), timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(_node_dsn(admin_dsn, host, port, name), timeout=5)
        try:
            await conn.execute("CREATE EXTENSION citus")
        finally:
            await conn.close()
    conn = await asyncpg.connect(dsn(admin_dsn, name), timeout=5)
    try:
        await conn.execute(
            "SELECT citus_set_coordinator_host($1, $2)",
            coordinator.host or "127.0.0.1",
            coordinator.port or 5432,
        )
        for host, port in nodes:
            await conn.execute("SELECT citus_add_node($1, $2)", host, port)
    finally:
        await conn.close()


async def distribute(url: str) -> None:
    database = Database(url, pool_size=1, max_overflow=0)
    try:
        await citus.distribute(database.engine, shard_count=SHARDS)
    finally:
        await database.dispose()


async def drop(admin_dsn: str, name: str) -> None:
    nodes = await workers(admin_dsn)
    coordinator = make_url(admin_dsn)
    for host, port in [(coordinator.host or "127.0.0.1", coordinator.port or 5432), *nodes]:
        conn = await asyncpg.connect(_node_dsn(admin_dsn, host, port, "postgres"), timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
