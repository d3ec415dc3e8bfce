"""The database layer: one async engine per app, SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Numeric, event, exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator

from promos.citus import delegated_counting, delegated_issuing, has_citus
from promos.datadir import make_default_directory
from promos.errors import PromosError, Unavailable

log = logging.getLogger(__name__)

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
MAX_MONEY = Decimal(1_000_000_000)  # exclusive: the first amount too large

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


# The execution option ``reading`` sets: on SQLite, BEGIN (deferred) rather than IMMEDIATE.
_DEFERRED = "promos_deferred"


@asynccontextmanager
async def reading(conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """A transaction on ``conn`` that takes no write lock on SQLite (BEGIN, deferred): it reads
    a snapshot, may write temporary tables, and never waits for a writer. PostgreSQL: a plain
    transaction."""
    await conn.execution_options(**{_DEFERRED: True})
    try:
        async with conn.begin():
            yield conn
    finally:
        await conn.execution_options(**{_DEFERRED: False})


def after_commit(conn: AsyncConnection, action: Callable[[], None]) -> None:
    """Run ``action`` once the ``Database.begin()`` transaction of ``conn`` has committed
    (e.g. counting a metric only for what really happened); never if it rolls back."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(action)


class DatabaseUnavailable(Unavailable):
    """The database could not be reached or could not serve (down, restarting, dropped, out of
    connections): nothing was done, and the same request may succeed in a moment."""

    def __init__(self) -> None:
        super().__init__("the database is unavailable right now; retry in a moment")


# PostgreSQL's SQLSTATE classes and codes of a server that cannot serve now, not of a statement
# that is wrong: 08 connection exception, 53 insufficient resources (too many connections, disk
# full), 57 operator intervention (shutdown, restart, "starting up", a statement cancelled),
# 3D000 the database does not exist (dropped, or not created yet), 25006 read-only (a standby
# reached during a failover).
_OUTAGE_CLASSES = ("08", "53", "57")
_OUTAGE_STATES = frozenset({"3D000", "25006"})
# Citus, when a worker went away in the middle of a transaction (a worker restarted): an
# internal error (XX000) with this message; a worker refusing connections is class 08.
_CITUS_WORKER_LOST = "failure on connection marked as essential"
# SQLite's primary result codes for a file that cannot be used now: busy and locked past the
# busy timeout, read-only, I/O error, disk full, cannot open.
_SQLITE_OUTAGES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)


def outage_cause(error: BaseException) -> BaseException | None:
    """The error in ``error``'s chain (itself or what caused it) that says the database is
    unavailable, rather than that the statement or the code is wrong; None if there is none.
    The one place connection failures are told apart: SQLAlchemy's, asyncpg's (``DriverReads``)
    and the sockets' alike."""
    if isinstance(error, PromosError):  # a domain's own answer, whatever it was handling
        return None
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        if _says_outage(found):
            return found
        found = found.__cause__ or found.__context__
    return None


# Errors that say the database is out of reach whatever their details: refused, reset,
# unreachable, timed out (OSError, TimeoutError among them); no pooled connection free
# within pool_timeout (SQLAlchemy's TimeoutError); and asyncpg's "cannot switch to state
# ...; another operation is in progress" (InternalClientError), a connection the server
# ended in the middle of an operation (a restart) and still pooled (asyncpg #1069): Promos
# never shares a connection between tasks, so it is that, and the statement was not sent.
_OUTAGE_ERRORS = (OSError, exc.TimeoutError, asyncpg.InternalClientError)


def _says_outage(error: BaseException) -> bool:
    if isinstance(error, _OUTAGE_ERRORS):
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, asyncpg.PostgresError):
        return _postgres_says_outage(error)
    if isinstance(error, sqlite3.Error):
        return error.sqlite_errorcode & 0xFF in _SQLITE_OUTAGES
    return False


