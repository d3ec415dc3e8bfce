"""Promo codes (sales and admins, as the API): generate with a preview and a capacity check,
follow a large generation's progress, list with filters paged by key, a code's page with its
redemptions (roll one back; their returns), its latest holds, set its uses left, delete it,
export as CSV.

Generations run in the background (``state.generations``, the API's own ``changes.generate``
inside); every change is made through ``promos.promocodes.changes`` with the signed-in
person as actor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse, Response

from promos.console import sessions
from promos.console.deps import PREFIX, Person, render, see_other
from promos.console.forms import Form, parse, text_values
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.errors import InvalidInput
from promos.export import csv_stream, read_first
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.http.responses import CsvDownload
from promos.promocodes import changes, export, holds, listing, returns, service
from promos.promocodes.errors import InvalidDiscount, InvalidPattern, InvalidPromocode
from promos.promocodes.generate import (
    DEFAULT_CHARSET,
    MAX_CODE_LENGTH,
    Drawer,
    check_capacity,
    code_shape,
)
from promos.promocodes.listing import CodeQuery
from promos.promocodes.schemas import GenerateIn
from promos.promocodes.service import MAX_USAGE_COUNT, PromocodeFilter
from promos.validation import Email, Identifier

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

CodePath = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._~-]+$")]
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
SAMPLES = 5
# The latest holds a code's page shows (a checkout's holds are short-lived; the API reads any).
HOLDS = 50
_SHAPE_FIELDS = ("pattern", "charset", "prefix", "postfix", "count")


def _blank_is_none(value: Any) -> Any:
    return value.strip() or None if isinstance(value, str) else value


class GenerateForm(GenerateIn):
    """The API's body, read from a form: text for numbers, blanks for "not set", products
    separated by commas or spaces."""

    model_config = ConfigDict(strict=False, extra="ignore")

    @field_validator("charset", "prefix", "postfix", mode="before")
    @classmethod
    def _defaults(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return DEFAULT_CHARSET if info.field_name == "charset" else ""
        return value.strip() if isinstance(value, str) else value

    @field_validator(
        "discount_percentage", "discount_amount", "expires_in", "usage_by", mode="before"
    )
    @classmethod
    def _optional(cls, value: Any) -> Any:
        return _blank_is_none(value)

    @field_validator("count", "usage_count", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("products", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        return value.replace(",", " ").split() if isinstance(value, str) else value


class ListFilters(BaseModel):
    """The list's filters, from the query string."""

    prefix: Annotated[
        str | None, Field(max_length=MAX_CODE_LENGTH, pattern=r"^[A-Za-z0-9._~-]+$")
    ] = None
    usage_by: Email | None = None
    product: Identifier | None = None
    expired: bool = False
    used_up: bool = False
    generation: Annotated[int | None, Field(ge=1, le=2**63 - 1)] = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_none(value)

    def query(self) -> CodeQuery:
        return CodeQuery(
            prefix=self.prefix,
            usage_by=self.usage_by,
            product=self.product,
            expired=self.expired,
            used_up=self.used_up,
            generation_id=self.generation,
        )


class UsesForm(BaseModel):
    usage_count: Annotated[int, Field(ge=0, le=MAX_USAGE_COUNT)]


_FILTER_MESSAGES = {
    "prefix": {"string_pattern_mismatch": "Letters, digits and . _ ~ - only."},
    "usage_by": {"string_pattern_mismatch": "An e-mail address."},
}
_GENERATE_MESSAGES = {
    "usage_by": {"string_pattern_mismatch": "An e-mail address."},
    "discount_percentage": {"decimal_parsing": "A number, e.g. 15 or 12.5."},
    "discount_amount": {"decimal_parsing": "A number, e.g. 5 or 4.99."},
    "expires_in": {"date_from_datetime_parsing": "A date, e.g. 2026-08-31."},
}


# --- list and export -----------------------------------------------------------------------


def _filters(request: Request) -> tuple[CodeQuery | None, Form]:
    values, form = parse(ListFilters, request.query_params, messages=_FILTER_MESSAGES)
    return (values.query() if values is not None else None), form


@router.get("/promocodes")
async def promocodes(request: Request, state: State, _: Person, after: After = None) -> Response:
    """Promo codes in code order, filtered, a page at a time."""
    query, form = _filters(request)
    items: list[service.Promocode] = []
    paging: dict[str, Any] = {"first_url": request.url.path, "next_url": None, "is_first": True}
    if query is not None:
        async with state.database.read() as conn:
            page = await listing.codes_page(
                conn,
                query=query,
                today=state.clock().date(),
                limit=PAGE_SIZE,
                after_key=decode_cursor(after, (str,)),
            )
        items, paging = page.items, pager(request, page, after)
    filtered = any(form.values.get(name) for name in ListFilters.model_fields)
    return render(
        request,
        "promocodes/list.html",
        {
            "title": "Promo codes",
            "form": form,
            "codes": items,
            "filtered": filtered,
            "export_url": f"{PREFIX}/promocodes.csv"
            + (f"?{request.url.query}" if request.url.query else ""),
            **paging,
        },
        status_code=200 if form.ok else 422,
    )


