"""``GET /``: where to go from the root (the API docs, the OpenAPI document) instead of a 404.

Public and harmless: fixed text, nothing read from the database. Not in the OpenAPI document,
like ``/docs`` itself: it is a signpost to the API, not a part of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from promos import __version__
from promos.http.responses import JSON


@dataclass(frozen=True, slots=True)
class Page:
    key: str  # its name in GET /'s JSON answer
    title: str  # its name for people: GET /'s HTML answer, `promos serve`'s first lines
    path: str


# Where a person or a client starts; `promos serve` prints each at start-up. (The console at
# /admin joins them when it exists.)
PAGES = (
    Page("docs", "API docs", "/docs"),
    Page("openapi", "OpenAPI document", "/openapi.json"),
)

router = APIRouter()

_JSON = {"service": "Promos", "version": __version__, **{p.key: p.path for p in PAGES}}
_HTML = (
    f"<!doctype html><html><head><meta charset=utf-8><title>Promos</title></head><body>"
    f"<h1>Promos {__version__}</h1><ul>"
    + "".join(f'<li><a href="{p.path}">{p.title}</a> ({p.path})</li>' for p in PAGES)
    + "</ul></body></html>"
)
# A cache between the client and Promos keeps the two answers apart.
_VARY = {"Vary": "Accept"}


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    """The pages to go to: a list of links for a browser, JSON for anything else."""
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(_HTML, headers=_VARY)
    return JSON(_JSON, headers=_VARY)
