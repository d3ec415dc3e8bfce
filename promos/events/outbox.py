"""Writing events, and their deliveries, in the statement or transaction of the change.

An event is written only when an active subscription wants its type (or ``*``), and the
database decides that in the statement that writes it, so that a hot path with no
subscriber pays one look at ``webhook_subscriptions`` and nothing more. Two forms:

- ``emitting(...)`` (PostgreSQL): two CTEs for the statement that makes the change (issuing
  codes, counting claims, recording a redemption): one outbox row per row the change
  returned, one delivery per subscription that wants it. The event commits with the change,
  or is undone with it. The batched hot paths keep a second, lean form of their statement
  without these CTEs (they cost planning time on every execution) that refuses to change
  anything when a subscription wants the type (``wanted_cte``), and run it while
  ``Demand`` says the last statement saw no subscriber.
- ``emit_events(conn, ...)`` (both backends): the same for payloads made in Python, in the
  caller's transaction: one statement on PostgreSQL; on SQLite (no data-modifying CTEs), one
  that writes nothing when nobody wants the type, and a second for the deliveries when
  somebody does.

Every delivery is made by ``_deliveries`` below, and its body is the event's envelope
``{"id", "type", "created_at", "data"}``, built by the database from the outbox row.
"""

# ruff: noqa: S608 - the SQL is put together from this module's constants and checked event
# types (``_literal``); every value in it is a bound parameter.

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import Integer, String, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from promos.db import UTCDateTime

ALL_EVENTS = "*"
JSON_TYPE = "application/json"

# Event types are constants of the code, written into the SQL as literals.
_EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")


class Demand:
    """Whether a subscription wanted an event type when the last statement looked.

    Only chooses which form of a statement to send; the statement decides in the database.
    Until a statement has looked, assume one does (the emitting form is right either way).
    """

    __slots__ = ("wanted",)

    def __init__(self) -> None:
        self.wanted = True


@dataclass(slots=True)
class Emitted:
    """How many events a unit of work wrote: after it commits, wake the dispatcher if any."""

    count: int = 0


