"""Users and API keys in the console: admins only, through the API's services, audited."""

from __future__ import annotations

import re

import pytest

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.auth import service as auth
from promos.db import Database
from tests.console.conftest import csrf_token, submit

CLIENT = "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b"

ADMIN_PAGES = [
    "/admin/users",
    "/admin/users/new",
    "/admin/api-keys",
    "/admin/api-keys/new",
    "/admin/api-keys/1/rotate",
]
ADMIN_POSTS = [
    "/admin/users/new",
    "/admin/users/1/disable",
    "/admin/api-keys/new",
    "/admin/api-keys/1/revoke",
    "/admin/api-keys/1/rotate",
]


async def _entries(database: Database, action: str) -> list[audit.AuditEntry]:
    async with database.begin() as conn:
        page = await audit.list_entries(conn, query=AuditQuery(action=action), limit=10)
    return page.items


def _errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html))


# --- roles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ADMIN_PAGES)
async def test_sales_is_refused_the_admin_pages(as_sales, path):
    response = await as_sales.get(path)

    assert response.status_code == 403
    assert "Not allowed" in response.text


@pytest.mark.parametrize("path", ADMIN_POSTS)
async def test_sales_is_refused_the_admin_forms(as_sales, database, path):
    token = csrf_token((await as_sales.get("/admin")).text)

    response = await as_sales.post(
        path, data={"csrf_token": token, "username": "eve", "password": "x" * 12, "name": "k"}
    )

    assert response.status_code == 403
    async with database.begin() as conn:
        assert [u.username for u in await auth.list_users(conn)] == ["sam"]


async def test_sales_is_not_shown_the_admin_areas(as_sales):
    page = await as_sales.get("/admin")

    for path in ("/admin/users", "/admin/api-keys", "/admin/audit"):
        assert f'href="{path}"' not in page.text
    assert 'href="/admin/promocodes"' in page.text
    assert 'href="/admin/pools"' in page.text  # the areas sales may open


async def test_an_admin_is_shown_them(as_admin):
    page = await as_admin.get("/admin")

    for path in ("/admin/users", "/admin/api-keys", "/admin/audit"):
        assert f'href="{path}"' in page.text


# --- users -----------------------------------------------------------------------------------


async def test_the_users_page_lists_every_user_with_their_state(as_admin, sales):
    page = await as_admin.get("/admin/users")

    assert page.status_code == 200
    assert "<strong>ada</strong>" in page.text
    assert "<strong>sam</strong>" in page.text
    assert "(you)" in page.text


async def test_an_admin_creates_a_user_audited_as_themself(as_admin, admin, database):
    response = await submit(
        as_admin,
        "/admin/users/new",
        "/admin/users/new",
        {"username": "sally", "password": "a long password", "role": "sales"},
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/users"
    listing = await as_admin.get("/admin/users")
    assert "User sally created." in listing.text
    assert "User sally created." not in (await as_admin.get("/admin/users")).text  # once
    async with database.begin() as conn:
        created = await auth.verify_password(conn, "sally", "a long password")
    assert created.role == "sales"
    [entry] = await _entries(database, "user.create")
    assert (entry.actor_kind, entry.actor_id, entry.actor_name) == ("user", admin.id, "ada")
    assert entry.target_id == str(created.id)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"username": "", "password": ""}, {"username": "Required.", "password": "Required."}),
        (
            {"username": "two words", "password": "a long password"},
            {"username": "No spaces or colons (HTTP Basic needs that)."},
        ),
        (
            {"username": "x" * 256, "password": "a long password"},
            {"username": "At most 255 characters."},
        ),
        ({"username": "sally", "password": "short"}, {"password": "At least 8 characters."}),
        (
            {"username": "sally", "password": "a long password", "role": "owner"},
            {"role": "Choose one of admin or sales."},
        ),
        ({"username": "sam", "password": "a long password"}, {"username": "That name is taken."}),
    ],
    ids=["empty", "spaces", "too-long", "short-password", "unknown-role", "taken"],
)
async def test_bad_input_comes_back_with_each_error_by_its_field(
    as_admin, sales, database, fields, errors
):
    response = await submit(as_admin, "/admin/users/new", "/admin/users/new", fields)

    assert response.status_code == 422
    assert _errors(response.text) == errors
    assert fields["password"] not in response.text or not fields["password"]
    async with database.begin() as conn:
        assert len(await auth.list_users(conn)) == 2  # ada and sam: nothing half-made
    assert await _entries(database, "user.create") == []


