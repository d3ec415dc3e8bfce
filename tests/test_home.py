"""``GET /``: where to go from the root, instead of a 404."""

from __future__ import annotations

from promos import __version__
from promos.app import create_app
from promos.settings import Settings
from tests._routes import iter_route_contexts


async def test_the_root_names_the_api_docs_and_the_openapi_document(client):
    response = await client.get("/")

    assert response.status_code == 200
    assert response.json() == {
        "service": "Promos",
        "version": __version__,
        "console": "/admin",
        "docs": "/docs",
        "openapi": "/openapi.json",
    }


async def test_a_browser_at_the_root_gets_links(client):
    response = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})

    assert response.headers["content-type"].startswith("text/html")
    assert '<a href="/docs">API docs</a>' in response.text
    assert '<a href="/openapi.json">' in response.text


async def test_both_answers_tell_a_cache_they_depend_on_accept(client):
    response = await client.get("/")

    assert response.headers["vary"] == "Accept"


async def test_the_pages_the_root_names_are_there(client):
    links = (await client.get("/")).json()

    for path in (links["docs"], links["openapi"]):
        assert (await client.get(path)).status_code == 200, path
    # The console sends a stranger to its sign-in page.
    assert (await client.get(links["console"])).headers["location"].startswith("/admin/sign-in")


async def test_the_root_is_not_an_operation_of_the_api(client):
    document = (await client.get("/openapi.json")).json()

    assert "/" not in document["paths"]


def test_no_compatible_api_serves_the_root():
    # Every seed's routes on: no route but the home page's matches the root, by any method.
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))

    matching = [
        (sorted(route.methods or ()), route.endpoint.__module__)
        for route in iter_route_contexts(app.routes)
        if getattr(route, "path_regex", None) is not None and route.path_regex.match("/")
    ]

    assert matching == [(["GET"], "promos.home")]
