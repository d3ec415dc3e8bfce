"""The database layer: one async engine per app, SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Numeric, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

# Constraint names are stable so that migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Money: two decimal places, below a billion (exact as a float too, which SQLite needs).
MONEY_PLACES = 2
MONEY_QUANTUM = Decimal("0.01")
MAX_MONEY = Decimal(1_000_000_000)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: store them all naive in UTC, one format.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - the base class's signature
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_AFTER_COMMIT = "promos.after_commit"


def after_commit(conn: AsyncConnection, action: Callable[[], None]) -> None:
    """Run ``action`` once the ``Database.begin()`` transaction of ``conn`` has committed
    (e.g. counting a metric only for what really happened); never if it rolls back."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(action)


class Database:
    """Owns the engine; ``begin()`` is one unit of work (one transaction)."""

    def __init__(self, url: str, *, pool_size: int = 16, max_overflow: int = 4) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success and rolled back on error;
        then what ``after_commit`` left for it runs, on success only."""
        async with self.engine.begin() as conn:
            # conn.info lives as long as the pooled connection: never inherit another's actions.
            conn.info.pop(_AFTER_COMMIT, None)
            try:
                yield conn
            finally:
                actions: list[Callable[[], None]] = conn.info.pop(_AFTER_COMMIT, [])
        for action in actions:  # reached only once the commit has succeeded
            action()

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection on which each statement is its own transaction."""
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE so that writers queue, not fail."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def insert_for(conn: AsyncConnection) -> Any:
    """The dialect's ``insert`` construct, which knows ``ON CONFLICT`` on both backends."""
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


class Money(TypeDecorator[Decimal]):
    """An exact amount: ``numeric`` on PostgreSQL, ``Decimal`` in Python, on both backends.

    SQLite has no decimal type (SQLAlchemy warns and goes through float); amounts are kept to
    ``MONEY_PLACES`` places and below ``MAX_MONEY``, where a float round-trips exactly.
    """

    impl = Numeric(18, MONEY_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(18, MONEY_PLACES, asdecimal=False))
        return dialect.type_descriptor(Numeric(18, MONEY_PLACES))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return float(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:  # noqa: ARG002 - the base class's signature
        if value is None:
            return None
        exact = value if isinstance(value, Decimal) else Decimal(repr(value))
        return exact.quantize(MONEY_QUANTUM)
