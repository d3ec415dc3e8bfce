"""Signing in and out of the console: server-side sessions, their cookie, their expiry."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from promos.app import create_app
from promos.auth import changes
from promos.auth.service import Principal
from promos.settings import Settings
from tests._routes import app_routes
from tests.conftest import FakeClock
from tests.console.conftest import (
    ADMIN_PASSWORD,
    SALES_PASSWORD,
    browser,
    csrf_token,
    sign_in,
    submit,
)

CLI = Principal("cli", 1000, "tester", "admin")


def session_cookie(response: httpx.Response) -> str:
    headers = [
        h for h in response.headers.get_list("set-cookie") if h.startswith("promos_session=")
    ]
    assert len(headers) == 1, response.headers
    return headers[0]


async def test_a_page_sends_a_stranger_to_sign_in_and_back_after_it(client, admin):
    page = await client.get("/admin/users?after=x")

    assert page.status_code == 303
    assert page.headers["location"] == "/admin/sign-in?next=/admin/users%3Fafter%3Dx"


async def test_signing_in_leads_to_the_page_asked_for(client, admin):
    response = await sign_in(client, "ada", ADMIN_PASSWORD, next_path="/admin/audit")

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/audit"


async def test_signing_in_never_leads_to_another_site(app, admin):
    for target in ("https://evil.example/admin", "//evil.example/admin", "/adminx", "/docs"):
        async with browser(app) as client:
            response = await sign_in(client, "ada", ADMIN_PASSWORD, next_path=target)

        assert response.headers["location"] == "/admin", target


async def test_the_session_cookie_is_http_only_lax_and_for_the_console_only(client, admin):
    cookie = session_cookie(await sign_in(client, "ada", ADMIN_PASSWORD))

    assert "HttpOnly" in cookie
    assert "Path=/admin" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back


async def test_the_session_cookie_is_secure_over_https(app, admin):
    async with browser(app, "https://promos.test") as client:
        cookie = session_cookie(await sign_in(client, "ada", ADMIN_PASSWORD))

    assert "Secure" in cookie


async def test_the_secure_cookies_setting_marks_them_secure_over_http(database_url, clock, admin):
    settings = Settings(database_url=database_url, console_secure_cookies=True)
    app = _app(settings, clock)
    async with app.router.lifespan_context(app), browser(app) as client:
        page = await client.get("/admin/sign-in")
        form_cookie = page.headers["set-cookie"]
        # What a browser does over HTTPS, where the proxy in front of Promos ends TLS.
        token = csrf_token(page.text)
        client.cookies.set("promos_signin_csrf", token, domain="promos.test", path="/admin")
        response = await client.post(
            "/admin/sign-in",
            data={"csrf_token": token, "username": "ada", "password": ADMIN_PASSWORD},
        )

    assert "Secure" in form_cookie
    assert "Secure" in session_cookie(response)


def _app(settings: Settings, clock: FakeClock | None = None) -> FastAPI:
    """An app of other settings than the fixture's (started by the test)."""
    return create_app(settings, clock=clock) if clock is not None else create_app(settings)


async def test_the_session_is_kept_on_the_server_and_only_its_id_in_the_cookie(client, admin):
    await sign_in(client, "ada", ADMIN_PASSWORD)
    cookie = client.cookies["promos_session"]

    page = await client.get("/admin")

    assert page.status_code == 200
    assert "ada" in page.text
    assert len(cookie) == 43  # 32 random bytes, nothing else


async def test_signing_in_again_gives_a_new_session_id(client, admin, clock):
    await sign_in(client, "ada", ADMIN_PASSWORD)
    first = client.cookies["promos_session"]
    clock.advance(minutes=31)  # the session ends: the browser still holds its cookie

    await sign_in(client, "ada", ADMIN_PASSWORD)

    assert client.cookies["promos_session"] != first


async def test_a_session_id_planted_before_sign_in_is_not_the_one_used_after(client, admin):
    client.cookies.set(
        "promos_session", "planted-by-someone-else", domain="promos.test", path="/admin"
    )

    await sign_in(client, "ada", ADMIN_PASSWORD)

    assert client.cookies["promos_session"] != "planted-by-someone-else"
    assert (await client.get("/admin")).status_code == 200


