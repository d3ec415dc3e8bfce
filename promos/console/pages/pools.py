"""Code pools (sales and admins): batches with their counters, a new batch, codes added from a
CSV file (with a progress bar where JavaScript runs) or typed in, expiry, a batch's issues per
day and live holds, what becomes of its held codes when their holds end, a customer's codes,
and a batch's export.

Changes go through ``promos.codes.changes``, as the API's do, audited with the signed-in
person as actor. The counters are ``promos.codes.counts``: no page counts a batch's codes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, File, Query, Request, UploadFile
from pydantic import BaseModel, ConfigDict
from starlette.datastructures import FormData
from starlette.responses import Response

from promos.codes import changes, counts, export, holds, service
from promos.codes.errors import BatchNotFound, DuplicateCode, InvalidCsv, InvalidRules
from promos.codes.export import BATCH_CODES
from promos.codes.schemas import ReleasedCodes, RulesIn
from promos.console import sessions
from promos.console.charts import bar_chart
from promos.console.deps import PREFIX, Person, render, see_other
from promos.console.forms import Form, parse
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.daily import Daily, Days
from promos.export import csv_stream, read_first
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.http.responses import CsvDownload
from promos.validation import MAX_NAME_LENGTH, PRINTABLE_NO_SPACE, Name

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

POOLS = f"{PREFIX}/pools"
CHART_DAYS = 30
_CUSTOMER = re.compile(PRINTABLE_NO_SPACE)
_WINDOW_MESSAGE = "Needs a limit per customer: it is the window it counts."
_UUID_MESSAGE = "A UUID, such as 5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b."


class BatchForm(RulesIn):
    """The new-batch form: the API's fields and limits (``BatchCreate``), read from text."""

    model_config = ConfigDict(strict=False, extra="ignore")

    client_id: UUID
    name: Name
    released_codes: ReleasedCodes = "burn"


class HoldSettingsForm(BaseModel):
    """What becomes of the code of a hold of the batch that ends unconfirmed."""

    model_config = ConfigDict(extra="ignore")

    released_codes: ReleasedCodes


# The batch page's live holds: the soonest to expire (the API lists them all, by page).
LIVE_HOLDS_SHOWN = 20
RELEASED_CODES = (
    ("burn", "Burnt: never issued again"),
    ("return", "Returned to the pool"),
)


def _batch_id(text: str) -> UUID:
    """A batch id from a path: anything else names no batch (404, not a form error)."""
    try:
        return UUID(text)
    except ValueError:
        raise BatchNotFound(f"batch {text[:40]!r} does not exist") from None


@router.get("/pools")
async def batches(request: Request, state: State, _: Person, after: After = None) -> Response:
    """Batches, oldest first, each with its codes held, issued and left."""
    async with state.database.read() as conn:
        page = await service.batches_page(
            conn, limit=PAGE_SIZE, after_key=decode_cursor(after, (datetime, UUID))
        )
        found = await counts.counts_of(conn, [b.id for b in page.items], now=state.clock())
    rows = [(batch, found.get(batch.id)) for batch in page.items]
    return render(
        request,
        "pools/list.html",
        {"title": "Code pools", "rows": rows, **pager(request, page, after)},
    )


def _new_form(request: Request, form: Form, *, status_code: int = 200) -> Response:
    return render(
        request,
        "pools/new.html",
        {"title": "New batch", "form": form, "released_options": RELEASED_CODES},
        status_code=status_code,
    )


@router.get("/pools/new")
async def new_batch(request: Request, _: Person) -> Response:
    return _new_form(request, Form())


def _filled(data: FormData) -> dict[str, str]:
    """The form's text fields that were filled in (an empty optional field is left out)."""
    return {k: v.strip() for k, v in data.items() if isinstance(v, str) and v.strip()}


