"""The audit log under ``/v1/audit`` (admin only): newest first, filtered, by cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from promos.audit import service
from promos.audit.schemas import ActorOut, AuditEntryOut, AuditPage, TargetOut
from promos.audit.service import AuditEntry, AuditQuery
from promos.http.deps import AdminPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.scopes import needs
from promos.validation import STORABLE, Lookup

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1/audit",
    tags=["audit"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


def entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id,
        at=entry.at,
        actor=ActorOut(
            kind=entry.actor_kind, id=entry.actor_id, name=entry.actor_name, role=entry.actor_role
        ),
        action=entry.action,
        target=TargetOut(type=entry.target_type, id=entry.target_id),
        before=entry.before,
        after=entry.after,
    )


@router.get("", dependencies=[needs("audit", "read")])
async def list_audit(  # noqa: PLR0917 - FastAPI reads each filter as a parameter
    state: State,
    _: AdminPrincipal,
    actor: Annotated[
        str | None,
        Query(max_length=40, pattern=STORABLE, description="user:<id>, api_key:<id> or cli:<uid>"),
    ] = None,
    action: Annotated[
        str | None, Query(max_length=64, pattern=STORABLE, description="e.g. special.update")
    ] = None,
    target_type: Annotated[
        str | None, Query(max_length=64, pattern=STORABLE, description="e.g. special")
    ] = None,
    target_id: Annotated[Lookup | None, Query(description="e.g. 12")] = None,
    since: Annotated[AwareDatetime | None, Query(description="from this time on")] = None,
    until: Annotated[AwareDatetime | None, Query(description="before this time")] = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> AuditPage:
    """Changes made through the management routes, newest first."""
    actor_kind, actor_id = service.parse_actor(actor) if actor is not None else (None, None)
    query = AuditQuery(
        actor_kind=actor_kind,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_entries(conn, query=query, limit=limit, after_key=after_key)
    return AuditPage(items=[entry_out(e) for e in page.items], **page_fields(page))
