"""Referral programs (sales and admins, as the API): list, create, edit, delete, each
program's funnel by day; a user's statement; the e-mail invitations.

Forms are read with the API's own bodies; changes go through ``promos.referrals.changes``
with the signed-in person as actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, field_validator
from starlette.responses import Response

from promos.console import sessions
from promos.console.charts import bar_chart
from promos.console.deps import PREFIX, Person, render, see_other
from promos.console.forms import Form, parse
from promos.console.funnels import HeldFunnels
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.referrals import changes, service
from promos.referrals.errors import ReferralUserNotFound
from promos.referrals.schemas import ProgramCreate, UserHash

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

REFERRALS = f"{PREFIX}/referrals"
PERIODS = (("Today", 1), ("7 days", 7), ("30 days", 30))
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
# The pager of a listing that was not read (its filter was refused).
NO_PAGES = {"first_url": "", "next_url": None, "is_first": True}
_MONEY = {
    "decimal_parsing": "An amount, e.g. 10 or 9.99.",
    "decimal_max_places": "At most two decimal places.",
}
_MESSAGES = {"credit_value": _MONEY, "target_value": _MONEY}
_HASH_MESSAGES = {
    "string_pattern_mismatch": "No spaces or hidden characters: user hashes have none."
}


class ProgramForm(ProgramCreate):
    """The API's body, read from a form: amounts as text, blanks as missing."""

    model_config = ConfigDict(strict=False, extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _stripped(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("reward_hold_days", mode="before")
    @classmethod
    def _no_hold_when_blank(cls, value: Any) -> Any:
        # The API's field is a strict integer: a form's digits are read as one here.
        if isinstance(value, str):
            text = value.strip()
            return int(text) if text.isascii() and text.isdigit() else text or 0
        return value


class UserLookup(BaseModel):
    user_hash: UserHash


class InvitationFilter(BaseModel):
    referrer: UserHash | None = None
    verified: Literal["yes", "no"] | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return (value.strip() or None) if isinstance(value, str) else value


def _form_page(
    request: Request, form: Form, *, program_id: int | None, status_code: int = 200
) -> Response:
    return render(
        request,
        "referrals/form.html",
        {
            "title": "Edit program" if program_id else "New referral program",
            "form": form,
            "program_id": program_id,
        },
        status_code=status_code,
    )


@router.get("/referrals")
async def programs(request: Request, state: State, _: Person, after: After = None) -> Response:
    """Programs, oldest first (the oldest is the default of a registration naming none)."""
    async with state.database.read() as conn:
        page = await service.programs_page(
            conn, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,))
        )
    return render(
        request,
        "referrals/list.html",
        {"title": "Referral programs", "programs": page.items, **pager(request, page, after)},
    )


@router.get("/referrals/new")
async def new_program(request: Request, _: Person) -> Response:
    return _form_page(request, Form(), program_id=None)


@router.post("/referrals/new")
async def create_program(request: Request, state: State, person: Person) -> Response:
    values, form = parse(ProgramForm, await request.form(), messages=_MESSAGES)
    if values is None:
        return _form_page(request, form, program_id=None, status_code=422)
    async with state.database.begin() as conn:
        program = await changes.create_program(
            conn,
            actor=person.principal,
            name=values.name,
            credit_value=values.credit_value,
            target_value=values.target_value,
            reward_hold_days=values.reward_hold_days,
            now=state.clock(),
        )
        await sessions.set_flash(conn, person.id, f"Program {program.name} created.")
    return see_other(f"{REFERRALS}/programs/{program.id}")


@router.get("/referrals/programs/{program_id}")
async def program_page(request: Request, program_id: Id, state: State, _: Person) -> Response:
    """A program's terms and its funnel over the last 30 UTC days (those that are over held
    in the process: ``promos.console.funnels``)."""
    funnels: HeldFunnels = request.app.state.console_funnels
    async with state.database.read() as conn:
        program = await service.get_program(conn, program_id)
        funnel = await funnels.get(conn, program_id)
    return render(
        request,
        "referrals/program.html",
        {
            "title": program.name,
            "program": program,
            "funnel": funnel,
            "periods": PERIODS,
            "chart": bar_chart(funnel.signups, what="referred sign-ups"),
        },
    )


@router.get("/referrals/programs/{program_id}/edit")
async def edit_program(request: Request, program_id: Id, state: State, _: Person) -> Response:
    async with state.database.read() as conn:
        program = await service.get_program(conn, program_id)
    values = {
        "name": program.name,
        "credit_value": str(program.credit_value),
        "target_value": str(program.target_value),
        "reward_hold_days": str(program.reward_hold_days),
    }
    return _form_page(request, Form(values), program_id=program_id)


