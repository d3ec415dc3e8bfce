"""The console's first page: the dashboard, then the areas the person may open; and its 404
page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from promos.console.charts import bar_chart
from promos.console.dashboard import DAYS, PERIODS, HeldFigures
from promos.console.deps import PREFIX, Person, render, see_other
from promos.console.routing import ConsoleRoute
from promos.errors import NotFound

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)
# Included after every other page: what none of them serves is a console 404.
fallback = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)


@router.get("")
async def index(request: Request, person: Person) -> Response:
    """Where sign-in leads: the dashboard (the figures this person's role may see), then
    the areas this person may open."""
    held: HeldFigures = request.app.state.console_dashboard
    figures = await held.get()
    shown = [
        (figure, bar_chart(figure.daily, what=figure.measure.title.lower()))
        for figure in figures.for_role(is_admin=person.is_admin)
    ]
    return render(
        request,
        "index.html",
        {
            "title": "Dashboard",
            "figures": figures,
            "shown": shown,
            "periods": PERIODS,
            "days": DAYS,
        },
    )


@fallback.get("/{rest:path}")
async def not_found(rest: str, _: Person) -> Response:
    if not rest:  # /admin/
        return see_other(PREFIX)
    raise NotFound("There is no console page at this address.")
