"""Specials and upgrade programs (sales and admins, as the API): list, create, edit, delete.

One set of handlers serves both kinds (``Kind`` says what differs); the forms are read with
the API's own bodies, and changes go through ``promos.catalog.changes`` with the signed-in
person as actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from promos.auth.service import Principal
from promos.catalog import changes, service
from promos.catalog.errors import InvalidOffer
from promos.catalog.schemas import SpecialIn, UpgradeProgramIn
from promos.console import sessions
from promos.console.deps import PREFIX, Person, render, see_other
from promos.console.forms import Form, parse
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.pagination import Page

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
_TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
_TIME_ERROR = "A date and time in UTC, e.g. 2026-03-01T12:00."
_DECIMAL = {"decimal_parsing": "A number, e.g. 15 or 4.99."}
_MESSAGES = {
    "starts_at": {"value_error": _TIME_ERROR},
    "ends_at": {"value_error": _TIME_ERROR},
    "price": _DECIMAL,
    "discount_percentage": _DECIMAL,
    "discount_amount": _DECIMAL,
}


def _utc(text: str) -> datetime:
    """A datetime-local field's value (no zone: read as UTC), or an ISO time with its zone."""
    for pattern in _TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(_TIME_ERROR) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Lax(BaseModel):
    """An API body read from a form: text for numbers and times, blanks for "not set"."""

    model_config = ConfigDict(strict=False, extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        if info.field_name == "description":
            return value
        stripped = value.strip()
        if not stripped:
            # A required field left blank reads as "Required."; an optional one is not set.
            return "" if cls.model_fields[info.field_name].is_required() else None
        if info.field_name in {"starts_at", "ends_at"}:
            return _utc(stripped)
        return stripped


class SpecialForm(_Lax, SpecialIn):
    model_config = ConfigDict(strict=False, extra="ignore")


class UpgradeProgramForm(_Lax, UpgradeProgramIn):
    model_config = ConfigDict(strict=False, extra="ignore")


@dataclass(frozen=True, slots=True)
class Kind:
    """What differs between specials and upgrade programs."""

    path: str
    title: str
    one: str
    form: type[SpecialForm | UpgradeProgramForm]
    fields: tuple[str, ...]
    listed: Callable[[AsyncConnection, int, Any], Awaitable[Page[Any]]]
    get: Callable[[AsyncConnection, int], Awaitable[Any]]
    create: Callable[[AsyncConnection, Principal, Any, datetime], Awaitable[Any]]
    update: Callable[[AsyncConnection, Principal, int, Any, datetime], Awaitable[Any]]
    delete: Callable[[AsyncConnection, Principal, int, datetime], Awaitable[None]]


SPECIALS = Kind(
    path="specials",
    title="Specials",
    one="special",
    form=SpecialForm,
    fields=tuple(SpecialIn.model_fields),
    listed=lambda conn, limit, key: service.list_specials(conn, limit=limit, after_key=key),
    get=service.get_special,
    create=lambda conn, actor, spec, now: changes.create_special(
        conn, actor=actor, spec=spec, now=now
    ),
    update=lambda conn, actor, row_id, spec, now: changes.update_special(
        conn, actor=actor, special_id=row_id, spec=spec, now=now
    ),
    delete=lambda conn, actor, row_id, now: changes.delete_special(
        conn, actor=actor, special_id=row_id, now=now
    ),
)
UPGRADES = Kind(
    path="upgrade-programs",
    title="Upgrade programs",
    one="upgrade program",
    form=UpgradeProgramForm,
    fields=tuple(UpgradeProgramIn.model_fields),
    listed=lambda conn, limit, key: service.list_upgrade_programs(conn, limit=limit, after_key=key),
    get=service.get_upgrade_program,
    create=lambda conn, actor, spec, now: changes.create_upgrade_program(
        conn, actor=actor, spec=spec, now=now
    ),
    update=lambda conn, actor, row_id, spec, now: changes.update_upgrade_program(
        conn, actor=actor, program_id=row_id, spec=spec, now=now
    ),
    delete=lambda conn, actor, row_id, now: changes.delete_upgrade_program(
        conn, actor=actor, program_id=row_id, now=now
    ),
)


def _field_of(exc: InvalidOffer) -> str:
    """The form field an ``InvalidOffer`` is about, from the names its message gives."""
    message = exc.message
    if message.startswith("set"):
        return "discount_percentage" if "price" not in message else "price"
    if message.startswith("from_sku"):
        return "to_sku"
    for name in ("price", "discount_percentage", "discount_amount", "starts_at", "ends_at"):
        if message.startswith(name):
            return name
    return "ends_at"


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _local(moment: datetime | None) -> str:
    """A time as a datetime-local field shows it (UTC, to the minute)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if moment else ""


def _values_of(row: Any, fields: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for name in fields:
        value = getattr(row, name)
        if isinstance(value, datetime):
            values[name] = _local(value)
        else:
            values[name] = "" if value is None else str(value)
    return values


def _form_page(
    request: Request, kind: Kind, form: Form, *, row_id: int | None, status_code: int = 200
) -> Response:
    return render(
        request,
        "catalog/form.html",
        {
            "title": f"{'Edit' if row_id else 'New'} {kind.one}",
            "kind": kind,
            "form": form,
            "row_id": row_id,
        },
        status_code=status_code,
    )


async def _save(
    request: Request, kind: Kind, state: State, person: Person, row_id: int | None
) -> Response:
    values, form = parse(kind.form, await request.form(), messages=_MESSAGES)
    if values is None:
        return _form_page(request, kind, form, row_id=row_id, status_code=422)
    spec = values.to_spec()
    try:
        async with state.database.begin() as conn:
            if row_id is None:
                made = await kind.create(conn, person.principal, spec, state.clock())
                message = f"{kind.one.capitalize()} {made.title} created."
            else:
                made = await kind.update(conn, person.principal, row_id, spec, state.clock())
                message = f"{kind.one.capitalize()} {made.title} saved."
            await sessions.set_flash(conn, person.id, message)
    except InvalidOffer as exc:
        form.fail(_field_of(exc), _sentence(exc.message))
        return _form_page(request, kind, form, row_id=row_id, status_code=422)
    return see_other(f"{PREFIX}/{kind.path}")


def _routes(kind: Kind) -> None:
    base = f"/{kind.path}"

    async def listing(request: Request, state: State, _: Person, after: After = None) -> Response:
        async with state.database.begin() as conn:
            page = await kind.listed(conn, PAGE_SIZE, decode_cursor(after, (int,)))
        return render(
            request,
            f"catalog/{kind.path}.html",
            {"title": kind.title, "kind": kind, "rows": page.items, **pager(request, page, after)},
        )

    async def new(request: Request, _: Person) -> Response:
        return _form_page(request, kind, Form(), row_id=None)

    async def create(request: Request, state: State, person: Person) -> Response:
        return await _save(request, kind, state, person, None)

    async def edit(request: Request, row_id: Id, state: State, _: Person) -> Response:
        async with state.database.begin() as conn:
            row = await kind.get(conn, row_id)
        return _form_page(request, kind, Form(_values_of(row, kind.fields)), row_id=row_id)

    async def update(request: Request, row_id: Id, state: State, person: Person) -> Response:
        return await _save(request, kind, state, person, row_id)

    async def delete(row_id: Id, state: State, person: Person) -> Response:
        async with state.database.begin() as conn:
            row = await kind.get(conn, row_id)
            await kind.delete(conn, person.principal, row_id, state.clock())
            await sessions.set_flash(
                conn, person.id, f"{kind.one.capitalize()} {row.title} deleted."
            )
        return see_other(f"{PREFIX}{base}")

    router.add_api_route(base, listing, methods=["GET"])
    router.add_api_route(f"{base}/new", new, methods=["GET"])
    router.add_api_route(f"{base}/new", create, methods=["POST"])
    router.add_api_route(f"{base}/{{row_id}}", edit, methods=["GET"])
    router.add_api_route(f"{base}/{{row_id}}", update, methods=["POST"])
    router.add_api_route(f"{base}/{{row_id}}/delete", delete, methods=["POST"])


_routes(SPECIALS)
_routes(UPGRADES)