@router.post("/pools/new")
async def create_batch(request: Request, state: State, person: Person) -> Response:
    filled = _filled(await request.form())
    values, form = parse(BatchForm, filled, messages={"client_id": {"uuid_parsing": _UUID_MESSAGE}})
    rules = None
    if values is not None:
        try:
            rules = values.to_rules()
        except InvalidRules:
            rules = None
    # The rules' own check (Rules.from_json) shown with the fields' errors, not after them.
    if rules is None and "time_limit_days" in filled and "max_per_customer" not in filled:
        form.errors.setdefault("time_limit_days", _WINDOW_MESSAGE)
    if values is None or rules is None:
        return _new_form(request, form, status_code=422)
    async with state.database.begin() as conn:
        batch = await changes.create_batch(
            conn,
            actor=person.principal,
            client_id=values.client_id,
            name=values.name,
            rules=rules,
            now=state.clock(),
        )
        if values.released_codes == "return":
            await changes.set_released_codes(
                conn, actor=person.principal, batch_id=batch.id, returned=True, now=state.clock()
            )
        await sessions.set_flash(conn, person.id, f"Batch {batch.name} created: add its codes.")
    return see_other(f"{POOLS}/{batch.id}")


@router.get("/pools/customer")
async def customer_codes(
    request: Request,
    state: State,
    _: Person,
    customer_id: Annotated[str | None, Query(max_length=10_000)] = None,
    after: After = None,
) -> Response:
    """The codes issued to a customer, newest first."""
    form = Form({"customer_id": customer_id or ""})
    context: dict[str, object] = {"title": "A customer's codes", "form": form, "codes": None}
    status = 200
    if customer_id is not None:
        if not customer_id:
            form.fail("customer_id", "Required.")
        elif len(customer_id) > MAX_NAME_LENGTH:
            form.fail("customer_id", f"At most {MAX_NAME_LENGTH} characters.")
        elif not _CUSTOMER.match(customer_id):
            form.fail("customer_id", "No spaces or hidden characters: customer ids have none.")
        if form.errors:
            status = 422
        else:
            async with state.database.read() as conn:
                page = await service.customer_codes(
                    conn,
                    customer_id=customer_id,
                    limit=PAGE_SIZE,
                    after_key=decode_cursor(after, (datetime, int)),
                )
            context.update(codes=page.items, **pager(request, page, after))
    return render(request, "pools/customer.html", context, status_code=status)