@router.get("/promocodes.csv")
async def export_promocodes(request: Request, state: State, _: Person) -> Response:
    """The codes the list's filters let through, as CSV (the API's columns), streamed."""
    query, form = _filters(request)
    if query is None:
        raise InvalidInput("; ".join(f"{k}: {v}" for k, v in form.errors.items()))
    rows = await read_first(export.listed_codes(state.database, query, today=state.clock().date()))
    return CsvDownload(csv_stream(export.PROMOCODES, rows), filename="promocodes.csv")


# --- generating ----------------------------------------------------------------------------


def _generate_form(
    request: Request, form: Form, *, samples: list[str] | None = None, status_code: int = 200
) -> Response:
    return render(
        request,
        "promocodes/new.html",
        {
            "title": "Generate promo codes",
            "form": form,
            "samples": samples,
            "default_charset": DEFAULT_CHARSET,
        },
        status_code=status_code,
    )


def _field_of(exc: InvalidInput) -> str:
    """The form field a service's refusal is about, from the name its message starts with."""
    message = exc.message
    if isinstance(exc, InvalidPattern):
        if " makes " in message:  # the capacity check: more codes than the pattern allows
            return "count"
        for name in ("count", "charset", "prefix", "postfix"):
            if message.startswith(name):
                return name
        return "pattern"
    if isinstance(exc, InvalidDiscount):
        return "discount_amount" if message.startswith("discount_amount") else "discount_percentage"
    for name in ("usage_count", "expires_in", "usage_by"):
        if message.startswith(name):
            return name
    return "products"


def _worded(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


@router.get("/promocodes/new")
async def new_promocodes(request: Request, _: Person) -> Response:
    return _generate_form(request, Form({"count": "1", "usage_count": "1"}))


@router.get("/promocodes/preview")
async def preview(request: Request, _: Person) -> Response:
    """Sample codes and the capacity check for the form's pattern fields, as JSON (the
    form's script asks as one types): the generator's own functions."""
    values = text_values(request.query_params, _SHAPE_FIELDS)
    return JSONResponse(_preview(values))


def _preview(values: dict[str, str]) -> dict[str, Any]:
    """``{"samples", "capacity", "most", "errors"}`` for the pattern fields in ``values``."""
    try:
        shape = code_shape(
            values.get("pattern", ""),
            values.get("charset", "").strip() or DEFAULT_CHARSET,
            values.get("prefix", "").strip(),
            values.get("postfix", "").strip(),
        )
    except InvalidPattern as exc:
        return {"samples": [], "errors": {_field_of(exc): _worded(exc.message)}}
    answer: dict[str, Any] = {
        "samples": Drawer(shape).draw(SAMPLES),
        "capacity": shape.capacity,
        "most": shape.most_codes(),
        "errors": {},
    }
    count = values.get("count", "").strip()
    if count:
        try:
            check_capacity(shape, int(count))
        except ValueError:
            answer["errors"]["count"] = "A whole number."
        except InvalidPattern as exc:
            answer["errors"][_field_of(exc)] = _worded(exc.message)
    return answer


@router.post("/promocodes/new")
async def generate(request: Request, state: State, person: Person) -> Response:
    """Start the generation (in the background) and show its progress; or, for "Preview",
    the form again with sample codes (without JavaScript too)."""
    data = await request.form()
    values, form = parse(GenerateForm, data, messages=_GENERATE_MESSAGES)
    if data.get("action") == "preview":
        answer = _preview(text_values(data, _SHAPE_FIELDS))
        form = Form(form.values, dict(answer["errors"]))
        return _generate_form(request, form, samples=answer["samples"])
    if values is None:
        return _generate_form(request, form, status_code=422)
    try:
        job_id = await state.generations.start(actor=person.principal, spec=values.to_spec())
    except (InvalidPattern, InvalidDiscount, InvalidPromocode) as exc:
        return _generate_form(
            request, form.fail(_field_of(exc), _worded(exc.message)), status_code=422
        )
    return see_other(f"{PREFIX}/promocodes/jobs/{job_id}")


@router.get("/promocodes/jobs/{job_id}")
async def job(request: Request, job_id: Id, state: State, _: Person) -> Response:
    """How far a generation got; the page refreshes itself until it ends."""
    async with state.database.read() as conn:
        found = await state.generations.job(conn, job_id)
        sample: list[service.Promocode] = []
        if found.generation_id is not None:
            page = await listing.codes_page(
                conn,
                query=CodeQuery(generation_id=found.generation_id),
                today=state.clock().date(),
                limit=10,
            )
            sample = page.items
    return render(
        request,
        "promocodes/job.html",
        {"title": "Generating promo codes", "job": found, "sample": sample},
    )


@router.get("/promocodes/jobs/{job_id}/progress")
async def job_progress(job_id: Id, state: State, _: Person) -> Response:
    """The job's progress for the page's script: ``{"status", "done", "count", "percent"}``."""
    async with state.database.read() as conn:
        found = await state.generations.job(conn, job_id)
    return JSONResponse(
        {
            "status": found.status,
            "done": found.done,
            "count": found.count,
            "percent": found.percent,
        }
    )


# --- one code ------------------------------------------------------------------------------


async def _code_page(
    request: Request,
    state: State,
    code: str,
    *,
    after: str | None = None,
    form: Form | None = None,
    status_code: int = 200,
) -> Response:
    async with state.database.read() as conn:
        found = await service.get_promocode(conn, code)
        page = await listing.redemptions_of(
            conn, promocode_id=found.id, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,))
        )
        ids = [r.id for r in page.items]
        returned = await returns.returns_of(conn, ids)
        ordered = await returns.orders_of(conn, ids)
        held = await holds.holds_of(conn, promocode_id=found.id, now=state.clock(), limit=HOLDS)
    return render(
        request,
        "promocodes/code.html",
        {
            "title": f"Promo code {code}",
            "code": found,
            "redemptions": page.items,
            "returns": returned,
            "orders": ordered,
            "holds": held,
            "holds_shown": HOLDS,
            "form": form or Form({"usage_count": str(found.usage_count)}),
            "today": state.clock().date(),
            **pager(request, page, after),
        },
        status_code=status_code,
    )