def jsonable(value: Any) -> Any:
    """``value`` with amounts as JSON numbers, times as ISO 8601, ids as strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID | Enum):
        return str(value.value if isinstance(value, Enum) else value)
    return value


def event_time(now: datetime) -> str:
    """The ``:event_time`` parameter of a statement that emits: ``now`` as the payloads write it."""
    return str(jsonable(now))


def _literal(event_type: str) -> str:
    if not _EVENT_TYPE.fullmatch(event_type):
        raise ValueError(f"not an event type: {event_type!r}")
    return f"'{event_type}'"


def _wanted(dialect: str, subscription: str, event_type: str) -> str:
    """SQL: ``subscription`` is active and wants ``event_type`` (an SQL expression) or all."""
    if dialect == "postgresql":
        listed = f"json_array_elements_text({subscription}.event_types) AS w(t)"
        return (
            f"{subscription}.active AND EXISTS "
            f"(SELECT FROM {listed} WHERE w.t IN ({event_type}, '{ALL_EVENTS}'))"
        )
    return (
        f"{subscription}.active AND EXISTS (SELECT 1 FROM json_each({subscription}.event_types) "
        f"AS w WHERE w.value IN ({event_type}, '{ALL_EVENTS}'))"
    )


def _envelope(dialect: str, event: str) -> str:
    """SQL: the body every subscription gets, from an outbox row (its id, type, payload)."""
    if dialect == "postgresql":
        return (
            f"CAST(json_build_object('id', {event}.id, 'type', {event}.event_type, "
            f"'created_at', CAST(:event_time AS text), 'data', {event}.payload) AS text)"
        )
    return (
        f"json_object('id', {event}.id, 'type', {event}.event_type, "
        f"'created_at', :event_time, 'data', json({event}.payload))"
    )


def _deliveries(dialect: str, events: str) -> str:
    """SQL: one pending delivery per event of ``events`` and subscription that wants it."""
    return (
        "INSERT INTO webhook_deliveries (event_id, subscription_id, kind, event_type, url, "
        "content_type, body, status, attempts, next_attempt_at, created_at) "
        f"SELECT e.id, s.id, 'webhook', e.event_type, s.url, '{JSON_TYPE}', "
        f"{_envelope(dialect, 'e')}, 'pending', 0, :now, :now "
        f"FROM {events} AS e JOIN webhook_subscriptions AS s "
        f"ON {_wanted(dialect, 's', 'e.event_type')} "
        "ORDER BY e.id, s.id"
    )


def wanted_cte(event_type: str, *, name: str) -> str:
    """PostgreSQL: the CTE ``<name>(yes)``: whether an active subscription wants the type."""
    kind = _literal(event_type)
    return (
        f"{name} AS (SELECT EXISTS (SELECT FROM webhook_subscriptions AS s "
        f"WHERE {_wanted('postgresql', 's', kind)}) AS yes)"
    )


def postgresql_wanted_check(event_type: str) -> str:
    """PostgreSQL, without parameters: one (empty) row if an active subscription wants
    ``event_type``, none otherwise (``DriverReads.transaction_checking`` sends it with BEGIN)."""
    kind = _literal(event_type)
    return (
        f"SELECT FROM webhook_subscriptions AS s WHERE {_wanted('postgresql', 's', kind)} LIMIT 1"
    )


def emitting(
    event_type: str,
    *,
    rows: str,
    payload: str,
    name: str = "events",
    order_by: str | None = None,
    when: str | None = None,
    always: bool = False,
) -> str:
    """PostgreSQL: the CTEs ``<name>`` and ``<name>_deliveries`` emitting an event per row.

    ``rows`` is a FROM item (a CTE of the change), ``payload`` a ``json`` expression over
    it. Unless ``always``, nothing is written when no active subscription wants the type
    (``when``: the statement's own ``wanted_cte``, as ``(SELECT yes FROM <name>)``).
    ``<name>`` returns the events' ids. The statement binds ``:now`` (``UTCDateTime``) and
    ``:event_time`` (``event_time(now)``).
    """
    kind = _literal(event_type)
    if always:
        gate = ""
    elif when is not None:
        gate = f"WHERE {when}"
    else:
        gate = (
            "WHERE EXISTS (SELECT FROM webhook_subscriptions AS s "
            f"WHERE {_wanted('postgresql', 's', kind)})"
        )
    order = f"ORDER BY {order_by}" if order_by else ""
    return f"""{name} AS (
        INSERT INTO outbox (event_type, payload, created_at)
        SELECT {kind}, {payload}, :now FROM {rows}
        {gate}
        {order}
        RETURNING id, event_type, payload
    ), {name}_deliveries AS (
        {_deliveries("postgresql", name)}
    )"""


@cache
def _postgresql_emit(event_type: str, always: bool) -> TextClause:
    emit = emitting(
        event_type, rows="given", payload="given.payload", order_by="given.n", always=always
    )
    return text(
        f"""
        WITH given AS (
            SELECT CAST(p AS json) AS payload, n
            FROM unnest(:payloads) WITH ORDINALITY AS g(p, n)
        ), {emit}
        SELECT id FROM events ORDER BY id
        """
    ).bindparams(
        bindparam("payloads", type_=ARRAY(Text())),
        bindparam("now", type_=UTCDateTime()),
        bindparam("event_time", type_=String()),
    )


@cache
def _sqlite_outbox(event_type: str, always: bool) -> TextClause:
    gate = (
        ""
        if always
        else "WHERE EXISTS (SELECT 1 FROM webhook_subscriptions AS s "
        f"WHERE {_wanted('sqlite', 's', _literal(event_type))})"
    )
    return text(
        "INSERT INTO outbox (event_type, payload, created_at) "
        f"SELECT {_literal(event_type)}, g.value, :now FROM json_each(:payloads) AS g "
        f"{gate} ORDER BY g.key RETURNING id"
    ).bindparams(bindparam("now", type_=UTCDateTime()))


_SQLITE_DELIVERIES = text(
    _deliveries("sqlite", "(SELECT id, event_type, payload FROM outbox WHERE id IN :ids)")
).bindparams(
    bindparam("ids", type_=Integer(), expanding=True),
    bindparam("now", type_=UTCDateTime()),
    bindparam("event_time", type_=String()),
)


def postgresql_emit(
    event_type: str, payloads: Sequence[Mapping[str, Any]], *, now: datetime, always: bool = False
) -> tuple[TextClause, dict[str, Any]]:
    """``emit_events``' PostgreSQL statement and its parameters (its rows: the events' ids),
    for a caller that runs it on asyncpg itself."""
    return _postgresql_emit(event_type, always), {
        "now": now,
        "event_time": event_time(now),
        "payloads": [orjson.dumps(jsonable(p)).decode() for p in payloads],
    }


async def emit_events(
    conn: AsyncConnection,
    event_type: str,
    payloads: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    always: bool = False,
) -> list[int]:
    """Write events of one type, with their deliveries, in the caller's transaction; their ids.

    Unless ``always``, nothing is written when no active subscription wants ``event_type``.
    """
    if not payloads:
        return []
    if conn.dialect.name == "postgresql":
        found = await conn.execute(*postgresql_emit(event_type, payloads, now=now, always=always))
        return list(found.scalars())
    data = [jsonable(p) for p in payloads]
    times = {"now": now, "event_time": event_time(now)}
    written = await conn.execute(
        _sqlite_outbox(event_type, always), {"now": now, "payloads": orjson.dumps(data).decode()}
    )
    ids = sorted(written.scalars())
    if ids:
        await conn.execute(_SQLITE_DELIVERIES, {**times, "ids": ids})
    return ids
