"""Issuing codes: one code per request, never the same code twice, under the batch's rule.

A batch may hold codes of several clients: a request takes a free code of its batch AND its
client (``ix_codes_free`` leads with both), and the per-customer rule counts per batch,
whatever the client.

PostgreSQL: each (batch, client)'s requests of a group are served by ONE statement (``_TAKE``)
that checks the batch and that the client is one of its clients, takes free codes with
``FOR UPDATE SKIP LOCKED``, counts each customer's recent issues on the customer's own
``customer_quotas`` row (locked, newest version, in customer order) and marks the codes
issued. Requests with an ``Idempotency-Key`` first lock
the key's row and look for the code it already got, in the same transaction.

SQLite: one writer at a time (``BEGIN IMMEDIATE``), so the same rules are plain reads and
writes inside the transaction, counting the customer's issues on the codes themselves.

Each code handed out is a ``code.issued`` event when a webhook subscription wants that type:
written by ``_TAKE`` itself on PostgreSQL (``_TAKE_LEAN`` while no subscription wants them),
in the issuing transaction on SQLite. A replayed request (same Idempotency-Key) issues
nothing, so it emits nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    Uuid,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, TextClause

from promos.citus import delegated_issuing, on_citus
from promos.codes import lapsed
from promos.codes.errors import (
    BatchExpired,
    BatchNotFound,
    ClientMismatch,
    CustomerLimitReached,
    IdempotencyKeyReused,
    PoolExhausted,
)
from promos.codes.service import BATCH_COLUMNS, Batch, IssuedCode, IssueRequest, batch_of
from promos.codes.steps import FREE_LOCKED, FREE_OF_CLIENT, LOCK_QUOTA, NEVER, SET_QUOTA
from promos.codes.tables import batch_clients, batches, codes
from promos.db import Database, Row, UTCDateTime
from promos.errors import PromosError
from promos.events.outbox import (
    Demand,
    Emitted,
    emit_events,
    emitting,
    event_time,
    postgresql_emit,
    postgresql_wanted_check,
    wanted_cte,
)
from promos.events.types import CODE_ISSUED

Outcome = IssuedCode | PromosError
Outcomes = list[Outcome | None]
# (batch id, client id) -> where the next scan for free codes starts: past the codes the last
# group took, and past those a group still running is taking
FreeCodeHints = MutableMapping[tuple[UUID, UUID], int]
# Runs one statement with named parameters: its rows, whose columns read as attributes.
Execute = Callable[[TextClause, Mapping[str, Any]], Awaitable[Sequence[Any]]]


async def issue_codes(
    conn: AsyncConnection,
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    now: datetime,
    hints: FreeCodeHints | None = None,
    emitted: Emitted | None = None,
    demand: Demand | None = None,
    citus: bool | None = None,
) -> list[Outcome]:
    """Issue one code per request; fills ``outcomes`` as it goes and returns them, in order.

    Without idempotency keys, PostgreSQL needs no enclosing transaction: every statement
    that issues is atomic by itself, and if a later statement fails, the outcomes already
    filled in stand (their codes are committed). With keys, and on SQLite, run it in one
    transaction. ``hints`` remembers where the free codes of each (batch, client) begin, so
    that a scan does not walk over the codes issued before (their index entries stay until
    VACUUM), nor over those a group running at the same time is taking; the caller keeps it
    from one call to the next, and it is only ever a starting point (a batch that seems
    exhausted is looked at again from its start).
    ``emitted`` counts the ``code.issued`` events written (they commit with their codes);
    ``demand`` (kept by the caller too) picks the form of the PostgreSQL statement.
    ``citus``: the database is a Citus coordinator (``Database.citus``; None: ask ``conn``):
    the statements' forms that run on one shard, in the transaction ``needs_transaction``
    then asks for.
    """
    emitted = emitted if emitted is not None else Emitted()
    events = _Events(emitted, demand if demand is not None else Demand())
    if conn.dialect.name == "postgresql" and citus is None:
        citus = await on_citus(conn)

    async def serve(these: Sequence[IssueRequest], found: Outcomes) -> None:
        if conn.dialect.name == "postgresql":
            await _issue_postgresql(
                conn, these, found, now=now, hints=hints, events=events, citus=bool(citus)
            )
        else:
            await _issue_sqlite(conn, these, found, now=now, emitted=emitted)

    async def end(refused: Sequence[tuple[IssueRequest, Refusal]]) -> bool:
        return await lapsed.ended_for(conn, refused, now=now)

    await serve(requests, outcomes)
    await _served_again_after_lapsed_holds(requests, outcomes, end=end, serve=serve)
    return [_decided(outcome) for outcome in outcomes]


Refusal = PoolExhausted | CustomerLimitReached


async def _served_again_after_lapsed_holds(
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    end: Callable[[Sequence[tuple[IssueRequest, Refusal]]], Awaitable[bool]],
    serve: Callable[[Sequence[IssueRequest], Outcomes], Awaitable[None]],
) -> None:
    """A request refused for lack of a code, or by the rule, may be refused only because of
    lapsed pool code holds no one has ended yet: they end now (``end``), and it is served
    again (``serve``)."""
    refused = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, Refusal)]
    if refused and await end([(requests[i], o) for i, o in refused]):
        again: Outcomes = [None] * len(refused)
        await serve([requests[i] for i, _ in refused], again)
        for (i, _), outcome in zip(refused, again, strict=True):
            outcomes[i] = outcome


async def issue_codes_lean(
    database: Database,
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    now: datetime,
    hints: FreeCodeHints | None = None,
    emitted: Emitted | None = None,
    demand: Demand | None = None,
) -> list[Outcome]:
    """``issue_codes`` on plain PostgreSQL for requests without idempotency keys (so outside
    any transaction, ``needs_transaction``), each statement on asyncpg itself
    (``Database.issuing``): the same statements and rules, without SQLAlchemy's cost per
    statement."""
    driver = database.issuing
    if driver is None or any(r.idempotency_key for r in requests):
        raise ValueError("issue_codes_lean serves PostgreSQL requests without idempotency keys")
    events = _Events(
        emitted if emitted is not None else Emitted(),
        demand if demand is not None else Demand(),
    )

    async def execute(statement: TextClause, params: Mapping[str, Any]) -> Sequence[Any]:
        return await driver.fetch(statement, params, record_class=Row)

    async def serve(these: Sequence[IssueRequest], found: Outcomes) -> None:
        await _serve_rounds(
            execute,
            None,
            these,
            list(range(len(these))),
            found,
            rules=None,
            now=now,
            hints=hints,
            events=events,
        )

    return await _served(requests, outcomes, serve=serve, connect=database.autocommit, now=now)


_CODE_ISSUED_WANTED = postgresql_wanted_check(CODE_ISSUED)


async def issue_codes_citus_lean(
    database: Database,
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    now: datetime,
    hints: FreeCodeHints | None = None,
    emitted: Emitted | None = None,
) -> list[Outcome]:
    """``issue_codes`` on Citus for requests without idempotency keys, where ``promos citus
    distribute`` placed the issuing function: its calls and the events in one transaction on
    asyncpg itself (``Database.citus_issuing``). Requests whose batch's rule counts on another
    client's shard are served after it, by ``issue_codes`` (``_take_apart``). ``outcomes``
    is filled once their transaction has committed."""
    driver = database.citus_issuing
    if driver is None or any(r.idempotency_key for r in requests):
        raise ValueError("issue_codes_citus_lean serves Citus requests without idempotency keys")
    emitted = emitted if emitted is not None else Emitted()

    async def serve(these: Sequence[IssueRequest], found: Outcomes) -> None:
        staged: Outcomes = [None] * len(these)
        written = 0
        # Whether a subscription wants the events is read with BEGIN, in the transaction, before
        # the codes are issued: when none does, the events' statement is not sent (the issue
        # is ordered before a subscription made meanwhile, as on PostgreSQL, where one
        # statement reads the subscriptions and issues).
        async with driver.transaction_checking(_CODE_ISSUED_WANTED) as (fetch, wanted):
            apart = await _serve_delegated(fetch, these, staged, now=now, hints=hints)
            handed = [issued_payload(o) for o in staged if isinstance(o, IssuedCode)]
            if handed and wanted:
                written = len(await fetch(*postgresql_emit(CODE_ISSUED, handed, now=now)))
        emitted.count += written
        found[:] = staged
        if apart:
            again: Outcomes = [None] * len(apart)
            async with database.begin() as conn:
                await issue_codes(
                    conn,
                    [these[i] for i in apart],
                    again,
                    now=now,
                    hints=hints,
                    emitted=emitted,
                    citus=True,
                )
            for i, outcome in zip(apart, again, strict=True):
                found[i] = outcome

    return await _served(requests, outcomes, serve=serve, connect=database.begin, now=now)


async def _served(
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    serve: Callable[[Sequence[IssueRequest], Outcomes], Awaitable[None]],
    connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    now: datetime,
) -> list[Outcome]:
    """The lean paths' outcomes: ``serve`` the requests, then again those that lapsed pool
    code holds refused, once ``connect``'s connection has ended the holds."""

    async def end(refused: Sequence[tuple[IssueRequest, Refusal]]) -> bool:
        async with connect() as conn:
            return await lapsed.ended_for(conn, refused, now=now)

    await serve(requests, outcomes)
    await _served_again_after_lapsed_holds(requests, outcomes, end=end, serve=serve)
    return [_decided(outcome) for outcome in outcomes]