@router.get("/promocodes/codes/{code}")
async def promocode(
    request: Request, code: CodePath, state: State, _: Person, after: After = None
) -> Response:
    """A code: its terms, uses left, redemptions (newest first), edit and delete."""
    return await _code_page(request, state, code, after=after)


@router.post("/promocodes/codes/{code}/edit")
async def edit_promocode(
    request: Request, code: CodePath, state: State, person: Person
) -> Response:
    """Set the code's uses left."""
    values, form = parse(UsesForm, await request.form())
    if values is None:
        return await _code_page(request, state, code, form=form, status_code=422)
    async with state.database.begin() as conn:
        await changes.set_uses_left(
            conn,
            actor=person.principal,
            code=code,
            usage_count=values.usage_count,
            now=state.clock(),
        )
        await sessions.set_flash(
            conn, person.id, f"Promo code {code} now has {values.usage_count} uses left."
        )
    return see_other(f"{PREFIX}/promocodes/codes/{code}")


@router.post("/promocodes/codes/{code}/delete")
async def delete_promocode(code: CodePath, state: State, person: Person) -> Response:
    async with state.database.begin() as conn:
        await changes.delete_promocode(conn, actor=person.principal, code=code, now=state.clock())
        await sessions.set_flash(conn, person.id, f"Promo code {code} deleted.")
    return see_other(f"{PREFIX}/promocodes")


@router.post("/promocodes/redemptions/{redemption_id}/rollback")
async def rollback(redemption_id: Id, state: State, person: Person) -> Response:
    """Give the redemption's use back to its code (once)."""
    async with state.database.begin() as conn:
        done = await changes.rollback_redemption(
            conn, actor=person.principal, redemption_id=redemption_id, now=state.clock()
        )
        await sessions.set_flash(
            conn,
            person.id,
            f"Redemption {redemption_id} rolled back: "
            + ("" if done.use_given_back else "its use stays used (the code's policy); ")
            + f"{done.code} has {done.usage_count} uses left.",
        )
    return see_other(f"{PREFIX}/promocodes/codes/{done.code}")


@router.get("/promocodes/codes/{code}/redemptions.csv")
async def export_redemptions(code: CodePath, state: State, _: Person) -> Response:
    """The code's redemptions, rolled-back ones too, as CSV (the API's columns), streamed."""
    async with state.database.read() as conn:
        await service.get_promocode(conn, code)  # a 404 page for a code that does not exist
    rows = await read_first(export.redemptions(state.database, PromocodeFilter(code=code)))
    return CsvDownload(csv_stream(export.REDEMPTIONS, rows), filename=f"redemptions-{code}.csv")
