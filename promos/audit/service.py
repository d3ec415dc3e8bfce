"""Record a change in the audit log, in the transaction of the change; read the log back.

Routers call ``record`` right after the service call that made the change, on the same
connection: the audit row commits with the change or not at all. ``before`` and ``after``
are the service's own objects (dataclasses), turned into JSON here without their secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeAlias
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit.errors import InvalidActor
from promos.audit.tables import audit_log
from promos.auth.service import Principal
from promos.pagination import Key, Page, after, read_page

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None
Snapshot: TypeAlias = dict[str, Json]

MAX_ID = 2**63 - 1
# Fields of Promos' own objects that hold a secret or its digest: never written to the log.
SECRET_FIELDS = frozenset(
    {"password", "password_hash", "secret", "secret_digest", "digest", "token"}
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor_kind: str
    actor_id: int
    actor_name: str
    actor_role: str
    action: str
    target_type: str
    target_id: str
    before: Snapshot | None
    after: Snapshot | None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which entries to list; every field set narrows the listing."""

    actor_kind: str | None = None
    actor_id: int | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def parse_actor(credential_id: str) -> tuple[str, int]:
    """``"user:3"`` or ``"api_key:5"`` (a ``Principal.credential_id``) as (kind, id)."""
    kind, _, number = credential_id.partition(":")
    if kind not in {"user", "api_key"} or not number.isascii() or not number.isdigit():
        raise InvalidActor("actor is user:<id> or api_key:<id>, e.g. user:3")
    actor_id = int(number)
    if actor_id > MAX_ID:
        raise InvalidActor(f"actor: the id must be at most {MAX_ID}")
    return kind, actor_id


def snapshot(value: object) -> Snapshot | None:
    """``value`` (a dataclass or a mapping of Promos' own) as JSON, without its secret fields."""
    if value is None:
        return None
    if is_dataclass(value) and not isinstance(value, type):
        items: Mapping[str, object] = {f.name: getattr(value, f.name) for f in fields(value)}
    elif isinstance(value, Mapping):
        items = value
    else:
        raise TypeError(f"the audit log records dataclasses or mappings, not {type(value)}")
    return {str(k): _json(v) for k, v in items.items() if k not in SECRET_FIELDS}


def _json(value: object) -> Json:  # noqa: PLR0911 - one return per kind of value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)  # exact: an amount is never rounded through a float
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return _json(value.value)
    if is_dataclass(value) and not isinstance(value, type):
        return snapshot(value)
    if isinstance(value, Mapping):
        # A JSON document a caller stored (an offer's contents, a game's metadata): as it is.
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json(v) for v in value]
    raise TypeError(f"cannot record a {type(value).__name__} in the audit log")


async def record(
    conn: AsyncConnection,
    *,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str | int | UUID,
    at: datetime,
    before: object = None,
    after: object = None,
) -> None:
    """Write one audit row on ``conn``, inside the transaction of the change it describes."""
    await conn.execute(
        audit_log.insert().values(
            at=at,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=actor.name,
            actor_role=actor.role,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            before=snapshot(before),
            after=snapshot(after),
        )
    )


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(**{c.name: getattr(row, c.name) for c in audit_log.c})


async def list_entries(
    conn: AsyncConnection, *, query: AuditQuery, limit: int, after_key: Key | None = None
) -> Page[AuditEntry]:
    """Entries matching ``query``, newest first: a page after ``after_key`` (id)."""
    statement = (
        select(audit_log)
        .order_by(audit_log.c.id.desc())
        .where(after((audit_log.c.id,), after_key, descending=True))
    )
    for column, value in (
        (audit_log.c.actor_kind, query.actor_kind),
        (audit_log.c.actor_id, query.actor_id),
        (audit_log.c.action, query.action),
        (audit_log.c.target_type, query.target_type),
        (audit_log.c.target_id, query.target_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.since is not None:
        statement = statement.where(audit_log.c.at >= query.since)
    if query.until is not None:
        statement = statement.where(audit_log.c.at < query.until)
    return await read_page(conn, statement, limit=limit, key=lambda row: (row.id,), item=_entry)