async def _serve_delegated(
    execute: Execute,
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    now: datetime,
    hints: FreeCodeHints | None,
) -> list[int]:
    """``_take_delegated`` for each (batch, client), in rounds of one request per customer;
    the requests left undecided, whose batch's rule counts on another client's shard."""
    apart: list[int] = []
    for groups in _rounds(requests, list(range(len(requests)))):
        for (batch_id, client_id), indices in groups:
            rule = await _take_delegated(
                execute,
                batch_id,
                client_id=client_id,
                requests=requests,
                indices=indices,
                outcomes=outcomes,
                now=now,
                hints=hints,
            )
            if rule is not None:
                apart += indices
    return apart


@dataclass(frozen=True, slots=True)
class _Events:
    emitted: Emitted
    demand: Demand


def issued_payload(issued: IssuedCode) -> dict[str, Any]:
    """The ``code.issued`` event's payload (``_TAKE`` builds the same in SQL)."""
    return {
        "client_id": issued.client_id,
        "batch_id": issued.batch_id,
        "code": issued.code,
        "customer_id": issued.customer_id,
        "issued_at": issued.issued_at,
    }


def needs_transaction(
    conn_dialect: str, requests: Sequence[IssueRequest], *, citus: bool = False
) -> bool:
    """Whether ``issue_codes`` must run inside an explicit transaction (always on Citus: the
    events follow the codes in a statement of their own)."""
    return citus or conn_dialect != "postgresql" or any(r.idempotency_key for r in requests)


def _decided(outcome: Outcome | None) -> Outcome:
    if outcome is None:
        raise RuntimeError("issue_codes left a request without an outcome")
    return outcome


# --- PostgreSQL ------------------------------------------------------------------------------

