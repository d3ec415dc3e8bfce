"""The account page (two-factor sign-in: enrol, confirm, disable), the sign-in's second step,
and the admins' requirement and resets on the users page: through the API's services, audited."""

from __future__ import annotations

import re

import httpx
import pyotp
import pytest
from fastapi import FastAPI

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.auth import twofactor
from promos.auth.service import User
from promos.db import Database
from tests.conftest import FakeClock
from tests.console.conftest import (
    ADMIN_PASSWORD,
    SALES_PASSWORD,
    browser,
    csrf_token,
    sign_in,
    submit,
)
from tests.factories.auth import make_user

_SECRET = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')
_CODES = re.compile(r"<li><code>([a-z2-7-]{19})</code></li>")


async def _actions(database: Database, action: str) -> list[audit.AuditEntry]:
    async with database.begin() as conn:
        page = await audit.list_entries(conn, query=AuditQuery(action=action), limit=10)
    return page.items


async def _enrol(client: httpx.AsyncClient, clock: FakeClock) -> tuple[str, list[str]]:
    """Set up two-factor sign-in on the account page: the secret and the recovery codes."""
    started = await submit(client, "/admin/account", "/admin/account/two-factor")
    assert started.status_code == 303
    page = await client.get("/admin/account")
    found = _SECRET.search(page.text)
    assert found is not None, page.text
    secret = found.group(1)
    assert "<svg" in page.text  # the QR code, inline
    confirmed = await client.post(
        "/admin/account/two-factor/confirm",
        data={"csrf_token": csrf_token(page.text), "otp": pyotp.TOTP(secret).at(clock())},
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, _CODES.findall(confirmed.text)


async def test_a_person_enrols_on_the_account_page_and_sees_the_recovery_codes_once(
    as_sales, database, sales, clock
):
    _secret, codes = await _enrol(as_sales, clock)

    assert len(codes) == 10
    page = await as_sales.get("/admin/account")
    assert "Recovery codes left: <strong>10</strong>" in page.text
    assert codes[0] not in page.text
    assert [e.action for e in await _actions(database, "user.two_factor_start")] == [
        "user.two_factor_start"
    ]
    [enabled] = await _actions(database, "user.two_factor_enable")
    assert enabled.actor_name == "sam"


async def test_a_wrong_code_leaves_the_enrolment_pending(as_sales, clock):
    await submit(as_sales, "/admin/account", "/admin/account/two-factor")

    refused = await submit(
        as_sales, "/admin/account", "/admin/account/two-factor/confirm", {"otp": "000000"}
    )

    assert refused.status_code == 422
    assert "Wrong code" in refused.text
    assert "Confirm and turn on" in refused.text


async def test_sign_in_asks_for_the_code_on_a_second_step(app, as_sales, sales, clock):
    secret, _ = await _enrol(as_sales, clock)
    clock.advance(seconds=30)
    async with browser(app) as client:
        first = await sign_in(client, "sam", SALES_PASSWORD)
        assert first.status_code == 303
        assert first.headers["location"].startswith("/admin/sign-in/code")
        assert "promos_session" not in client.cookies
        # Nothing but a random pending secret is kept: never the password.
        assert SALES_PASSWORD not in str(dict(client.cookies))
        assert (await client.get("/admin")).status_code == 303  # not signed in yet

        page = await client.get(first.headers["location"])
        second = await client.post(
            "/admin/sign-in/code",
            data={
                "csrf_token": csrf_token(page.text),
                "otp": pyotp.TOTP(secret).at(clock()),
                "next": "/admin/account",
            },
        )

        assert second.status_code == 303
        assert second.headers["location"] == "/admin/account"
        assert (await client.get("/admin/account")).status_code == 200


async def test_the_second_step_without_a_pending_sign_in_goes_back_to_sign_in(app):
    async with browser(app) as client:
        page = await client.get("/admin/sign-in")
        response = await client.post(
            "/admin/sign-in/code", data={"csrf_token": csrf_token(page.text), "otp": "123456"}
        )

        assert response.status_code == 303
        assert response.headers["location"] == "/admin/sign-in"
        assert "promos_session" not in client.cookies


async def test_a_strangers_post_of_a_code_is_refused_by_csrf(client):
    response = await client.post("/admin/sign-in/code", data={"otp": "123456"})

    assert response.status_code == 403


async def test_a_wrong_code_on_the_second_step_is_refused(app, as_sales, clock):
    await _enrol(as_sales, clock)
    async with browser(app) as client:
        first = await sign_in(client, "sam", SALES_PASSWORD)
        page = await client.get(first.headers["location"])
        refused = await client.post(
            "/admin/sign-in/code", data={"csrf_token": csrf_token(page.text), "otp": "000000"}
        )

        assert refused.status_code == 401
        assert "Wrong code" in refused.text
        assert "promos_session" not in client.cookies


async def test_a_recovery_code_signs_in_on_the_second_step(app, as_sales, clock):
    _, codes = await _enrol(as_sales, clock)
    async with browser(app) as client:
        first = await sign_in(client, "sam", SALES_PASSWORD)
        page = await client.get(first.headers["location"])
        second = await client.post(
            "/admin/sign-in/code", data={"csrf_token": csrf_token(page.text), "otp": codes[3]}
        )

        assert second.status_code == 303
        assert (await client.get("/admin/account")).status_code == 200


async def test_the_second_step_expires_after_five_minutes(app, as_sales, clock):
    secret, _ = await _enrol(as_sales, clock)
    async with browser(app) as client:
        first = await sign_in(client, "sam", SALES_PASSWORD)
        page = await client.get(first.headers["location"])
        clock.advance(minutes=6)
        late = await client.post(
            "/admin/sign-in/code",
            data={"csrf_token": csrf_token(page.text), "otp": pyotp.TOTP(secret).at(clock())},
        )

        assert late.status_code == 303
        assert late.headers["location"] == "/admin/sign-in?m=code-expired"


async def test_a_person_turns_it_off_with_the_password(as_sales, database, clock):
    await _enrol(as_sales, clock)

    action = "/admin/account/two-factor/disable"
    off = await submit(as_sales, "/admin/account", action, {"password": SALES_PASSWORD})

    assert off.status_code == 303
    assert "Set up two-factor sign-in" in (await as_sales.get("/admin/account")).text
    assert len(await _actions(database, "user.two_factor_disable")) == 1


# --- the users page ----------------------------------------------------------------------------


async def test_the_users_page_shows_who_has_two_factor_sign_in(as_admin, as_sales, clock):
    await _enrol(as_sales, clock)

    page = await as_admin.get("/admin/users")

    assert re.search(r"<strong>sam</strong>.*?Two-factor\">.*?On<", page.text, re.DOTALL)
    assert "Reset two-factor" in page.text


async def test_an_admin_resets_a_persons_two_factor_sign_in(
    as_admin, as_sales, sales, database, clock
):
    await _enrol(as_sales, clock)

    reset = await submit(as_admin, "/admin/users", f"/admin/users/{sales.id}/two-factor/reset")

    assert reset.status_code == 303
    async with database.begin() as conn:
        assert not await twofactor.is_enabled(conn, sales.id)
    [entry] = await _actions(database, "user.two_factor_reset")
    assert entry.actor_name == "ada"


async def test_an_admin_without_it_cannot_require_it_of_admins(as_admin):
    refused = await submit(
        as_admin, "/admin/users", "/admin/users/two-factor-policy", {"require": "on"}
    )

    assert refused.status_code == 403
    assert "turn on your own two-factor sign-in first" in refused.text.lower()


@pytest.fixture
async def required(app: FastAPI, as_admin: httpx.AsyncClient, clock: FakeClock) -> None:
    """Ada (an admin) enrolled, then required a second factor of every admin."""
    await _enrol(as_admin, clock)
    saved = await submit(
        as_admin, "/admin/users", "/admin/users/two-factor-policy", {"require": "on"}
    )
    assert saved.status_code == 303


async def test_the_requirement_is_a_switch_on_the_users_page_audited(as_admin, required, database):
    page = await as_admin.get("/admin/users")

    assert 'name="require" id="require" checked' in page.text
    [entry] = await _actions(database, "auth_settings.update")
    assert entry.after == {"require_two_factor_for_admins": True}


async def test_an_admin_without_it_while_required_is_sent_to_the_account_page(
    app, required, database, clock
):
    await make_admin(database, clock)
    async with browser(app) as client:
        assert (await sign_in(client, "bob", ADMIN_PASSWORD)).status_code == 303

        dashboard = await client.get("/admin/users")
        account = await client.get("/admin/account")

        assert dashboard.status_code == 303
        assert dashboard.headers["location"] == "/admin/account"
        assert account.status_code == 200
        assert "Admins must sign in with a second factor" in account.text
        await _enrol(client, clock)
        assert (await client.get("/admin/users")).status_code == 200


async def make_admin(database: Database, clock: FakeClock) -> User:
    return await make_user(
        database, username="bob", password=ADMIN_PASSWORD, role="admin", now=clock()
    )