async def test_the_user_name_entered_is_kept(as_admin):
    response = await submit(
        as_admin, "/admin/users/new", "/admin/users/new", {"username": "two words", "password": ""}
    )

    assert 'value="two words"' in response.text


async def test_an_admin_disables_a_user_who_is_signed_out_at_once(
    as_admin, as_sales, sales, database
):
    response = await submit(as_admin, "/admin/users", f"/admin/users/{sales.id}/disable")

    assert response.status_code == 303
    assert "User sam disabled." in (await as_admin.get("/admin/users")).text
    assert (await as_sales.get("/admin")).status_code == 303
    [entry] = await _entries(database, "user.disable")
    assert entry.actor_name == "ada"
    assert entry.after is not None
    assert entry.after["disabled"] is True


async def test_an_admin_cannot_disable_their_own_user_in_the_console(as_admin, admin):
    response = await submit(as_admin, "/admin/users", f"/admin/users/{admin.id}/disable")

    assert response.status_code == 403
    assert "cannot disable your own user" in response.text
    assert (await as_admin.get("/admin")).status_code == 200


async def test_disabling_an_unknown_user_is_a_404_page(as_admin):
    response = await submit(as_admin, "/admin/users", "/admin/users/999/disable")

    assert response.status_code == 404
    assert "User 999 does not exist." in response.text


# --- API keys ----------------------------------------------------------------------------------


async def _create_key(client, name: str = "checkout", role: str = "sales"):
    return await submit(
        client, "/admin/api-keys/new", "/admin/api-keys/new", {"name": name, "role": role}
    )


def _secret(html: str) -> str:
    found = re.search(r'<code id="secret">(pk_[^<]+)</code>', html)
    assert found is not None
    return found.group(1)


async def test_a_new_key_shows_its_secret_once(as_admin, client):
    created = await _create_key(as_admin)

    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    secret = _secret(created.text)
    me = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["name"] == "checkout"
    for page in ("/admin/api-keys", "/admin/audit", "/admin"):
        assert secret not in (await as_admin.get(page)).text, page
    assert secret[:10] in (await as_admin.get("/admin/api-keys")).text


async def test_a_new_key_is_audited_without_its_secret(as_admin, admin, database):
    secret = _secret((await _create_key(as_admin, role="admin")).text)

    [entry] = await _entries(database, "api_key.create")

    assert entry.actor_name == "ada"
    assert entry.after is not None
    assert entry.after["role"] == "admin"
    assert secret not in str(entry.after)


async def test_a_key_without_a_name_is_not_made(as_admin, database):
    response = await _create_key(as_admin, name="")

    assert response.status_code == 422
    assert _errors(response.text) == {"name": "Required."}
    assert await _entries(database, "api_key.create") == []


async def test_a_revoked_key_stops_working_at_once(as_admin, client, database):
    secret = _secret((await _create_key(as_admin)).text)
    auth_header = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/auth/me", headers=auth_header)).status_code == 200

    response = await submit(as_admin, "/admin/api-keys", "/admin/api-keys/1/revoke")

    assert response.status_code == 303
    listing = (await as_admin.get("/admin/api-keys")).text
    assert "API key checkout revoked." in listing
    assert "Revoked" in listing
    assert (await client.get("/v1/auth/me", headers=auth_header)).status_code == 401
    [entry] = await _entries(database, "api_key.revoke")
    assert entry.actor_name == "ada"