async def test_signing_in_ends_the_session_the_browser_had(app, admin, sales):
    async with browser(app) as client:
        await sign_in(client, "ada", ADMIN_PASSWORD)
        first = client.cookies["promos_session"]
        # The sign-in form of another tab, opened before the first sign-in.
        async with browser(app) as other_tab:
            page = await other_tab.get("/admin/sign-in")
        token = csrf_token(page.text)
        client.cookies.set("promos_signin_csrf", token, domain="promos.test", path="/admin")
        await client.post(
            "/admin/sign-in",
            data={"csrf_token": token, "username": "sam", "password": SALES_PASSWORD},
        )

    assert client.cookies["promos_session"] != first
    async with browser(app) as thief:
        thief.cookies.set("promos_session", first, domain="promos.test", path="/admin")
        assert (await thief.get("/admin")).status_code == 303


async def test_signing_out_ends_the_session_on_the_server(app, client, admin):
    await sign_in(client, "ada", ADMIN_PASSWORD)
    cookie = client.cookies["promos_session"]

    response = await submit(client, "/admin", "/admin/sign-out")

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/sign-in?m=signed-out"
    assert "promos_session" not in client.cookies
    async with browser(app) as copy:  # the cookie's value, kept somewhere
        copy.cookies.set("promos_session", cookie, domain="promos.test", path="/admin")
        assert (await copy.get("/admin")).status_code == 303


async def test_the_sign_in_page_says_that_one_has_signed_out(client, admin):
    await sign_in(client, "ada", ADMIN_PASSWORD)
    response = await submit(client, "/admin", "/admin/sign-out")

    page = await client.get(response.headers["location"])

    assert "You have signed out." in page.text


async def test_a_session_ends_after_the_idle_minutes(client, admin, clock):
    await sign_in(client, "ada", ADMIN_PASSWORD)

    clock.advance(minutes=31)
    response = await client.get("/admin")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/sign-in?m=ended")
    assert "Your session has ended" in (await client.get(response.headers["location"])).text


async def test_a_session_in_use_outlives_the_idle_minutes(client, admin, clock):
    await sign_in(client, "ada", ADMIN_PASSWORD)

    for _ in range(4):
        clock.advance(minutes=20)
        assert (await client.get("/admin")).status_code == 200


async def test_a_session_in_use_ends_after_the_session_hours(client, admin, clock):
    await sign_in(client, "ada", ADMIN_PASSWORD)
    for _ in range(3 * 12 - 1):
        clock.advance(minutes=20)
        assert (await client.get("/admin")).status_code == 200

    clock.advance(minutes=20)  # 12 hours after sign-in

    assert (await client.get("/admin")).status_code == 303


async def test_the_lifetimes_are_settings(database_url, clock, admin):
    settings = Settings(database_url=database_url, console_idle_minutes=5, console_session_hours=1)
    app = _app(settings, clock)
    async with app.router.lifespan_context(app), browser(app) as client:
        await sign_in(client, "ada", ADMIN_PASSWORD)
        clock.advance(minutes=6)
        idle = await client.get("/admin")
        await sign_in(client, "ada", ADMIN_PASSWORD)
        for _ in range(15):
            clock.advance(minutes=4)
            await client.get("/admin")
        absolute = await client.get("/admin")

    assert idle.status_code == 303
    assert absolute.status_code == 303


async def test_a_disabled_user_loses_their_session_at_once(as_sales, sales, database, clock):
    async with database.begin() as conn:
        await changes.disable_user(conn, actor=CLI, user_id=sales.id, now=clock())

    assert (await as_sales.get("/admin")).status_code == 303


async def test_a_new_password_ends_the_users_sessions(as_sales, sales, database, clock):
    async with database.begin() as conn:
        await changes.reset_password(
            conn, actor=CLI, user_id=sales.id, password="a new password", now=clock()
        )

    assert (await as_sales.get("/admin")).status_code == 303


# --- failures --------------------------------------------------------------------------------


async def _failure(app: FastAPI, username: str, password: str) -> httpx.Response:
    async with browser(app) as client:
        return await sign_in(client, username, password)


async def test_every_failed_sign_in_answers_alike(app, admin, sales, database, clock):
    async with database.begin() as conn:
        await changes.disable_user(conn, actor=CLI, user_id=sales.id, now=clock())

    answers = [
        await _failure(app, "ada", "wrong password"),
        await _failure(app, "nobody", "wrong password"),
        await _failure(app, "sam", SALES_PASSWORD),  # disabled
    ]

    assert {a.status_code for a in answers} == {401}
    messages = {a.text.split('role="alert">')[1].split("<")[0] for a in answers}
    assert messages == {"Wrong user name or password."}
    assert all("promos_session" not in a.headers.get("set-cookie", "") for a in answers)