# Every code handed out is an event, in the same statement, when a subscription wants them.
_CODE_EVENTS = emitting(
    CODE_ISSUED,
    rows="issued",
    payload="json_build_object('client_id', CAST(:client_id AS text), "
    "'batch_id', CAST(:batch_id AS text), 'code', issued.code, "
    "'customer_id', issued.customer_id, 'issued_at', CAST(:event_time AS text))",
    name="code_events",
    order_by="issued.n",
    when="(SELECT yes FROM events_wanted)",
)


_CITUS_PARAMS: list[BindParameter[Any]] = [
    bindparam("quota_client", type_=Uuid()),
    bindparam("since", type_=UTCDateTime()),
    bindparam("most", type_=Integer()),
    bindparam("days", type_=Integer()),
]


def _take_statement(*, events: bool, citus: bool = False) -> TextClause:
    """``_TAKE``: emitting ``code.issued`` events, or lean: without the events' CTEs, and
    changing nothing (``events_wanted`` in every row) when a subscription wants them.

    ``citus``: the form Citus runs on one shard (``_TAKE_CITUS``): every distributed table it
    touches is named with one client, ``:quota_client`` (the batch's own client, or the
    request's for a batch without a rule); it neither reads the subscriptions nor writes the
    outbox (both on the coordinator: the caller emits the events in the same transaction),
    and it changes nothing when the batch's rule counts on another client's shard."""
    if citus:
        wanted, lean_guard, emit, count = (
            "",
            "AND (max_per_customer IS NULL OR owner = :quota_client)",
            "",
            "0",
        )
        events_wanted, quota_client = "false", ":quota_client"
        # Citus runs only IMMUTABLE functions in ON CONFLICT DO UPDATE on a distributed
        # table, and timestamptz - interval is STABLE: the window's start is a parameter.
        # Nor may they read another CTE (Citus reads it back through a VOLATILE function):
        # the rule itself is a parameter too, and the statement changes nothing when the
        # batch's rule is no longer the one given (``_rule_changed``).
        since = since_in_update = "CAST(:since AS timestamptz)"
        most = "CAST(:most AS integer)"
        lean_guard = (
            "AND (max_per_customer IS NULL OR (owner = :quota_client "
            "AND max_per_customer = :most "
            "AND time_limit_days IS NOT DISTINCT FROM CAST(:days AS integer)))"
        )
    else:
        wanted = f"{wanted_cte(CODE_ISSUED, name='events_wanted')}, "
        lean_guard = "" if events else "AND NOT (SELECT yes FROM events_wanted)"
        emit = f", {_CODE_EVENTS}" if events else ""
        count = "(SELECT count(*) FROM code_events)" if events else "0"
        events_wanted, quota_client = (
            "(SELECT yes FROM events_wanted)",
            "(SELECT owner FROM usable)",
        )
        since = (
            "CASE WHEN time_limit_days IS NULL THEN '-infinity'::timestamptz "
            "ELSE :now - make_interval(days => time_limit_days) END"
        )
        since_in_update, most = (
            "(SELECT since FROM usable)",
            "(SELECT max_per_customer FROM usable)",
        )
    return text(
        f"""
    WITH {wanted}batch AS (
        SELECT expired, max_per_customer, time_limit_days, client_id AS owner,
               {since} AS since,
               EXISTS (
                   SELECT FROM batch_clients
                   WHERE client_id = :client_id AND batch_id = :batch_id
               ) AS listed
        FROM batches WHERE id = :batch_id
    ), usable AS (
        SELECT max_per_customer, since, owner FROM batch WHERE listed AND NOT expired
            {lean_guard}
    ), asks AS (
        SELECT customer_id, idempotency_key, n
        FROM unnest(:customers, :keys) WITH ORDINALITY AS a(customer_id, idempotency_key, n)
    ), free AS (
        SELECT client_id, code, seq, row_number() OVER (ORDER BY seq) AS r FROM (
            SELECT client_id, code, seq FROM codes
            WHERE batch_id = :batch_id AND client_id = :client_id AND issued_at IS NULL
              AND seq >= :from_seq AND EXISTS (SELECT FROM usable)
            ORDER BY seq
            LIMIT :wanted
            FOR UPDATE SKIP LOCKED
        ) AS f
    ), considered AS (
        SELECT customer_id, idempotency_key, n FROM asks WHERE n <= (SELECT count(*) FROM free)
    ), counted AS (
        INSERT INTO customer_quotas AS q (client_id, batch_id, customer_id, issued)
        SELECT {quota_client}, :batch_id, customer_id, ARRAY[:now] FROM considered
        WHERE (SELECT max_per_customer FROM usable) IS NOT NULL
        ORDER BY customer_id
        ON CONFLICT (client_id, batch_id, customer_id) DO UPDATE
        SET issued = ARRAY(
                SELECT t FROM unnest(q.issued) AS t WHERE t > {since_in_update}
            ) || excluded.issued
        WHERE (SELECT count(*) FROM unnest(q.issued) AS t WHERE t > {since_in_update})
              < {most}
        RETURNING customer_id
    ), allowed AS (
        SELECT customer_id, idempotency_key, n, row_number() OVER (ORDER BY n) AS r
        FROM considered
        WHERE (SELECT max_per_customer FROM usable) IS NULL
           OR customer_id IN (SELECT customer_id FROM counted)
    ), issued AS (
        UPDATE codes
        SET customer_id = allowed.customer_id, issued_at = :now,
            idempotency_key = allowed.idempotency_key
        FROM free JOIN allowed USING (r)
        -- the client named, not only joined: Citus then updates that client's shard alone
        WHERE codes.client_id = :client_id AND codes.code = free.code
        RETURNING allowed.n, codes.code, codes.customer_id, free.seq
    ){emit}
    SELECT asks.n, issued.code, asks.n <= (SELECT count(*) FROM free) AS considered,
           COALESCE((SELECT min(seq) FROM free WHERE seq NOT IN (SELECT seq FROM issued)),
                    (SELECT max(seq) + 1 FROM free)) AS first_free,
           batch.listed, batch.expired, batch.max_per_customer, batch.time_limit_days,
           batch.owner, {events_wanted} AS events_wanted, {count} AS events
    FROM asks LEFT JOIN issued USING (n) LEFT JOIN batch ON true
    ORDER BY asks.n
    """  # noqa: S608 - put together from this module's constants
    ).bindparams(
        bindparam("batch_id", type_=Uuid()),
        bindparam("client_id", type_=Uuid()),
        bindparam("wanted", type_=Integer()),
        bindparam("from_seq", type_=BigInteger()),
        bindparam("customers", type_=ARRAY(Text())),
        bindparam("keys", type_=ARRAY(Text())),
        bindparam("now", type_=UTCDateTime()),
        *([bindparam("event_time", type_=String())] if events else []),
        *(_CITUS_PARAMS if citus else []),
    )


