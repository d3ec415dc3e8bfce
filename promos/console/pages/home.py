"""The console's first page (the areas the person may open), and its 404 page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from promos.console.deps import PREFIX, Person, render, see_other
from promos.console.routing import ConsoleRoute
from promos.errors import NotFound

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)
# Included after every other page: what none of them serves is a console 404.
fallback = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)


@router.get("")
async def index(request: Request, _: Person) -> Response:
    """Where sign-in leads: the areas this person may open."""
    return render(request, "index.html", {"title": "Console"})


@fallback.get("/{rest:path}")
async def not_found(rest: str, _: Person) -> Response:
    if not rest:  # /admin/
        return see_other(PREFIX)
    raise NotFound("There is no console page at this address.")
