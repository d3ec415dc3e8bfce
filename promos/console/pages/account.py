"""The signed-in person's account: their two-factor sign-in (enrol, confirm, disable) and how
many recovery codes are left.

Changes go through ``promos.auth.changes``, as the API's do, audited with the person as actor;
wrong codes count as failed sign-ins. The recovery codes are shown in the answer to the post
that confirmed, and nowhere else.
"""

from __future__ import annotations

from typing import Annotated

import segno
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from promos.auth import changes, twofactor
from promos.auth.errors import InvalidCredentials, InvalidSecondFactor
from promos.console import sessions
from promos.console.deps import ACCOUNT, PREFIX, Person, render, see_other
from promos.console.forms import Form, parse, text_values
from promos.console.routing import ConsoleRoute
from promos.errors import TooManyRequests
from promos.http.deps import State
from promos.http.ratelimit import client_key

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)


class CodeForm(BaseModel):
    otp: Annotated[str, Field(min_length=1, max_length=64)]


def _qr_svg(uri: str) -> str:
    """The otpauth:// URI as an inline SVG QR code, for a phone's camera."""
    svg: str = segno.make(uri, error="m").svg_inline(scale=4, title="QR code of the secret")
    return svg


async def _account(
    request: Request, state: State, person: Person, form: Form, *, status_code: int = 200
) -> Response:
    async with state.database.read() as conn:
        found = await twofactor.status(conn, person.user_id)
        enrolment = await twofactor.pending_enrolment(
            conn, user_id=person.user_id, username=person.username
        )
        required = person.is_admin and await twofactor.required_for_admins(conn)
    return render(
        request,
        "account/account.html",
        {
            "title": "Your account",
            "status": found,
            "enrolment": enrolment,
            "qr": _qr_svg(enrolment.uri) if enrolment is not None else None,
            "required": required,
            "form": form,
        },
        status_code=status_code,
    )


@router.get("/account")
async def account(request: Request, state: State, person: Person) -> Response:
    """Two-factor sign-in: on or off, a pending enrolment's QR code, recovery codes left."""
    return await _account(request, state, person, Form())


@router.post("/account/two-factor")
async def start_two_factor(state: State, person: Person) -> Response:
    """A new secret, pending until confirmed with a code (the account page shows it)."""
    async with state.database.begin() as conn:
        await changes.start_two_factor(conn, actor=person.principal, now=state.clock())
    return see_other(ACCOUNT)


def _failure(form: Form, exc: TooManyRequests) -> Form:
    form.problem = f"Too many wrong codes. Try again in {exc.retry_after} s."
    return form


@router.post("/account/two-factor/confirm")
async def confirm_two_factor(request: Request, state: State, person: Person) -> Response:
    """Turn it on with a current code, and show the recovery codes, this once."""
    values, form = parse(CodeForm, await request.form())
    if values is None:
        return await _account(request, state, person, form, status_code=422)
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=person.username)
    try:
        async with attempt, state.database.begin() as conn:
            codes = await changes.confirm_two_factor(
                conn, actor=person.principal, otp=values.otp, now=state.clock()
            )
    except InvalidSecondFactor:
        form.values.pop("otp", None)
        form.fail("otp", "Wrong code, or one used already: type the code the app shows now.")
        return await _account(request, state, person, form, status_code=422)
    except TooManyRequests as exc:
        return await _account(request, state, person, _failure(form, exc), status_code=429)
    state.authenticator.forget_all()
    return render(
        request,
        "account/recovery_codes.html",
        {"title": "Two-factor sign-in is on", "codes": codes},
    )


@router.post("/account/two-factor/disable")
async def disable_two_factor(request: Request, state: State, person: Person) -> Response:
    """Turn it off, proven with a current code (or a recovery code) or the password."""
    posted = await request.form()
    form = Form(values={k: v for k, v in text_values(posted, ("otp",)).items() if v})
    otp = form.value("otp").strip() or None
    password = posted.get("password")
    password = password if isinstance(password, str) and password else None
    if otp is None and password is None:
        form.problem = "Type a current code (or a recovery code), or your password."
        return await _account(request, state, person, form, status_code=422)
    attempt = state.limits.sign_in_attempt(client=client_key(request.scope), login=person.username)
    try:
        async with attempt, state.database.begin() as conn:
            await changes.disable_own_two_factor(
                conn, actor=person.principal, otp=otp, password=password, now=state.clock()
            )
            await sessions.set_flash(conn, person.id, "Two-factor sign-in is off.")
    except (InvalidSecondFactor, InvalidCredentials):
        form.values.pop("otp", None)
        form.problem = "That code or password is not right."
        return await _account(request, state, person, form, status_code=422)
    except TooManyRequests as exc:
        return await _account(request, state, person, _failure(form, exc), status_code=429)
    state.authenticator.forget_all()
    return see_other(ACCOUNT)
