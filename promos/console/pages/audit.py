"""The audit log (admins only, as in the API): filtered by actor, action, target and time,
newest first, paged by key; each entry's before and after as a readable diff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator
from starlette.responses import Response

from promos.audit import service as audit
from promos.audit.errors import InvalidActor
from promos.audit.service import AuditQuery
from promos.auth import service as auth
from promos.auth.errors import UserNotFound
from promos.console.deps import PREFIX, Admin, render
from promos.console.diff import rows
from promos.console.forms import TIME_ERROR, parse, utc_time
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.pagination import Page

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)


class Filters(BaseModel):
    actor: Annotated[str | None, Field(max_length=255)] = None
    action: Annotated[str | None, Field(max_length=64)] = None
    target_type: Annotated[str | None, Field(max_length=64)] = None
    target_id: Annotated[str | None, Field(max_length=255)] = None
    since: datetime | None = None
    until: datetime | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return value.strip() or None if isinstance(value, str) else value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        return utc_time(value) if isinstance(value, str) else value


async def _actor(conn: Any, text: str) -> tuple[str, int]:
    """``user:3``, ``api_key:5``, ``cli:1000``, or a user's name."""
    try:
        return audit.parse_actor(text)
    except InvalidActor:
        pass
    try:
        user = await auth.get_user_by_name(conn, text)
    except UserNotFound:
        raise InvalidActor(
            "No user has this name: give a user name, or user:<id>, api_key:<id> or cli:<uid>."
        ) from None
    return "user", user.id


@router.get("/audit")
async def audit_log(request: Request, state: State, _: Admin, after: After = None) -> Response:
    """Changes made through the API, the console and the command line, newest first."""
    filters, form = parse(Filters, request.query_params, messages=_MESSAGES)
    page: Page[audit.AuditEntry] = Page([], None)
    status_code = 200
    if filters is not None:
        async with state.database.read() as conn:
            try:
                kind, actor_id = (
                    await _actor(conn, filters.actor) if filters.actor else (None, None)
                )
            except InvalidActor as exc:
                form.fail("actor", exc.message)
            else:
                query = AuditQuery(
                    actor_kind=kind,
                    actor_id=actor_id,
                    action=filters.action,
                    target_type=filters.target_type,
                    target_id=filters.target_id,
                    since=filters.since,
                    until=filters.until,
                )
                page = await audit.list_entries(
                    conn, query=query, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,))
                )
    if not form.ok:
        status_code = 422
    entries = [(entry, rows(entry.before, entry.after)) for entry in page.items]
    return render(
        request,
        "audit/list.html",
        {
            "title": "Audit log",
            "form": form,
            "entries": entries,
            "filtered": any(form.values.get(name) for name in Filters.model_fields),
            **pager(request, page, after),
        },
        status_code=status_code,
    )


_MESSAGES = {
    "since": {"value_error": TIME_ERROR},
    "until": {"value_error": TIME_ERROR},
}
