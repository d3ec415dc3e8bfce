"""``GET /``: where to go from the root (the console, the API docs, the OpenAPI document)
instead of a 404.

Public and harmless: fixed text, nothing read from the database. Not in the OpenAPI document,
like ``/docs`` itself: it is a signpost to the API, not a part of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from promos import __version__
from promos.http.responses import JSON
from promos.settings import Settings


@dataclass(frozen=True, slots=True)
class Page:
    key: str  # its name in GET /'s JSON answer
    title: str  # its name for people: GET /'s HTML answer, `promos serve`'s first lines
    path: str


CONSOLE = Page("console", "Console", "/admin")
# Where a person or a client starts; `promos serve` prints each at start-up.
PAGES = (
    Page("docs", "API docs", "/docs"),
    Page("openapi", "OpenAPI document", "/openapi.json"),
)


def pages(settings: Settings) -> tuple[Page, ...]:
    """The pages these settings serve: the console first, unless it is turned off."""
    return (CONSOLE, *PAGES) if settings.console else PAGES


router = APIRouter()


def _answers(served: tuple[Page, ...]) -> tuple[dict[str, str], str]:
    as_json = {"service": "Promos", "version": __version__, **{p.key: p.path for p in served}}
    as_html = (
        f"<!doctype html><html><head><meta charset=utf-8><title>Promos</title></head><body>"
        f"<h1>Promos {__version__}</h1><ul>"
        + "".join(f'<li><a href="{p.path}">{p.title}</a> ({p.path})</li>' for p in served)
        + "</ul></body></html>"
    )
    return as_json, as_html


_ANSWERS: dict[tuple[Page, ...], tuple[dict[str, str], str]] = {
    served: _answers(served) for served in ((CONSOLE, *PAGES), PAGES)
}
# A cache between the client and Promos keeps the two answers apart.
_VARY = {"Vary": "Accept"}


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    """The pages to go to: a list of links for a browser, JSON for anything else."""
    as_json, as_html = _ANSWERS[pages(request.app.state.promos.settings)]
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(as_html, headers=_VARY)
    return JSON(as_json, headers=_VARY)