_TAKE = _take_statement(events=True)
_TAKE_LEAN = _take_statement(events=False)
_TAKE_CITUS = _take_statement(events=False, citus=True)

# Retries with one key take turns on the key's row, so each later one finds the first's code.
# Only keys of batches that exist get a row: a key for an unknown batch would break the foreign
# key and fail the whole group, when its request only deserves its own 404 (from ``_TAKE``).
_LOCK_KEYS = text(
    "INSERT INTO idempotency_locks (client_id, batch_id, idempotency_key, locked_at) "
    "SELECT r.client_id, r.batch_id, r.key, :now "
    "FROM unnest(:client_ids, :batch_ids, :keys) WITH ORDINALITY "
    "AS r(client_id, batch_id, key, n) "
    "JOIN batches ON batches.id = r.batch_id ORDER BY r.n "
    "ON CONFLICT (client_id, batch_id, idempotency_key) "
    "DO UPDATE SET locked_at = excluded.locked_at"
).bindparams(
    bindparam("client_ids", type_=ARRAY(Uuid())),
    bindparam("batch_ids", type_=ARRAY(Uuid())),
    bindparam("keys", type_=ARRAY(Text())),
    bindparam("now", type_=UTCDateTime()),
)


async def _issue_postgresql(
    conn: AsyncConnection,
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    now: datetime,
    hints: FreeCodeHints | None,
    events: _Events,
    citus: bool,
) -> None:
    keyed = sorted(
        {(r.client_id, r.batch_id, r.idempotency_key) for r in requests if r.idempotency_key}
    )
    if keyed:
        await conn.execute(
            _LOCK_KEYS,
            {
                "client_ids": [c for c, _, _ in keyed],
                "batch_ids": [b for _, b, _ in keyed],
                "keys": [k for _, _, k in keyed],
                "now": now,
            },
        )
    pending, replays = await _replay_idempotent(conn, requests, range(len(requests)), outcomes)
    delegated = citus and await delegated_issuing(conn)
    rules = (
        await _rules_citus(conn, {requests[i].batch_id for i in pending})
        if citus and not delegated
        else None
    )
    await _serve_rounds(
        _executing(conn),
        conn,
        requests,
        pending,
        outcomes,
        rules=rules,
        delegated=delegated,
        now=now,
        hints=hints,
        events=events,
    )
    _resolve_replays(requests, replays, outcomes)
    if citus:
        await _emit_citus(conn, outcomes, now=now, emitted=events.emitted)


def _executing(conn: AsyncConnection) -> Execute:
    async def execute(statement: TextClause, params: Mapping[str, Any]) -> Sequence[Any]:
        return (await conn.execute(statement, params)).all()

    return execute


async def _serve_rounds(
    execute: Execute,
    conn: AsyncConnection | None,
    requests: Sequence[IssueRequest],
    pending: list[int],
    outcomes: Outcomes,
    *,
    rules: dict[UUID, _Rule] | None,
    now: datetime,
    hints: FreeCodeHints | None,
    events: _Events,
    delegated: bool = False,
) -> None:
    """``_TAKE`` for each (batch, client) of the ``pending`` requests, in rounds of one
    request per customer. ``rules``: Citus' (``_rules_citus``), which may need ``conn`` for
    ``_take_apart``; None elsewhere. ``delegated``: Citus' issuing function instead
    (``_take_delegated``), which finds the rules itself."""
    for groups in _rounds(requests, pending):
        for (batch_id, client_id), indices in groups:
            if delegated:
                rule_apart = await _take_delegated(
                    execute,
                    batch_id,
                    client_id=client_id,
                    requests=requests,
                    indices=indices,
                    outcomes=outcomes,
                    now=now,
                    hints=hints,
                )
                if rule_apart is not None:
                    await _take_apart(
                        _citus_conn(conn),
                        rule_apart,
                        client_id=client_id,
                        requests=requests,
                        indices=indices,
                        outcomes=outcomes,
                        now=now,
                    )
                continue
            rule = rules.get(batch_id) if rules is not None else None
            if rule is not None and rule.owner != client_id:
                await _take_apart(
                    _citus_conn(conn),
                    rule,
                    client_id=client_id,
                    requests=requests,
                    indices=indices,
                    outcomes=outcomes,
                    now=now,
                )
                continue
            apart = await _take(
                execute,
                batch_id,
                client_id=client_id,
                quota_client=None if rules is None else client_id,
                rule=rule,
                requests=requests,
                indices=indices,
                outcomes=outcomes,
                now=now,
                hints=hints,
                events=events,
            )
            if apart is not None:
                await _take_apart(
                    _citus_conn(conn),
                    apart[0],
                    client_id=client_id,
                    requests=requests,
                    indices=apart[1],
                    outcomes=outcomes,
                    now=now,
                )