async def test_the_keys_page_is_paged_by_key(as_admin, database, clock):
    async with database.begin() as conn:
        for n in range(55):
            await auth.create_api_key(conn, name=f"key {n:02}", role="sales", now=clock())

    first = await as_admin.get("/admin/api-keys")
    following = re.search(r'href="(/admin/api-keys\?after=[^"]+)" rel="next"', first.text)
    assert following is not None
    second = await as_admin.get(following.group(1).replace("&amp;", "&"))

    assert "key 49" in first.text
    assert "key 50" not in first.text
    assert "key 50" in second.text
    assert "key 54" in second.text
    assert 'rel="next"' not in second.text
    assert 'href="/admin/api-keys">First page' in second.text


async def test_a_new_key_with_scopes_holds_those_only(as_admin, client):
    created = await submit(
        as_admin,
        "/admin/api-keys/new",
        "/admin/api-keys/new",
        {"name": "checkout", "role": "sales", "scopes": "promocodes:use\n\npools:use:" + CLIENT},
    )

    assert created.status_code == 201
    headers = {"Authorization": f"Bearer {_secret(created.text)}"}
    assert (await client.get("/v1/promocodes", headers=headers)).status_code == 403
    listing = (await as_admin.get("/admin/api-keys")).text
    assert "<code>promocodes:use</code>" in listing
    assert f"<code>pools:use:{CLIENT}</code>" in listing


async def test_a_key_with_a_wrong_scope_is_not_made_and_the_form_says_why(as_admin, database):
    response = await submit(
        as_admin,
        "/admin/api-keys/new",
        "/admin/api-keys/new",
        {"name": "checkout", "role": "sales", "scopes": "people:manage"},
    )

    assert response.status_code == 422
    assert _errors(response.text) == {
        "scopes": "only an admin key may hold the people, webhooks and audit scopes"
    }
    assert "people:manage" in response.text  # the form keeps what was typed
    assert await _entries(database, "api_key.create") == []


async def test_a_rotated_key_shows_its_new_secret_once_and_the_old_one_works_for_the_grace(
    as_admin, client, clock, database, state
):
    old = _secret((await _create_key(as_admin)).text)
    page = await as_admin.get("/admin/api-keys/1/rotate")
    assert "One more day" in page.text

    rotated = await submit(
        as_admin, "/admin/api-keys/1/rotate", "/admin/api-keys/1/rotate", {"grace_seconds": "3600"}
    )

    assert rotated.status_code == 201
    assert "API key rotated" in rotated.text
    new = _secret(rotated.text)
    for secret in (old, new):
        me = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200
    assert "rotated" in (await as_admin.get("/admin/api-keys")).text
    clock.advance(seconds=3601)
    state.authenticator.forget_all()  # as another process would, its cache expired
    gone = await client.get("/v1/auth/me", headers={"Authorization": f"Bearer {old}"})
    assert gone.status_code == 401
    [entry] = await _entries(database, "api_key.rotate")
    assert entry.actor_name == "ada"
    assert old not in str(entry.after)
    assert new not in str(entry.after)


async def test_a_key_expiring_on_a_past_day_is_not_made(as_admin, database):
    response = await submit(
        as_admin,
        "/admin/api-keys/new",
        "/admin/api-keys/new",
        {"name": "checkout", "role": "sales", "expires_on": "2020-01-01"},
    )

    assert response.status_code == 422
    assert _errors(response.text) == {"expires_on": "A day after today."}
    assert await _entries(database, "api_key.create") == []


async def test_a_key_expiring_on_a_day_works_until_it_starts(as_admin, client, clock, state):
    created = await submit(
        as_admin,
        "/admin/api-keys/new",
        "/admin/api-keys/new",
        {"name": "checkout", "role": "sales", "expires_on": "2026-03-03"},
    )
    headers = {"Authorization": f"Bearer {_secret(created.text)}"}
    assert (await client.get("/v1/auth/me", headers=headers)).status_code == 200
    assert "2026-03-03 00:00:00 UTC" in (await as_admin.get("/admin/api-keys")).text

    clock.advance(days=2)
    state.authenticator.forget_all()  # as another process would, its cache expired

    assert (await client.get("/v1/auth/me", headers=headers)).status_code == 401