def _postgres_says_outage(error: asyncpg.PostgresError) -> bool:
    state = error.sqlstate or ""
    if state == "XX000":
        return str(getattr(error, "message", "")).startswith(_CITUS_WORKER_LOST)
    return state.startswith(_OUTAGE_CLASSES) or state in _OUTAGE_STATES


class OutageLog:
    """One warning when the database becomes unavailable and one when it answers again (per
    process), rather than a traceback for each request it fails meanwhile."""

    def __init__(self) -> None:
        self._since: float | None = None

    def raise_if_outage(self, error: Exception) -> None:
        """``DatabaseUnavailable`` (from ``error``) if ``outage_cause`` finds an outage in it;
        the outage's start is logged once."""
        cause = outage_cause(error)
        if cause is None:
            return
        if self._since is None:
            self._since = time.monotonic()
            log.warning(
                "database unavailable (%s): requests that need it answer 503 until it is back",
                type(cause).__name__,
            )
        raise DatabaseUnavailable from error

    def served(self) -> None:
        """A statement succeeded: an outage in progress, if any, is over."""
        if self._since is not None:
            log.warning("database available again after %.1f s", time.monotonic() - self._since)
            self._since = None


# A prepared statement's plan made once per connection (see ``Database.statements``).
_GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}


class Database:
    """Owns the engine; ``begin()`` is one unit of work (one transaction).

    A failure that ``outage_cause`` recognises comes out of ``begin()``, ``autocommit()`` and
    ``reads`` as ``DatabaseUnavailable`` (a 503 with ``Retry-After`` in every API's shape).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 16,
        max_overflow: int = 4,
        driver_reads: int = 2,
        driver_statements: int = 8,
        driver_issuing: int = 1,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # A failed statement's message would otherwise list its bound values (secrets, codes,
        # customer ids) in every log line and traceback that quotes it.
        kwargs: dict[str, Any] = {"hide_parameters": True}
        if self.is_sqlite:
            make_default_directory(url)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # The hottest reads, on PostgreSQL: see DriverReads. None on SQLite.
        self.outages = OutageLog()
        self.reads: DriverReads | None = None
        # The hot single-statement writes (promo code redeem, hold, confirm, release), each its
        # own transaction on asyncpg itself, on connections of their own. Generic plans, as for
        # issuing: PostgreSQL planned a group's statement again at every execution (200
        # custom plans of 200), 0.8 ms of a lone redeem's 1.4. None on SQLite.
        self.statements: DriverReads | None = None
        # The issuing statement's groups (``promos.codes.issuer``), one connection per group in
        # flight. A generic plan: a custom one was planned again at every execution, which
        # cost PostgreSQL more CPU than running the statement (docs/performance.md).
        self.issuing: DriverReads | None = None
        self.citus_issuing: DriverReads | None = None
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        else:
            self.reads = DriverReads(self.engine, size=driver_reads, outages=self.outages)
            self.statements = DriverReads(
                self.engine,
                size=driver_statements,
                outages=self.outages,
                server_settings=_GENERIC_PLANS,
            )
            self.issuing = DriverReads(
                self.engine,
                size=driver_issuing,
                outages=self.outages,
                server_settings=_GENERIC_PLANS,
            )
            # Citus' issuing function call, in a transaction (``issue_codes_citus_lean``).
            # Custom plans: Citus delegates the call only when it sees the client as a
            # constant. Opens no connection unless used.
            self.citus_issuing = DriverReads(self.engine, size=driver_issuing, outages=self.outages)
        # Whether the database is a Citus cluster's coordinator (``detect_engine``): the hot
        # paths then take their forms that Citus runs on one shard (docs/deployment.md).
        # None until known: a start during an outage finds out at the first use.
        self.citus: bool | None = False if self.is_sqlite else None
        # On Citus, whether ``promos citus distribute`` placed the issuing function, and the
        # claims' and impressions' functions (``promos.offers.counting``).
        self.citus_delegated = False
        self.citus_counting = False

    async def detect_engine(self) -> bool:
        """Find out what the database is (sets ``citus``); at start-up, and at the first use
        after a start during an outage (``DatabaseUnavailable`` then)."""
        if self.citus is None:
            async with self.connect() as conn:
                citus = await has_citus(conn)
                self.citus_delegated = citus and await delegated_issuing(conn)
                self.citus_counting = citus and await delegated_counting(conn)
                self.citus = citus
        return self.citus

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success and rolled back on error;
        then what ``after_commit`` left for it runs, on success only."""
        async with self.connect() as conn, self.transaction(conn):
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection of its own, for a use case made of several transactions on it
        (``transaction``, ``reading``)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except DatabaseUnavailable:
            raise
        except Exception as error:
            self.outages.raise_if_outage(error)
            raise

    @asynccontextmanager
    async def transaction(self, conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
        """A transaction on ``conn`` (from ``connect()``), as ``begin()`` makes one."""
        # conn.info lives as long as the pooled connection: never inherit another's.
        conn.info.pop(_AFTER_COMMIT, None)
        try:
            async with conn.begin():
                try:
                    yield conn
                finally:
                    actions: list[Callable[[], None]] = conn.info.pop(_AFTER_COMMIT, [])
        except Exception as error:
            self.outages.raise_if_outage(error)
            raise
        self.outages.served()
        for action in actions:  # reached only once the commit has succeeded
            action()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A unit of work that only reads. On SQLite a deferred transaction, which reads a
        snapshot and never waits for the one writer (``begin()`` there queues behind it:
        BEGIN IMMEDIATE); on PostgreSQL the same as ``begin()``."""
        if not self.is_sqlite:
            async with self.begin() as conn:
                yield conn
            return
        async with self.connect() as conn, reading(conn):
            yield conn
        self.outages.served()

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection on which each statement is its own transaction."""
        try:
            async with self.engine.connect() as conn:
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")
        except Exception as error:
            self.outages.raise_if_outage(error)
            raise
        self.outages.served()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        for driver in (self.reads, self.statements, self.issuing, self.citus_issuing):
            if driver is not None:
                await driver.close()
        await self.engine.dispose()


# What SQLAlchemy's asyncpg dialect takes from the URL for itself, not for asyncpg.connect.
_SQLALCHEMY_ONLY = (
    "async_creator_fn",
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
)


async def _read_only_session(_: asyncpg.Connection) -> None:
    """Nothing to undo between reads: only single SELECTs run on these connections (asyncpg's
    default reset, RESET ALL and the like, is one more round trip per read)."""


DriverFetch = Callable[[Select[Any] | TextClause, Mapping[str, Any]], Awaitable[Sequence[Any]]]


class DriverReads:
    """PostgreSQL reads run on asyncpg itself, for the hottest route (available offers).

    SQLAlchemy's async layer costs a greenlet, an execution context and a pool checkout per
    statement: measured at 270 us of CPU for a one-row read that asyncpg alone does in 120 us.
    The SQL is still written once, as a SQLAlchemy ``Select``, compiled here once. It opens its
    own connections (at most ``size``), as SQLAlchemy's URL says, when first used.

    Only for statements whose parameters need no conversion on the way in (text, numbers,
    dates, aware datetimes and lists of them): they are handed to asyncpg as given. Rows come
    back as asyncpg's records. A statement that is not a ``Select`` (a ``text()`` one, e.g. a
    data-modifying CTE: ``Database.statements``) runs as its own transaction, outside any.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        size: int,
        outages: OutageLog,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self._engine = engine
        self._size = size
        self._outages = outages
        self._server_settings = dict(server_settings or {})
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._compiled: dict[Select[Any] | TextClause, tuple[str, tuple[str, ...]]] = {}

    async def fetch(
        self,
        statement: Select[Any] | TextClause,
        params: Mapping[str, Any],
        *,
        record_class: type[asyncpg.Record] | None = None,
    ) -> Sequence[Any]:
        """The rows of ``statement`` with these named parameters (``record_class``: asyncpg's
        ``Record`` or a subclass, such as ``Row``)."""
        sql, names = self._compile(statement)
        try:
            pool = self._pool if self._pool is not None else await self._open()
            async with pool.acquire() as conn:
                try:
                    rows = await conn.fetch(
                        sql, *[params[name] for name in names], record_class=record_class
                    )
                except asyncpg.InternalClientError:
                    conn.terminate()  # broken (``_says_outage``): the pool opens a new one
                    raise
        except Exception as error:
            self._outages.raise_if_outage(error)
            raise
        self._outages.served()
        return rows

    def _compile(self, statement: Select[Any] | TextClause) -> tuple[str, tuple[str, ...]]:
        found = self._compiled.get(statement)
        if found is None:
            # asyncpg's dialect numbers its parameters ($1, $2...): positiontup is their order.
            compiled = statement.compile(dialect=self._engine.dialect)
            found = (str(compiled), tuple(compiled.positiontup or ()))
            self._compiled[statement] = found
        return found

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                _, connect = self._engine.dialect.create_connect_args(self._engine.url)
                for name in _SQLALCHEMY_ONLY:
                    connect.pop(name, None)
                if self._server_settings:
                    connect["server_settings"] = {
                        **connect.get("server_settings", {}),
                        **self._server_settings,
                    }
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self._size,
                    max_inactive_connection_lifetime=300,
                    reset=_read_only_session,
                    **connect,
                )
            return self._pool

    @asynccontextmanager
    async def transaction_checking(self, check: str) -> AsyncIterator[tuple[DriverFetch, bool]]:
        """One transaction on one of its connections, committed when the block ends, rolled
        back if it raises; its ``BEGIN`` goes in one round trip with ``check`` (a SELECT
        without parameters, read in the transaction). Yields a ``fetch`` for its statements
        and whether ``check`` found a row (asyncpg's own transactions send ``BEGIN`` alone)."""
        try:
            pool = self._pool if self._pool is not None else await self._open()
            async with pool.acquire() as conn:
                try:
                    # A simple query of two statements: its status is the last one's,
                    # "SELECT <rows>".
                    found = await conn.execute(f"BEGIN; {check}")
                    yield self._fetcher(conn), found != "SELECT 0"
                    await conn.execute("COMMIT")
                except BaseException:
                    await _rolled_back(conn)
                    raise
        except Exception as error:
            self._outages.raise_if_outage(error)
            raise
        self._outages.served()

    def _fetcher(self, conn: asyncpg.Connection | PoolConnectionProxy) -> DriverFetch:
        async def fetch(
            statement: Select[Any] | TextClause, params: Mapping[str, Any]
        ) -> Sequence[Any]:
            sql, names = self._compile(statement)
            return await conn.fetch(sql, *[params[n] for n in names], record_class=Row)

        return fetch

    @property
    def connections(self) -> int:
        """How many connections it holds open now."""
        return self._pool.get_size() if self._pool is not None else 0

    async def close(self) -> None:
        """Close its connections (it opens new ones if used again)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _rolled_back(conn: asyncpg.Connection | PoolConnectionProxy) -> None:
    """End the transaction a failure left open; a connection that cannot is closed, so that
    its pool never hands it out inside a transaction (its reset does nothing)."""
    if conn.is_closed() or not conn.is_in_transaction():
        return
    try:
        await conn.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - the failure that brought it here is the one raised
        conn.terminate()
    except BaseException:  # cancelled meanwhile
        conn.terminate()
        raise


class Row(asyncpg.Record):
    """An asyncpg record whose columns read as attributes too, as SQLAlchemy's rows do, so
    that code reading rows serves both (``DriverReads.fetch(..., record_class=Row)``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


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
        conn.exec_driver_sql(
            "BEGIN" if conn.get_execution_options().get(_DEFERRED) else "BEGIN IMMEDIATE"
        )


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