def _citus_conn(conn: AsyncConnection | None) -> AsyncConnection:
    if conn is None:  # only Citus' rules lead to _take_apart, and Citus has a connection
        raise RuntimeError("_take_apart needs the transaction's connection")
    return conn


def _rounds(
    requests: Sequence[IssueRequest], pending: list[int]
) -> Iterator[list[tuple[tuple[UUID, UUID], list[int]]]]:
    """The ``pending`` requests in rounds, each round's grouped by (batch, client) in that
    order: one statement may update a customer's quota row once, so a second request of the
    same customer waits for the next round."""
    while pending:
        this_round, pending = _one_per_customer(requests, pending)
        groups: dict[tuple[UUID, UUID], list[int]] = defaultdict(list)
        for i in this_round:
            groups[(requests[i].batch_id, requests[i].client_id)].append(i)
        yield sorted(groups.items())


def _one_per_customer(
    requests: Sequence[IssueRequest], pending: list[int]
) -> tuple[list[int], list[int]]:
    seen: set[tuple[UUID, str]] = set()
    first: list[int] = []
    again: list[int] = []
    for i in pending:
        key = (requests[i].batch_id, requests[i].customer_id)
        (again if key in seen else first).append(i)
        seen.add(key)
    return first, again


async def _take(
    execute: Execute,
    batch_id: UUID,
    *,
    client_id: UUID,
    quota_client: UUID | None,
    rule: _Rule | None,
    requests: Sequence[IssueRequest],
    indices: list[int],
    outcomes: Outcomes,
    now: datetime,
    hints: FreeCodeHints | None,
    events: _Events,
) -> tuple[_Rule, list[int]] | None:
    """``_TAKE`` for one (batch, client); ``quota_client`` on Citus (``_TAKE_CITUS``). On
    Citus, returns the batch's rule and the requests left when they need ``_take_apart``."""
    key = (batch_id, client_id)
    from_seq = hints.get(key, 0) if hints is not None else 0
    while indices:
        _reserve(hints, key, from_seq + len(indices))
        statement = _statement(citus=quota_client is not None, events=events)
        rows = await execute(
            statement,
            {
                "batch_id": batch_id,
                "client_id": client_id,
                "wanted": len(indices),
                "customers": [requests[i].customer_id for i in indices],
                "keys": [requests[i].idempotency_key for i in indices],
                "now": now,
                "event_time": event_time(now),
                "from_seq": from_seq,
                "quota_client": quota_client,
                "since": _window_start(rule, now),
                "most": rule.max_per_customer if rule is not None else None,
                "days": rule.time_limit_days if rule is not None else None,
            },
        )
        changed = _rule_changed(batch_id, quota_client, rule, rows[0])
        if changed is not None and changed.owner != quota_client:
            return changed, indices  # a rule now counts on another client's shard
        if changed is not None:
            rule = changed  # the batch's rule changed since _rules_citus read it: again
            continue
        events.demand.wanted = rows[0].events_wanted
        if rows[0].events_wanted and statement is _TAKE_LEAN:
            continue  # it changed nothing: a subscription wants the events; again, with them
        events.emitted.count += rows[0].events
        refused = _batch_refusal(batch_id, client_id, rows[0])
        if refused is not None:
            for i in indices:
                outcomes[i] = refused
            return None
        _remember(hints, key, rows[0].first_free)
        unconsidered, denied = _record_taken(rows, indices, requests, outcomes, now=now)
        if not denied and unconsidered and from_seq > 0:
            from_seq = 0  # before calling the batch exhausted, look behind the hint too
        elif not denied:
            for i in unconsidered:
                outcomes[i] = _exhausted(batch_id, client_id)
            return None
        # else: codes set aside for customers the rule refused may serve the others.
        indices = unconsidered
    return None


def _reserve(hints: FreeCodeHints | None, key: tuple[UUID, UUID], past: int) -> None:
    """A group that starts while this one runs begins past the codes this one is about to
    take (``past``), instead of walking them, locked, to find them taken."""
    if hints is not None:
        hints[key] = max(hints.get(key, 0), past)


def _remember(hints: FreeCodeHints | None, key: tuple[UUID, UUID], first_free: int | None) -> None:
    if hints is not None and first_free is not None:
        hints[key] = first_free


def _statement(*, citus: bool, events: _Events) -> TextClause:
    if citus:
        return _TAKE_CITUS
    return _TAKE if events.demand.wanted else _TAKE_LEAN


def _record_taken(
    rows: Sequence[Any],
    indices: list[int],
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    now: datetime,
) -> tuple[list[int], int]:
    """Outcomes from ``_TAKE``'s rows; returns the requests no free code was found for, and
    how many the rule refused (the codes set aside for those are free for the others)."""
    unconsidered: list[int] = []
    denied = 0
    for row, i in zip(rows, indices, strict=True):
        req = requests[i]
        if row.code is not None:
            outcomes[i] = IssuedCode(row.code, req.batch_id, req.client_id, req.customer_id, now)
        elif row.considered:
            denied += 1
            outcomes[i] = _limit_reached(req.customer_id, req.batch_id, row)
        else:
            unconsidered.append(i)
    return unconsidered, denied


