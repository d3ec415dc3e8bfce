"""The console's routes, and ``install``, which serves them (and their static files) in an app.

A new area adds its page module's router to ``PAGES`` (and a line to ``areas.AREAS``).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from promos.console.dashboard import HeldFigures
from promos.console.deps import PREFIX, STATIC
from promos.console.funnels import HeldFunnels
from promos.console.headers import STATIC_HEADERS
from promos.console.pages import (
    account,
    audit,
    brands,
    catalog,
    home,
    people,
    pools,
    promocodes,
    referrals,
    signin,
    webhooks,
)
from promos.console.pages.offers import router as offers_pages

PAGES: tuple[APIRouter, ...] = (
    signin.router,
    signin.signed_in,
    home.router,
    account.router,
    people.router,
    audit.router,
    promocodes.router,
    catalog.router,
    pools.router,
    brands.router,
    offers_pages,
    referrals.router,
    webhooks.router,
)


class _StaticFiles(StaticFiles):
    """The console's CSS and JS, with their cache and no-sniff headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in STATIC_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, with_headers)


def _routes() -> list[object]:
    """Every console route, built once per process (as ``promos.app._include`` does)."""
    routes: list[object] = [
        Mount(f"{PREFIX}/static", app=_StaticFiles(directory=STATIC), name="console-static")
    ]
    for router in (*PAGES, home.fallback):
        routes.extend(router.routes)
    return routes


ROUTES = _routes()


def install(app: FastAPI) -> None:
    """Serve the console at /admin in ``app`` (whose ``state.promos`` is set)."""
    state = app.state.promos
    app.state.console_dashboard = HeldFigures(
        state.database,
        state.clock,
        seconds=state.settings.console_dashboard_seconds,
        low_below=state.settings.console_low_pool_codes,
    )
    app.state.console_funnels = HeldFunnels(state.clock)
    app.router.routes.extend(ROUTES)  # type: ignore[arg-type]