@router.post("/referrals/programs/{program_id}/edit")
async def update_program(
    request: Request, program_id: Id, state: State, person: Person
) -> Response:
    values, form = parse(ProgramForm, await request.form(), messages=_MESSAGES)
    if values is None:
        return _form_page(request, form, program_id=program_id, status_code=422)
    async with state.database.begin() as conn:
        program = await changes.update_program(
            conn,
            program_id,
            actor=person.principal,
            name=values.name,
            credit_value=values.credit_value,
            target_value=values.target_value,
            reward_hold_days=values.reward_hold_days,
            now=state.clock(),
        )
        await sessions.set_flash(conn, person.id, f"Program {program.name} saved.")
    return see_other(f"{REFERRALS}/programs/{program_id}")


@router.post("/referrals/programs/{program_id}/delete")
async def delete_program(program_id: Id, state: State, person: Person) -> Response:
    """Delete a program no referral was made under (the API's rule: a 409 page otherwise)."""
    async with state.database.begin() as conn:
        program = await service.get_program(conn, program_id)
        await changes.delete_program(conn, program_id, actor=person.principal, now=state.clock())
        await sessions.set_flash(conn, person.id, f"Program {program.name} deleted.")
    return see_other(REFERRALS)


def _lookup(data: Any) -> tuple[str | None, Form]:
    """The user hash asked for, or the form with its error."""
    values, form = parse(UserLookup, data, messages={"user_hash": _HASH_MESSAGES})
    return (values.user_hash if values is not None else None), form


@router.get("/referrals/users")
async def user_statement(
    request: Request,
    state: State,
    _: Person,
    user_hash: Annotated[str | None, Query(max_length=10_000)] = None,
    after: After = None,
) -> Response:
    """A user's statement: who referred them, whom they referred, their credits."""
    context: dict[str, Any] = {"title": "A user's statement", "statement": None}
    if user_hash is None:
        return render(request, "referrals/user.html", {**context, "form": Form()})
    found, form = _lookup({"user_hash": user_hash})
    context["form"] = form
    if found is None:
        return render(request, "referrals/user.html", context, status_code=422)
    try:
        async with state.database.read() as conn:
            statement = await service.statement(conn, found, now=state.clock())
            referral = (
                await service.get_referral(conn, found)
                if statement.referred_by is not None
                else None
            )
            made = await service.referrals_made(
                conn, found, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,))
            )
    except ReferralUserNotFound:
        form.fail("user_hash", "No such user: nobody referred them and they referred nobody.")
        return render(request, "referrals/user.html", context, status_code=404)
    context.update(
        statement=statement,
        referral=referral,
        made=made.items,
        now=state.clock(),
        **pager(request, made, after),
    )
    return render(request, "referrals/user.html", context)


@router.get("/referrals/credits")
async def user_credits(
    request: Request,
    state: State,
    _: Person,
    user_hash: Annotated[str, Query(max_length=10_000)],
    after: After = None,
) -> Response:
    """A user's credits ledger, oldest first."""
    found, form = _lookup({"user_hash": user_hash})
    if found is None:
        context = {"title": "A user's statement", "statement": None, "form": form}
        return render(request, "referrals/user.html", context, status_code=422)
    async with state.database.read() as conn:
        page = await service.list_credits(
            conn, found, limit=PAGE_SIZE, after_key=decode_cursor(after, (int,))
        )
    return render(
        request,
        "referrals/credits.html",
        {
            "title": f"Credits of {found}",
            "user_hash": found,
            "credits": page.items,
            **pager(request, page, after),
        },
    )


@router.get("/referrals/invitations")
async def invitations(
    request: Request,
    state: State,
    _: Person,
    referrer: Annotated[str | None, Query(max_length=10_000)] = None,
    verified: Annotated[str | None, Query(max_length=10)] = None,
    after: After = None,
) -> Response:
    """E-mail invitations, newest first: who invited which address, verified or not."""
    asked = {k: v for k, v in (("referrer", referrer), ("verified", verified)) if v is not None}
    values, form = parse(InvitationFilter, asked, messages={"referrer": _HASH_MESSAGES})
    context: dict[str, Any] = {
        "title": "E-mail invitations",
        "form": form,
        "invitations": [],
        **NO_PAGES,
    }
    if values is None:
        return render(request, "referrals/invitations.html", context, status_code=422)
    async with state.database.read() as conn:
        page = await service.invitations_page(
            conn,
            referrer=values.referrer,
            verified=None if values.verified is None else values.verified == "yes",
            limit=PAGE_SIZE,
            after_key=decode_cursor(after, (datetime, str)),
        )
    context.update(invitations=page.items, **pager(request, page, after))
    return render(request, "referrals/invitations.html", context)