def _batch_refusal(batch_id: UUID, client_id: UUID, row: Any) -> PromosError | None:
    if row.listed is None:
        return BatchNotFound(f"batch {batch_id} does not exist")
    if not row.listed:
        return _mismatch(batch_id, client_id)
    if row.expired:
        return BatchExpired(f"batch {batch_id} has expired")
    return None


def _mismatch(batch_id: UUID, client_id: UUID) -> ClientMismatch:
    return ClientMismatch(f"batch {batch_id} holds no codes of client {client_id}")


def _exhausted(batch_id: UUID, client_id: UUID) -> PoolExhausted:
    return PoolExhausted(f"batch {batch_id} has no codes left for client {client_id}")


def _limit_reached(customer: str, batch_id: UUID, rules: Any) -> CustomerLimitReached:
    window = f" in {rules.time_limit_days} days" if rules.time_limit_days is not None else ""
    return CustomerLimitReached(
        f"customer {customer} already has {rules.max_per_customer} "
        f"code(s) of batch {batch_id}{window}"
    )


# --- Citus -----------------------------------------------------------------------------------
# A statement runs on one shard only if it names one client for every distributed table it
# touches. ``_TAKE_CITUS`` does, with the batch's quota rows on the batch's own client's shard:
# a request for another client of a batch with a rule (Ango's uploads) touches two shards,
# and is served by ``_take_apart``: the same steps as separate statements in the transaction
# (quota rows locked first, in customer order, then free codes with SKIP LOCKED).


@dataclass(frozen=True, slots=True)
class _Rule:
    batch_id: UUID
    owner: UUID  # the batch's own client: its quota rows live on this client's shard
    max_per_customer: int
    time_limit_days: int | None


_RULES = select(
    batches.c.id, batches.c.client_id, batches.c.max_per_customer, batches.c.time_limit_days
).where(batches.c.id.in_(bindparam("ids", expanding=True)), batches.c.max_per_customer.is_not(None))


async def _rules_citus(conn: AsyncConnection, batch_ids: set[UUID]) -> dict[UUID, _Rule]:
    """The rules of these batches (a reference table: read on the coordinator)."""
    if not batch_ids:
        return {}
    rows = await conn.execute(_RULES, {"ids": list(batch_ids)})
    return {row.id: _Rule(row.id, row.client_id, row[2], row[3]) for row in rows}


def _rule_changed(
    batch_id: UUID, quota_client: UUID | None, given: _Rule | None, row: Any
) -> _Rule | None:
    """The batch's rule when ``_TAKE_CITUS`` refused to run with the one it was given."""
    if quota_client is None or row.max_per_customer is None or not row.listed or row.expired:
        return None
    found = _Rule(batch_id, row.owner, row.max_per_customer, row.time_limit_days)
    return None if found == given else found


# Citus runs no subquery in these single-shard INSERTs and UPDATEs: the row is locked by the
# upsert, its times read back, and written again from Python.


def _window_start(rule: _Rule | None, now: datetime) -> datetime:
    """Where the rule's window begins (the first issue ever counts without a time limit)."""
    days = rule.time_limit_days if rule is not None else None
    return now - timedelta(days=days) if days is not None else NEVER


async def _take_apart(
    conn: AsyncConnection,
    rule: _Rule,
    *,
    client_id: UUID,
    requests: Sequence[IssueRequest],
    indices: list[int],
    outcomes: Outcomes,
    now: datetime,
) -> None:
    """Issue for a client of a batch whose rule counts on another client's shard (Citus), in
    the caller's transaction: lock each customer's quota row, take free codes, record both."""
    batch_id = rule.batch_id
    found = (await conn.execute(_BATCHES_BY_ID, {"ids": [batch_id]})).first()
    listed = await _listed_sqlite(conn, [requests[indices[0]]])
    refused = _batch_refusal(
        batch_id,
        client_id,
        SimpleNamespace(
            listed=None if found is None else (batch_id, client_id) in listed,
            expired=found is not None and found.expired,
        ),
    )
    if refused is not None:
        for i in indices:
            outcomes[i] = refused
        return
    quota = {"owner": rule.owner, "batch_id": batch_id}
    since = _window_start(rule, now)
    recent: dict[str, list[datetime]] = {}
    for customer in sorted({requests[i].customer_id for i in indices}):
        row = await conn.execute(LOCK_QUOTA, {**quota, "customer_id": customer})
        recent[customer] = [t for t in row.scalar_one() if t > since]
    params = {"batch_id": batch_id, "client_id": client_id, "wanted": len(indices)}
    free = deque((await conn.execute(FREE_LOCKED, params)).scalars())
    marks: list[dict[str, Any]] = []
    added: set[str] = set()
    for i in indices:
        req = requests[i]
        if len(recent[req.customer_id]) >= rule.max_per_customer:
            outcomes[i] = _limit_reached(req.customer_id, batch_id, rule)
        elif not free:
            outcomes[i] = _exhausted(batch_id, client_id)
        else:
            code = free.popleft()
            recent[req.customer_id].append(now)
            added.add(req.customer_id)
            marks.append(
                {
                    "client": client_id,
                    "taken": code,
                    "customer": req.customer_id,
                    "at": now,
                    "key": req.idempotency_key,
                }
            )
            outcomes[i] = IssuedCode(code, batch_id, client_id, req.customer_id, now)
    if marks:
        await conn.execute(_MARK_ISSUED, marks)
        await conn.execute(
            SET_QUOTA, [{**quota, "customer_id": c, "issued": recent[c]} for c in sorted(added)]
        )