async def test_a_failed_sign_in_keeps_the_name_but_not_the_password(client, admin):
    response = await sign_in(client, "ada", "wrong password")

    assert 'value="ada"' in response.text
    assert "wrong password" not in response.text


async def test_an_empty_field_is_named_next_to_it(client, admin):
    response = await sign_in(client, "ada", "")

    assert response.status_code == 422
    assert '<p class="field-error" id="password-error">Required.</p>' in response.text
    assert 'aria-invalid="true"' in response.text


async def test_failed_sign_ins_are_rate_limited_per_login(client, admin):
    for _ in range(10):  # PROMOS_RATE_LIMIT_SIGNIN_PER_LOGIN
        assert (await sign_in(client, "ada", "wrong password")).status_code == 401

    response = await sign_in(client, "ada", ADMIN_PASSWORD)

    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.text
    assert int(response.headers["retry-after"]) > 0


async def test_the_console_and_the_api_share_the_sign_in_limits(client, admin):
    for _ in range(10):
        await client.post("/v1/auth/tokens", json={"login": "ada", "password": "wrong password"})

    assert (await sign_in(client, "ada", ADMIN_PASSWORD)).status_code == 429


async def test_a_signed_in_person_at_the_sign_in_page_goes_on_to_the_console(as_admin):
    response = await as_admin.get("/admin/sign-in")

    assert response.status_code == 303
    assert response.headers["location"] == "/admin"


# --- every page needs a session ----------------------------------------------------------------


def _console_routes() -> list[tuple[str, str]]:
    app = _app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return sorted(
        (method, path)
        for method, path in app_routes(app)
        if path.startswith("/admin")
        and path != "/admin/sign-in"
        # The sign-in's second step posts the sign-in form's own CSRF token: a stranger's post
        # is refused by it first (tests/console/test_account.py).
        and (method, path) != ("POST", "/admin/sign-in/code")
    )


CONSOLE_ROUTES = _console_routes()


def test_the_console_route_list_covers_the_pages():
    assert ("GET", "/admin") in CONSOLE_ROUTES
    assert ("POST", "/admin/sign-out") in CONSOLE_ROUTES


@pytest.mark.parametrize(
    ("method", "path"), CONSOLE_ROUTES, ids=[f"{m} {p}" for m, p in CONSOLE_ROUTES]
)
async def test_every_console_page_sends_a_stranger_to_sign_in(client, method, path):
    url = path.replace("{rest:path}", "anything").replace("{user_id}", "1").replace("{key_id}", "1")

    response = await client.request(method, url, data={"csrf_token": "x"})

    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/admin/sign-in")


async def test_a_sign_in_form_from_another_page_load_still_works(client, admin):
    """Two tabs: the token of the first form is still this browser's."""
    first = await client.get("/admin/sign-in")
    await client.get("/admin/sign-in")

    response = await client.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_token(first.text), "username": "ada", "password": ADMIN_PASSWORD},
    )

    assert response.status_code == 303


async def test_a_sign_in_post_without_its_token_is_refused(client, admin):
    await client.get("/admin/sign-in")

    response = await client.post(
        "/admin/sign-in", data={"username": "ada", "password": ADMIN_PASSWORD}
    )

    assert response.status_code == 403
    assert "promos_session" not in client.cookies


async def test_a_sign_in_post_from_another_site_is_refused(app, admin):
    """Another site can make the browser post, but cannot read or set our sign-in cookie."""
    async with browser(app) as attacker:
        token = csrf_token((await attacker.get("/admin/sign-in")).text)
    async with browser(app) as victim:
        response = await victim.post(
            "/admin/sign-in",
            data={"csrf_token": token, "username": "ada", "password": ADMIN_PASSWORD},
        )

    assert response.status_code == 403


async def test_a_message_after_a_change_is_shown_on_the_next_page_only(as_admin):
    await submit(
        as_admin,
        "/admin/users/new",
        "/admin/users/new",
        {"username": "bea", "password": "a long password"},
    )

    assert "User bea created." in (await as_admin.get("/admin/users")).text
    assert "User bea created." not in (await as_admin.get("/admin/users")).text
