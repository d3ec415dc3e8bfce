"""Brands of the discount generator: each brand's stock of codes and codes handed out (sales
and admins), and brand users (admins only, as in the API): list, create (the secret shown
once, in the answer to the post), delete.

Changes go through ``promos.brands.changes``, audited with the signed-in person as actor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from promos.brands import changes
from promos.brands import service as brands
from promos.brands.errors import BrandUserExists, InvalidBrandUser
from promos.brands.schemas import UserId
from promos.codes import counts
from promos.console import sessions
from promos.console.deps import PREFIX, Admin, Person, render, see_other
from promos.console.forms import Form, parse
from promos.console.paging import PAGE_SIZE, After, pager
from promos.console.routing import ConsoleRoute
from promos.http.deps import State
from promos.http.pagination import decode_cursor
from promos.validation import Lookup

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

USERS = f"{PREFIX}/brands/users"
_USER_MESSAGES = {
    "user_id": {"string_pattern_mismatch": "Letters, digits and . _ ~ - only (it goes in a URL)."}
}


class BrandUserForm(BaseModel):
    """The new-brand-user form: the API's user id (``BrandUserIn``); the secret is made here."""

    model_config = ConfigDict(extra="ignore")

    user_id: UserId


@router.get("/brands")
async def brand_list(request: Request, state: State, _: Person, after: After = None) -> Response:
    """Each brand with the codes generated for it, handed out and left."""
    async with state.database.read() as conn:
        page = await brands.brands_page(
            conn, limit=PAGE_SIZE, after_key=decode_cursor(after, (datetime, UUID))
        )
        found = await counts.counts_of(conn, [b.batch.id for b in page.items], now=state.clock())
    rows = [(brand, found.get(brand.batch.id)) for brand in page.items]
    return render(
        request,
        "brands/list.html",
        {"title": "Brands", "rows": rows, **pager(request, page, after)},
    )


@router.get("/brands/users")
async def brand_users(request: Request, state: State, _: Admin, after: After = None) -> Response:
    """Brand users by id (never their secrets)."""
    async with state.database.read() as conn:
        page = await brands.brand_users_page(
            conn, limit=PAGE_SIZE, after_key=decode_cursor(after, (str,))
        )
    return render(
        request,
        "brands/users.html",
        {"title": "Brand users", "users": page.items, **pager(request, page, after)},
    )


def _user_form(request: Request, form: Form, *, status_code: int = 200) -> Response:
    return render(
        request,
        "brands/user_new.html",
        {"title": "New brand user", "form": form},
        status_code=status_code,
    )


@router.get("/brands/users/new")
async def new_brand_user(request: Request, _: Admin) -> Response:
    return _user_form(request, Form())


@router.post("/brands/users/new")
async def create_brand_user(request: Request, state: State, person: Admin) -> Response:
    """Make the user and show its secret, this once (no redirect: the secret is in no URL,
    session or flash message)."""
    values, form = parse(BrandUserForm, await request.form(), messages=_USER_MESSAGES)
    if values is None:
        return _user_form(request, form, status_code=422)
    try:
        async with state.database.begin() as conn:
            new = await changes.create_brand_user(
                conn, actor=person.principal, user_id=values.user_id, secret=None, now=state.clock()
            )
    except (BrandUserExists, InvalidBrandUser) as exc:
        message = "That id is taken." if isinstance(exc, BrandUserExists) else exc.message
        return _user_form(request, form.fail("user_id", message), status_code=422)
    return render(
        request,
        "brands/user_created.html",
        {"title": "Brand user created", "user": new.user, "secret": new.secret},
        status_code=201,
    )


@router.post("/brands/users/{user_id}/delete")
async def delete_brand_user(
    user_id: Annotated[Lookup, Path()], state: State, person: Admin
) -> Response:
    """Delete the brand user; the codes issued to them stay theirs."""
    async with state.database.begin() as conn:
        user = await changes.delete_brand_user(
            conn, actor=person.principal, user_id=user_id, now=state.clock()
        )
        await sessions.set_flash(conn, person.id, f"Brand user {user.user_id} deleted.")
    return see_other(USERS)