# One call, delegated whole to the worker holding the client's codes (promos/citus.py). The
# client is the first argument: Citus routes the call by it, and runs the function's
# statements there as local ones.
_TAKE_DELEGATED = text(
    "SELECT r_n AS n, r_code AS code, r_considered AS considered, r_first_free AS first_free, "
    "r_listed AS listed, r_expired AS expired, r_max_per_customer AS max_per_customer, "
    "r_time_limit_days AS time_limit_days, r_owner AS owner "
    "FROM promos_issue_codes(:client_id, :batch_id, :customers, :keys, :now, :from_seq)"
).bindparams(
    bindparam("client_id", type_=Uuid()),
    bindparam("batch_id", type_=Uuid()),
    bindparam("customers", type_=ARRAY(Text())),
    bindparam("keys", type_=ARRAY(Text())),
    bindparam("now", type_=UTCDateTime()),
    bindparam("from_seq", type_=BigInteger()),
)


async def _take_delegated(
    execute: Execute,
    batch_id: UUID,
    *,
    client_id: UUID,
    requests: Sequence[IssueRequest],
    indices: list[int],
    outcomes: Outcomes,
    now: datetime,
    hints: FreeCodeHints | None,
) -> _Rule | None:
    """Citus' issuing function for one (batch, client), customers distinct; returns the
    batch's rule, having changed nothing, when it counts on another client's shard."""
    key = (batch_id, client_id)
    from_seq = hints.get(key, 0) if hints is not None else 0
    _reserve(hints, key, from_seq + len(indices))
    found = await execute(
        _TAKE_DELEGATED,
        {
            "client_id": client_id,
            "batch_id": batch_id,
            "customers": [requests[i].customer_id for i in indices],
            "keys": [requests[i].idempotency_key for i in indices],
            "now": now,
            "from_seq": from_seq,
        },
    )
    rows = sorted(found, key=lambda row: int(row.n))
    head = rows[0]
    usable = head.listed and not head.expired
    if usable and head.max_per_customer is not None and head.owner != client_id:
        return _Rule(batch_id, head.owner, head.max_per_customer, head.time_limit_days)
    refused = _batch_refusal(batch_id, client_id, head)
    if refused is not None:
        for i in indices:
            outcomes[i] = refused
        return None
    _remember(hints, key, head.first_free)
    for row, i in zip(rows, indices, strict=True):
        req = requests[i]
        if row.code is not None:
            outcomes[i] = IssuedCode(row.code, batch_id, client_id, req.customer_id, now)
        elif row.considered:
            outcomes[i] = _limit_reached(req.customer_id, batch_id, row)
        else:
            outcomes[i] = _exhausted(batch_id, client_id)
    return None


async def _emit_citus(
    conn: AsyncConnection, outcomes: Outcomes, *, now: datetime, emitted: Emitted
) -> None:
    """The ``code.issued`` events of the codes handed out now (the outbox is on the
    coordinator, so not in ``_TAKE_CITUS``): in the same transaction, after it."""
    handed = {
        (o.client_id, o.code): o
        for o in outcomes
        if isinstance(o, IssuedCode) and o.issued_at is now
    }
    written = await emit_events(
        conn, CODE_ISSUED, [issued_payload(c) for c in handed.values()], now=now
    )
    emitted.count += len(written)


# --- idempotent replays (both backends) ------------------------------------------------------

_ISSUED_BY_KEY = select(
    codes.c.code,
    codes.c.batch_id,
    codes.c.client_id,
    codes.c.customer_id,
    codes.c.issued_at,
    codes.c.idempotency_key,
).where(
    codes.c.batch_id.in_(bindparam("batch_ids", expanding=True)),
    codes.c.idempotency_key.in_(bindparam("keys", expanding=True)),
)


async def _replay_idempotent(
    conn: AsyncConnection,
    requests: Sequence[IssueRequest],
    pending: Sequence[int],
    outcomes: Outcomes,
) -> tuple[list[int], list[tuple[int, int]]]:
    """Answer retried requests with their first code (even from a batch expired since).

    Returns the requests left to issue, and ``(i, first)`` pairs of requests that repeat an
    earlier request's key within this call: ``i`` gets whatever ``first`` gets.
    """
    keyed = [i for i in pending if requests[i].idempotency_key is not None]
    if not keyed:
        return list(pending), []
    rows = await conn.execute(
        _ISSUED_BY_KEY,
        {
            "batch_ids": list({requests[i].batch_id for i in keyed}),
            "keys": list({requests[i].idempotency_key for i in keyed}),
        },
    )
    earlier = {
        (row.batch_id, row.idempotency_key): IssuedCode(
            row.code, row.batch_id, row.client_id, row.customer_id, row.issued_at
        )
        for row in rows
    }
    first_of: dict[tuple[UUID, str], int] = {}
    left: list[int] = []
    replays: list[tuple[int, int]] = []
    for i in pending:
        req = requests[i]
        if req.idempotency_key is None:
            left.append(i)
            continue
        key = (req.batch_id, req.idempotency_key)
        if key in earlier:
            outcomes[i] = _replay(req, earlier[key])
        elif key in first_of:
            replays.append((i, first_of[key]))
        else:
            first_of[key] = i
            left.append(i)
    return left, replays


def _replay(req: IssueRequest, issued: IssuedCode) -> Outcome:
    if issued.client_id != req.client_id:
        return IdempotencyKeyReused(
            f"Idempotency-Key {req.idempotency_key!r} was used for another client"
        )
    if issued.customer_id != req.customer_id:
        return IdempotencyKeyReused(
            f"Idempotency-Key {req.idempotency_key!r} was used for another customer"
        )
    return issued


def _resolve_replays(
    requests: Sequence[IssueRequest], replays: list[tuple[int, int]], outcomes: Outcomes
) -> None:
    for i, first in replays:
        outcome = outcomes[first]
        outcomes[i] = _replay(requests[i], outcome) if isinstance(outcome, IssuedCode) else outcome


