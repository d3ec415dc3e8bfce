"""The console's headers, its CSRF protection, and its off switch."""

from __future__ import annotations

import re

import httpx
import pytest

from promos.app import create_app
from promos.settings import Settings
from tests.console.conftest import ADMIN_PASSWORD, browser, csrf_token, sign_in, submit

PAGES = ["/admin", "/admin/sign-in", "/admin/no-such-page"]


def _directives(policy: str) -> dict[str, str]:
    return {
        part.strip().split(" ", 1)[0]: part.strip().partition(" ")[2]
        for part in policy.split(";")
        if part.strip()
    }


def assert_console_headers(response: httpx.Response) -> None:
    policy = _directives(response.headers["content-security-policy"])
    assert "unsafe-inline" not in policy.get("script-src", policy["default-src"])
    assert "unsafe-eval" not in response.headers["content-security-policy"]
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_has_the_console_headers_signed_in_or_not(app, admin, path):
    async with browser(app) as stranger:
        assert_console_headers(await stranger.get(path))
    async with browser(app) as person:
        await sign_in(person, "ada", ADMIN_PASSWORD)
        assert_console_headers(await person.get(path))


async def test_an_error_page_and_a_redirect_have_them_too(as_admin):
    refused = await as_admin.post("/admin/sign-out", data={})
    redirect = await submit(as_admin, "/admin", "/admin/sign-out")

    assert refused.status_code == 403
    assert_console_headers(refused)
    assert_console_headers(redirect)


async def test_pages_hold_no_inline_script_or_style(as_admin):
    page = await as_admin.get("/admin")

    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
    assert " style=" not in page.text
    assert "<style" not in page.text
    assert re.search(r"\son[a-z]+=", page.text) is None  # no onclick= and the like


async def test_the_stylesheet_and_script_are_served_by_promos_itself(as_admin):
    page = await as_admin.get("/admin")
    assets = re.findall(r'(?:href|src)="(/admin/static/[^"]+)"', page.text)

    assert len(assets) == 2
    for url in assets:
        asset = await as_admin.get(url)
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(("text/css", "text/javascript"))
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert "http" not in " ".join(re.findall(r'(?:href|src)="([^"]+)"', page.text))


async def test_a_post_without_the_csrf_token_is_refused(as_admin):
    response = await as_admin.post("/admin/sign-out", data={})

    assert response.status_code == 403
    assert "nothing was done" in response.text
    assert (await as_admin.get("/admin")).status_code == 200  # still signed in


async def test_a_post_with_a_wrong_csrf_token_is_refused(as_admin):
    response = await as_admin.post("/admin/sign-out", data={"csrf_token": "x" * 43})

    assert response.status_code == 403


async def test_the_token_of_another_session_is_refused(app, as_admin, sales):
    async with browser(app) as other:
        await sign_in(other, "sam", "sales password")
        token = csrf_token((await other.get("/admin")).text)

    response = await as_admin.post("/admin/sign-out", data={"csrf_token": token})

    assert response.status_code == 403


async def test_a_script_may_send_the_token_in_a_header(as_admin):
    token = csrf_token((await as_admin.get("/admin")).text)

    response = await as_admin.post("/admin/sign-out", headers={"X-CSRF-Token": token})

    assert response.status_code == 303


async def test_an_unknown_page_is_a_console_404(as_admin):
    response = await as_admin.get("/admin/no-such-page")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "There is no console page at this address." in response.text


async def test_the_console_is_not_in_the_api_document(client):
    document = (await client.get("/openapi.json")).json()

    assert not [path for path in document["paths"] if path.startswith("/admin")]


@pytest.mark.parametrize("path", ["/admin", "/admin/sign-in", "/admin/static/console.css"])
async def test_turned_off_the_console_is_not_there(database_url, path):
    app = create_app(Settings(database_url=database_url, console=False))
    async with app.router.lifespan_context(app), browser(app) as client:
        response = await client.get(path)
        root = (await client.get("/")).json()

    assert response.status_code == 404
    assert "console" not in root


async def test_the_root_names_the_console(client):
    root = (await client.get("/", headers={"Accept": "text/html"})).text

    assert '<a href="/admin">Console</a>' in root