@router.get("/pools/{batch_id}")
async def batch_page(
    request: Request,
    batch_id: str,
    state: State,
    _: Person,
    added: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """A batch: its rules, counters and issues per day, and what can be done with it."""
    now = state.clock()
    async with state.database.read() as conn:
        batch = await service.get_batch(conn, _batch_id(batch_id))
        found = await counts.counts(conn, batch.id, now=now)
        days = await counts.issues_per_day(conn, batch.id, days=CHART_DAYS, now=now)
        live = await holds.live_holds(conn, batch_id=batch.id, now=now, limit=LIVE_HOLDS_SHOWN)
        returned = await holds.returns_released_codes(conn, batch.id)
    return render(
        request,
        "pools/batch.html",
        {
            "title": batch.name,
            "batch": batch,
            "counts": found,
            "holds": live.items,
            "shown_at_most": LIVE_HOLDS_SHOWN,
            "hold_form": Form({"released_codes": "return" if returned else "burn"}),
            "released_options": RELEASED_CODES,
            "chart": bar_chart(
                Daily(Days(last=days[-1].day, count=len(days)), tuple(d.issued for d in days)),
                what="codes issued",
            ),
            "added": added,
        },
    )


def _upload_form(
    request: Request, batch: service.Batch, form: Form, *, status_code: int = 200
) -> Response:
    return render(
        request,
        "pools/upload.html",
        {"title": f"Upload codes · {batch.name}", "batch": batch, "form": form},
        status_code=status_code,
    )


@router.get("/pools/{batch_id}/upload")
async def upload_page(request: Request, batch_id: str, state: State, _: Person) -> Response:
    async with state.database.read() as conn:
        batch = await service.get_batch(conn, _batch_id(batch_id))
    return _upload_form(request, batch, Form())


@router.post("/pools/{batch_id}/upload")
async def upload(
    request: Request,
    batch_id: str,
    state: State,
    person: Person,
    # Declared, so that the upload is allowed PROMOS_MAX_UPLOAD_BYTES as the API's are.
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add a CSV file's codes: all of them, or none (the error names the row)."""
    async with state.database.begin() as conn:
        batch = await service.get_batch(conn, _batch_id(batch_id))
    if file is None or not file.filename:
        return _upload_form(
            request, batch, Form().fail("file", "Choose a CSV file."), status_code=422
        )
    try:
        async with state.database.begin() as conn:
            added = await changes.add_codes(
                conn, actor=person.principal, batch_id=batch.id, lines=file.file, now=state.clock()
            )
    except (InvalidCsv, DuplicateCode) as exc:
        message = f"Nothing was added. {_sentence(exc.message)}"
        return _upload_form(request, batch, Form().fail("file", message), status_code=422)
    return see_other(f"{POOLS}/{batch.id}?added={added}")


def _codes_form(
    request: Request, batch: service.Batch, form: Form, *, status_code: int = 200
) -> Response:
    return render(
        request,
        "pools/add_codes.html",
        {"title": f"Add codes · {batch.name}", "batch": batch, "form": form},
        status_code=status_code,
    )


@router.get("/pools/{batch_id}/codes")
async def add_codes_page(request: Request, batch_id: str, state: State, _: Person) -> Response:
    async with state.database.read() as conn:
        batch = await service.get_batch(conn, _batch_id(batch_id))
    return _codes_form(request, batch, Form())


_ROW = re.compile(r"^row (\d+): ")


@router.post("/pools/{batch_id}/codes")
async def add_codes(request: Request, batch_id: str, state: State, person: Person) -> Response:
    """Add the codes typed in, one a line, as if uploaded as a file with the header ``code``."""
    async with state.database.begin() as conn:
        batch = await service.get_batch(conn, _batch_id(batch_id))
    typed = (await request.form()).get("codes")
    text = typed if isinstance(typed, str) else ""
    form = Form({"codes": text[:100_000]})
    if not text.strip():
        return _codes_form(request, batch, form.fail("codes", "Required."), status_code=422)
    lines = [b"code\n", *(line.encode() + b"\n" for line in text.splitlines())]
    try:
        async with state.database.begin() as conn:
            added = await changes.add_codes(
                conn, actor=person.principal, batch_id=batch.id, lines=lines, now=state.clock()
            )
    except (InvalidCsv, DuplicateCode) as exc:
        # The rows are the lines typed: row 2 of the file (after its header) is line 1.
        message = _ROW.sub(lambda m: f"line {int(m.group(1)) - 1}: ", exc.message)
        form.fail("codes", f"Nothing was added. {_sentence(message)}")
        return _codes_form(request, batch, form, status_code=422)
    return see_other(f"{POOLS}/{batch.id}?added={added}")


@router.post("/pools/{batch_id}/expire")
async def expire(batch_id: str, state: State, person: Person) -> Response:
    """Stop issuing from the batch, without touching its codes."""
    async with state.database.begin() as conn:
        batch = await changes.expire_batch(
            conn, actor=person.principal, batch_id=_batch_id(batch_id), now=state.clock()
        )
        await sessions.set_flash(conn, person.id, f"Batch {batch.name} expired.")
    return see_other(f"{POOLS}/{batch.id}")


@router.post("/pools/{batch_id}/hold-settings")
async def hold_settings(request: Request, batch_id: str, state: State, person: Person) -> Response:
    """Return the codes of the batch's holds that end from now on to the pool, or burn them."""
    values, _ = parse(HoldSettingsForm, _filled(await request.form()))
    async with state.database.begin() as conn:
        batch = await service.get_batch(conn, _batch_id(batch_id))
        if values is None:
            await sessions.set_flash(conn, person.id, "Choose burnt or returned.")
            return see_other(f"{POOLS}/{batch.id}")
        returned = values.released_codes == "return"
        await changes.set_released_codes(
            conn, actor=person.principal, batch_id=batch.id, returned=returned, now=state.clock()
        )
        fate = "go back to the pool" if returned else "are burnt"
        await sessions.set_flash(conn, person.id, f"Codes of holds that end from now on {fate}.")
    return see_other(f"{POOLS}/{batch.id}")


@router.get("/pools/{batch_id}/codes.csv")
async def export_codes(batch_id: str, state: State, _: Person) -> Response:
    """Every code of the batch as CSV, streamed as it is read (the API's export)."""
    async with state.database.read() as conn:
        batch = await service.get_batch(conn, _batch_id(batch_id))
    rows = await read_first(export.batch_codes(state.database, batch.id))
    return CsvDownload(csv_stream(BATCH_CODES, rows), filename=f"batch-{batch.id}-codes.csv")


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