# --- SQLite ----------------------------------------------------------------------------------

_BATCHES_BY_ID = select(*BATCH_COLUMNS).where(batches.c.id.in_(bindparam("ids", expanding=True)))
_LISTED = select(batch_clients.c.batch_id, batch_clients.c.client_id).where(
    batch_clients.c.batch_id.in_(bindparam("batch_ids", expanding=True)),
    batch_clients.c.client_id.in_(bindparam("client_ids", expanding=True)),
)
_ISSUED_SINCE = (
    select(codes.c.customer_id, func.count())
    .where(
        codes.c.customer_id.in_(bindparam("customers", expanding=True)),
        codes.c.batch_id == bindparam("batch_id"),
        codes.c.issued_at > bindparam("since"),
    )
    .group_by(codes.c.customer_id)
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MARK_ISSUED = (
    update(codes)
    .where(codes.c.client_id == bindparam("client"), codes.c.code == bindparam("taken"))
    .values(
        customer_id=bindparam("customer"),
        issued_at=bindparam("at"),
        idempotency_key=bindparam("key"),
    )
)


async def _issue_sqlite(
    conn: AsyncConnection,
    requests: Sequence[IssueRequest],
    outcomes: Outcomes,
    *,
    now: datetime,
    emitted: Emitted,
) -> None:
    found = await conn.execute(_BATCHES_BY_ID, {"ids": list({r.batch_id for r in requests})})
    known = {row.id: batch_of(row) for row in found}
    existing: list[int] = []
    for i, req in enumerate(requests):
        if req.batch_id in known:
            existing.append(i)
        else:
            outcomes[i] = BatchNotFound(f"batch {req.batch_id} does not exist")
    pending, replays = await _replay_idempotent(conn, requests, existing, outcomes)
    listed = await _listed_sqlite(conn, [requests[i] for i in pending])
    by_batch: dict[UUID, list[int]] = defaultdict(list)
    for i in pending:
        req = requests[i]
        if (req.batch_id, req.client_id) not in listed:
            outcomes[i] = _mismatch(req.batch_id, req.client_id)
        elif known[req.batch_id].expired:
            outcomes[i] = BatchExpired(f"batch {req.batch_id} has expired")
        else:
            by_batch[req.batch_id].append(i)
    handed: list[IssuedCode] = []
    for batch_id, indices in by_batch.items():
        handed += await _take_sqlite(
            conn, known[batch_id], requests=requests, indices=indices, outcomes=outcomes, now=now
        )
    events = await emit_events(conn, CODE_ISSUED, [issued_payload(c) for c in handed], now=now)
    emitted.count += len(events)
    _resolve_replays(requests, replays, outcomes)


async def _listed_sqlite(
    conn: AsyncConnection, requests: Sequence[IssueRequest]
) -> set[tuple[UUID, UUID]]:
    """Which of the requests' (batch, client) pairs are a batch and one of its clients."""
    if not requests:
        return set()
    found = await conn.execute(
        _LISTED,
        {
            "batch_ids": list({r.batch_id for r in requests}),
            "client_ids": list({r.client_id for r in requests}),
        },
    )
    return {(row.batch_id, row.client_id) for row in found}


async def _take_sqlite(
    conn: AsyncConnection,
    batch: Batch,
    *,
    requests: Sequence[IssueRequest],
    indices: list[int],
    outcomes: Outcomes,
    now: datetime,
) -> list[IssuedCode]:
    """Hand each request the next free code of its client in the batch, in order, under the
    batch's rule (counted over all of the batch's clients); the codes handed out."""
    counts = await _issued_counts_sqlite(conn, batch, requests, indices, now=now)
    most = batch.rules.max_per_customer
    free: dict[UUID, deque[str]] = {}
    for client_id, wanted in Counter(requests[i].client_id for i in indices).items():
        params = {"batch_id": batch.id, "client_id": client_id, "wanted": wanted}
        free[client_id] = deque((await conn.execute(FREE_OF_CLIENT, params)).scalars())
    marks = []
    handed: list[IssuedCode] = []
    for i in indices:
        req = requests[i]
        if most is not None and counts[req.customer_id] >= most:
            outcomes[i] = _limit_reached(req.customer_id, batch.id, batch.rules)
            continue
        codes_left = free[req.client_id]
        if not codes_left:
            outcomes[i] = _exhausted(batch.id, req.client_id)
            continue
        code = codes_left.popleft()
        counts[req.customer_id] += 1
        marks.append(
            {
                "client": req.client_id,
                "taken": code,
                "customer": req.customer_id,
                "at": now,
                "key": req.idempotency_key,
            }
        )
        handed.append(IssuedCode(code, batch.id, req.client_id, req.customer_id, now))
        outcomes[i] = handed[-1]
    if marks:
        await conn.execute(_MARK_ISSUED, marks)
    return handed


async def _issued_counts_sqlite(
    conn: AsyncConnection,
    batch: Batch,
    requests: Sequence[IssueRequest],
    indices: list[int],
    *,
    now: datetime,
) -> Counter[str]:
    """How many of the batch's codes each of the requests' customers got within the rule's
    window (nothing is read for a batch without a rule)."""
    rules = batch.rules
    if rules.max_per_customer is None:
        return Counter()
    days = rules.time_limit_days
    found = await conn.execute(
        _ISSUED_SINCE,
        {
            "customers": list({requests[i].customer_id for i in indices}),
            "batch_id": batch.id,
            "since": now - timedelta(days=days) if days is not None else _EPOCH,
        },
    )
    return Counter({row[0]: int(row[1]) for row in found})
