"""Sign-in, tokens, HTTP Basic, API keys, roles, users and the admin bootstrap."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from promos.app import bootstrap_admin, create_app
from promos.auth import changes, service
from promos.auth.errors import LastAdmin
from promos.auth.tables import api_keys, tokens, users
from promos.db import Database
from promos.settings import Settings
from promos.tables import metadata
from tests._routes import app_routes, concrete_path
from tests.conftest import FakeClock
from tests.factories.auth import make_api_key, make_user

SALES_PASSWORD = "sales password"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No credential cache: expiry and revocation take effect on the very next request."""
    return settings.model_copy(update={"auth_cache_seconds": 0})


def basic(username: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def sign_in(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await client.post("/v1/auth/tokens", json={"login": login, "password": password})


async def token_of(client: httpx.AsyncClient, login: str, password: str) -> str:
    response = await sign_in(client, login, password)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.get("/v1/auth/me", headers=headers)


@pytest.fixture
async def sales_user(database: Database, clock: FakeClock) -> service.User:
    return await make_user(
        database, username="sally", password=SALES_PASSWORD, role="sales", now=clock()
    )


@pytest.fixture
async def token(client: httpx.AsyncClient, sales_user: service.User) -> str:
    """A sign-in token of the sales user."""
    return await token_of(client, sales_user.username, SALES_PASSWORD)


@pytest.fixture
async def new_key(client: httpx.AsyncClient, admin_auth: dict[str, str]) -> dict[str, Any]:
    """The body of ``POST /v1/api-keys``: the new key, with its secret."""
    response = await client.post("/v1/api-keys", json={"name": "svc"}, headers=admin_auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# --- sign-in and tokens ---------------------------------------------------------------


async def test_sign_in_returns_a_token_its_expiry_and_the_user(client, sales_user, settings, clock):
    response = await sign_in(client, "sally", SALES_PASSWORD)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"token", "expires_at", "user"}
    assert body["token"]
    expires_at = clock() + timedelta(seconds=settings.token_ttl_seconds)
    assert datetime.fromisoformat(body["expires_at"]) == expires_at
    assert body["user"]["username"] == "sally"
    assert body["user"]["role"] == "sales"


async def test_sign_in_never_returns_the_password_or_its_hash(client, sales_user):
    response = await sign_in(client, "sally", SALES_PASSWORD)

    assert SALES_PASSWORD not in response.text
    assert "argon2" not in response.text
    assert "password" not in response.text


async def test_a_wrong_password_and_an_unknown_user_get_the_same_401(client, sales_user):
    wrong_password = await sign_in(client, "sally", "not the password")
    unknown_user = await sign_in(client, "nobody", SALES_PASSWORD)

    assert wrong_password.status_code == 401
    assert unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.json()["error"]["message"]


async def test_a_disabled_user_cannot_sign_in(client, sales_user, admin_auth):
    await client.delete(f"/v1/users/{sales_user.id}", headers=admin_auth)

    response = await sign_in(client, "sally", SALES_PASSWORD)

    assert response.status_code == 401


async def test_sign_in_without_a_password_is_a_422(client, sales_user):
    response = await client.post("/v1/auth/tokens", json={"login": "sally"})

    assert response.status_code == 422
    assert "password" in response.json()["error"]["message"]


async def test_the_token_authenticates_as_bearer(client, token, sales_user):
    response = await me(client, bearer(token))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "user",
        "id": sales_user.id,
        "name": "sally",
        "role": "sales",
    }


async def test_a_token_works_until_it_expires(client, token, settings, clock):
    clock.advance(seconds=settings.token_ttl_seconds - 1)

    response = await me(client, bearer(token))

    assert response.status_code == 200, response.text


async def test_a_token_stops_working_when_it_expires(client, token, settings, clock):
    assert (await me(client, bearer(token))).status_code == 200
    clock.advance(seconds=settings.token_ttl_seconds)

    response = await me(client, bearer(token))

    assert response.status_code == 401


async def test_signing_out_revokes_the_token(client, token):
    assert (await me(client, bearer(token))).status_code == 200

    signed_out = await client.delete("/v1/auth/tokens/current", headers=bearer(token))

    assert signed_out.status_code == 204
    assert (await me(client, bearer(token))).status_code == 401


async def test_signing_out_leaves_the_users_other_tokens_working(client, token, sales_user):
    other = await token_of(client, sales_user.username, SALES_PASSWORD)

    await client.delete("/v1/auth/tokens/current", headers=bearer(token))

    assert (await me(client, bearer(other))).status_code == 200


async def test_an_unknown_bearer_token_is_refused(client, token):
    response = await me(client, bearer(token + "x"))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_an_unknown_authorization_scheme_is_refused(client):
    response = await me(client, {"Authorization": "Digest username=sally"})

    assert response.status_code == 401


# --- HTTP Basic -----------------------------------------------------------------------


async def test_http_basic_with_user_and_password_authenticates(client, sales_user):
    response = await me(client, basic("sally", SALES_PASSWORD))

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "sally"
    assert response.json()["kind"] == "user"


async def test_http_basic_with_a_wrong_password_is_refused(client, sales_user):
    response = await me(client, basic("sally", "not the password"))

    assert response.status_code == 401


async def test_http_basic_that_is_not_base64_is_refused(client, sales_user):
    response = await me(client, {"Authorization": "Basic !!!"})

    assert response.status_code == 401


async def test_a_401_names_the_schemes_it_accepts(client):
    response = await me(client, {})

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert "Basic" in challenge
    assert "Bearer" in challenge


# --- API keys -------------------------------------------------------------------------


async def test_an_admin_creates_an_api_key_and_sees_its_secret(new_key):
    assert new_key["name"] == "svc"
    assert new_key["role"] == "sales"
    assert new_key["revoked"] is False
    assert new_key["key"].startswith(new_key["prefix"])
    assert len(new_key["key"]) > len(new_key["prefix"])


async def test_a_new_api_key_authenticates_as_bearer(client, new_key):
    response = await me(client, bearer(new_key["key"]))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "api_key",
        "id": new_key["id"],
        "name": "svc",
        "role": "sales",
    }


async def test_a_new_api_key_authenticates_in_the_x_api_key_header(client, new_key):
    response = await me(client, {"X-API-Key": new_key["key"]})

    assert response.status_code == 200, response.text
    assert response.json()["kind"] == "api_key"


async def test_a_sign_in_token_in_the_x_api_key_header_is_refused(client, token):
    response = await me(client, {"X-API-Key": token})

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert (await me(client, bearer(token))).status_code == 200  # where a token belongs


async def test_a_sign_in_token_in_the_x_api_key_header_opens_no_compat_route(client, token):
    response = await client.get("/promocodes/get", headers={"X-API-Key": token})

    assert response.status_code == 401, response.text
    assert response.json()["status"] == 401


async def test_the_api_key_listing_shows_the_prefix_and_never_the_secret(
    client, new_key, admin_auth
):
    response = await client.get("/v1/api-keys", headers=admin_auth)

    assert response.status_code == 200, response.text
    keys = response.json()["items"]
    assert [(k["id"], k["prefix"]) for k in keys] == [(new_key["id"], new_key["prefix"])]
    assert new_key["key"] not in response.text
    assert "key" not in keys[0]


async def test_the_secret_of_an_api_key_appears_in_no_listing(client, new_key, admin_auth):
    for path in ("/v1/api-keys", "/v1/users"):
        response = await client.get(path, headers=admin_auth)
        assert response.status_code == 200, response.text
        assert new_key["key"] not in response.text, path


async def test_a_revoked_api_key_stops_working(client, new_key, admin_auth):
    assert (await me(client, bearer(new_key["key"]))).status_code == 200

    revoked = await client.delete(f"/v1/api-keys/{new_key['id']}", headers=admin_auth)

    assert revoked.status_code == 204
    assert (await me(client, bearer(new_key["key"]))).status_code == 401


async def test_a_revoked_api_key_is_listed_as_revoked(client, new_key, admin_auth):
    await client.delete(f"/v1/api-keys/{new_key['id']}", headers=admin_auth)

    response = await client.get("/v1/api-keys", headers=admin_auth)

    assert [k["revoked"] for k in response.json()["items"]] == [True]


async def test_revoking_an_unknown_api_key_is_a_404(client, admin_auth):
    response = await client.delete("/v1/api-keys/4242", headers=admin_auth)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "api_key_not_found"


async def test_an_admin_api_key_may_manage_users(client, database, clock):
    secret = await make_api_key(database, name="ops", role="admin", now=clock())

    response = await client.get("/v1/users", headers=bearer(secret))

    assert response.status_code == 200, response.text


# --- roles ----------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/v1/users", None),
    ("POST", "/v1/users", {"username": "eve", "password": "a long password"}),
    ("DELETE", "/v1/users/1", None),
    ("GET", "/v1/api-keys", None),
    ("POST", "/v1/api-keys", {"name": "eve"}),
    ("DELETE", "/v1/api-keys/1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_a_sales_api_key_is_forbidden_from_admin_routes(client, auth, method, path, body):
    response = await client.request(method, path, json=body, headers=auth)

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "admin_required"


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_a_sales_user_is_forbidden_from_admin_routes(client, sales_user, method, path, body):
    response = await client.request(method, path, json=body, headers=basic("sally", SALES_PASSWORD))

    assert response.status_code == 403, response.text


@pytest.mark.parametrize("path", ["/v1/users", "/v1/api-keys"])
async def test_an_admin_may_list_users_and_api_keys(client, admin_auth, path):
    response = await client.get(path, headers=admin_auth)

    assert response.status_code == 200, response.text


async def test_a_sales_credential_may_use_the_promotion_routes(client, auth):
    response = await client.get("/v1/batches", headers=auth)

    assert response.status_code == 200, response.text


# --- users ----------------------------------------------------------------------------


async def test_an_admin_creates_a_user(client, admin_auth):
    response = await client.post(
        "/v1/users",
        json={"username": "ursula", "password": "a long password", "role": "sales"},
        headers=admin_auth,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["username"], body["role"], body["disabled"]) == ("ursula", "sales", False)
    assert "password" not in response.text


async def test_a_created_user_can_sign_in(client, admin_auth):
    await client.post(
        "/v1/users",
        json={"username": "ursula", "password": "a long password"},
        headers=admin_auth,
    )

    response = await sign_in(client, "ursula", "a long password")

    assert response.status_code == 201, response.text


async def test_creating_a_user_that_exists_is_a_409(client, admin_auth, sales_user):
    response = await client.post(
        "/v1/users",
        json={"username": "sally", "password": "another long password"},
        headers=admin_auth,
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "user_exists"


async def test_a_weak_password_is_a_422(client, admin_auth):
    response = await client.post(
        "/v1/users", json={"username": "ursula", "password": "short"}, headers=admin_auth
    )

    assert response.status_code == 422
    assert "password" in response.json()["error"]["message"]


async def test_a_user_name_with_a_colon_is_a_422(client, admin_auth):
    # A colon cannot travel in HTTP Basic's user:password.
    response = await client.post(
        "/v1/users",
        json={"username": "ur:sula", "password": "a long password"},
        headers=admin_auth,
    )

    assert response.status_code == 422


async def test_an_unknown_role_is_a_422(client, admin_auth):
    response = await client.post(
        "/v1/users",
        json={"username": "ursula", "password": "a long password", "role": "root"},
        headers=admin_auth,
    )

    assert response.status_code == 422


async def test_the_user_listing_shows_no_password_hashes(client, admin_auth, sales_user):
    response = await client.get("/v1/users", headers=admin_auth)

    assert sorted(u["username"] for u in response.json()["items"]) == ["root", "sally"]
    assert "argon2" not in response.text
    assert "password" not in response.text


async def test_disabling_a_user_stops_their_basic_credential(client, admin_auth, sales_user):
    assert (await me(client, basic("sally", SALES_PASSWORD))).status_code == 200

    disabled = await client.delete(f"/v1/users/{sales_user.id}", headers=admin_auth)

    assert disabled.status_code == 204
    assert (await me(client, basic("sally", SALES_PASSWORD))).status_code == 401


async def test_disabling_a_user_stops_their_tokens(client, admin_auth, sales_user, token):
    assert (await me(client, bearer(token))).status_code == 200

    await client.delete(f"/v1/users/{sales_user.id}", headers=admin_auth)

    assert (await me(client, bearer(token))).status_code == 401


async def test_a_disabled_user_is_listed_as_disabled(client, admin_auth, sales_user):
    await client.delete(f"/v1/users/{sales_user.id}", headers=admin_auth)

    response = await client.get("/v1/users", headers=admin_auth)

    assert {u["username"]: u["disabled"] for u in response.json()["items"]} == {
        "root": False,
        "sally": True,
    }


async def test_disabling_an_unknown_user_is_a_404(client, admin_auth):
    response = await client.delete("/v1/users/4242", headers=admin_auth)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"


# --- admins: never none left ---------------------------------------------------------


async def test_an_admin_cannot_disable_their_own_user(client, database, admin_auth):
    root = (await me(client, admin_auth)).json()

    response = await client.delete(f"/v1/users/{root['id']}", headers=admin_auth)

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "cannot_disable_self"
    assert (await me(client, admin_auth)).status_code == 200


async def test_the_last_enabled_admin_cannot_be_disabled(client, database, clock, admin_auth):
    root = (await me(client, admin_auth)).json()
    key = await make_api_key(database, now=clock(), role="admin")

    response = await client.delete(f"/v1/users/{root['id']}", headers=bearer(key))

    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "last_admin"
    assert (await me(client, admin_auth)).status_code == 200


async def test_an_admin_disables_another_admin_while_one_stays_enabled(
    client, database, clock, admin_auth
):
    ann = await make_user(
        database, now=clock(), username="ann", password=SALES_PASSWORD, role="admin"
    )

    response = await client.delete(f"/v1/users/{ann.id}", headers=admin_auth)

    assert response.status_code == 204, response.text
    assert (await me(client, basic("ann", SALES_PASSWORD))).status_code == 401


async def test_a_disabled_admin_does_not_count_as_one_left(client, database, clock, admin_auth):
    root = (await me(client, admin_auth)).json()
    ann = await make_user(
        database, now=clock(), username="ann", password=SALES_PASSWORD, role="admin"
    )
    key = await make_api_key(database, now=clock(), role="admin")
    assert (await client.delete(f"/v1/users/{ann.id}", headers=admin_auth)).status_code == 204

    response = await client.delete(f"/v1/users/{root['id']}", headers=bearer(key))

    assert response.status_code == 409, response.text


async def enabled_admins(database: Database) -> list[str]:
    async with database.begin() as conn:
        found = await conn.execute(
            select(users.c.username).where(users.c.role == "admin", users.c.disabled_at.is_(None))
        )
        return sorted(found.scalars())


@pytest.mark.postgres_only
class TestAdminsDisablingEachOtherAtOnce:
    """Two admins, each disabling the other at the same moment: one of them stays."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        # Cached credentials: both requests are past authentication at once, and race in the
        # database, where the rule is.
        return settings.model_copy(update={"auth_cache_seconds": 300, "db_pool_size": 4})

    async def test_the_second_of_two_concurrent_disables_is_refused(self, database, clock):
        ann = await make_user(database, now=clock(), username="ann", password="p" * 8, role="admin")
        bob = await make_user(database, now=clock(), username="bob", password="p" * 8, role="admin")
        async with database.engine.connect() as first, database.engine.connect() as second:
            await first.begin()
            await changes.disable_user(first, actor=_actor(ann), user_id=bob.id, now=clock())
            racing = asyncio.create_task(_disable(second, actor=bob, user_id=ann.id, now=clock()))
            await asyncio.sleep(0.3)
            assert not racing.done()  # waiting for the first one's locks
            await first.commit()

            with pytest.raises(LastAdmin):
                await racing

        assert await enabled_admins(database) == ["ann"]

    async def test_rounds_of_admins_disabling_each_other_over_http_leave_one_each_time(
        self, client, database, clock
    ):
        survivor = await make_user(
            database, now=clock(), username="admin-0", password="p" * 8, role="admin"
        )
        for round_ in range(1, 11):
            rival = await make_user(
                database, now=clock(), username=f"admin-{round_}", password="p" * 8, role="admin"
            )
            pair = [survivor, rival]
            for user in pair:  # cached from now on
                assert (await me(client, basic(user.username, "p" * 8))).status_code == 200

            answers = await asyncio.gather(
                *(
                    client.delete(f"/v1/users/{other.id}", headers=basic(user.username, "p" * 8))
                    for user, other in (pair, pair[::-1])
                )
            )

            statuses = sorted(a.status_code for a in answers)
            assert statuses[0] == 204, statuses
            assert statuses[1] in {401, 409}, statuses  # refused: as the last admin, or disabled
            [left] = await enabled_admins(database)
            survivor = next(u for u in pair if u.username == left)


def _actor(user: service.User) -> service.Principal:
    return service.Principal("user", user.id, user.username, user.role)


async def _disable(conn: Any, *, actor: service.User, user_id: int, now: datetime) -> None:
    async with conn.begin():
        await changes.disable_user(conn, actor=_actor(actor), user_id=user_id, now=now)


# --- revocation while credentials are cached ------------------------------------------


class TestRevocationWithTheCredentialCache:
    """A revocation made in this process takes effect at once, cache or not (README)."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"auth_cache_seconds": 300})

    async def test_signing_out_revokes_a_cached_token(self, client, token):
        assert (await me(client, bearer(token))).status_code == 200

        await client.delete("/v1/auth/tokens/current", headers=bearer(token))

        assert (await me(client, bearer(token))).status_code == 401

    async def test_revoking_a_cached_api_key_stops_it(self, client, new_key, admin_auth):
        assert (await me(client, bearer(new_key["key"]))).status_code == 200

        await client.delete(f"/v1/api-keys/{new_key['id']}", headers=admin_auth)

        assert (await me(client, bearer(new_key["key"]))).status_code == 401

    async def test_disabling_a_user_stops_their_cached_basic_credential(
        self, client, admin_auth, sales_user
    ):
        assert (await me(client, basic("sally", SALES_PASSWORD))).status_code == 200

        await client.delete(f"/v1/users/{sales_user.id}", headers=admin_auth)

        assert (await me(client, basic("sally", SALES_PASSWORD))).status_code == 401


# --- every route needs a credential, except the public ones ---------------------------

PUBLIC = {
    ("GET", "/"),  # where to go: fixed links to the pages below
    ("GET", "/healthcheck"),
    ("POST", "/v1/auth/tokens"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    # The Promos seed's sign-in and public reads (DESIGN.md), at the root and under /api.
    *(
        (method, prefix + path)
        for prefix in ("", "/api")
        for method, path in (
            ("POST", "/signin"),
            ("GET", "/promocodes/getbycode/{id}"),
            ("GET", "/special/{sku}"),
            ("GET", "/upgrade-program"),
        )
    ),
    # The Offers seed's player routes (DESIGN.md).
    ("GET", "/available-offers"),
    ("GET", "/offer-info"),
    ("PUT", "/offers/claim"),
    ("PUT", "/offers/{offer_id}/impressions"),
}

APP_ROUTES = app_routes(create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")))
# The console's pages take a session, not a credential: without one they send the browser to
# sign-in (tests/console/test_sessions.py checks each of them).
PRIVATE = sorted(route for route in set(APP_ROUTES) - PUBLIC if not route[1].startswith("/admin"))


def test_the_route_list_covers_the_app():
    assert len(PRIVATE) > 10
    assert ("GET", "/v1/users") in PRIVATE
    assert ("POST", "/api/v1/code/redeem") in PRIVATE


@pytest.mark.parametrize(("method", "path"), PRIVATE, ids=[f"{m} {p}" for m, p in PRIVATE])
async def test_every_private_route_needs_a_credential(client, method, path):
    response = await client.request(method, concrete_path(path, APP_ROUTES[method, path]))

    assert response.status_code == 401, response.text


@pytest.mark.parametrize("path", ["/", "/healthcheck", "/openapi.json", "/docs", "/redoc"])
async def test_public_pages_answer_without_a_credential(client, path):
    response = await client.get(path)

    assert response.status_code == 200, response.text


# --- secrets at rest and in logs ------------------------------------------------------


async def _every_stored_value(database: Database) -> list[str]:
    async with database.begin() as conn:
        return [
            str(value)
            for table in metadata.sorted_tables
            for row in await conn.execute(select(table))
            for value in row
        ]


async def _digests(database: Database, table: Any) -> list[str]:
    async with database.begin() as conn:
        return list((await conn.execute(select(table.c.digest))).scalars())


async def test_tokens_are_stored_only_as_sha256_digests(database, token):
    assert not [v for v in await _every_stored_value(database) if token in v]
    assert await _digests(database, tokens) == [hashlib.sha256(token.encode()).hexdigest()]


async def test_api_keys_are_stored_only_as_sha256_digests(database, new_key):
    secret = new_key["key"]

    assert not [v for v in await _every_stored_value(database) if secret in v]
    assert await _digests(database, api_keys) == [hashlib.sha256(secret.encode()).hexdigest()]


async def test_passwords_are_stored_only_as_argon2_hashes(database, sales_user):
    stored = await _every_stored_value(database)

    assert not [v for v in stored if SALES_PASSWORD in v]
    assert [v for v in stored if v.startswith("$argon2")]


async def test_secrets_never_reach_the_logs(client, caplog, sales_user, new_key):
    caplog.set_level(logging.DEBUG)
    token = await token_of(client, "sally", SALES_PASSWORD)
    await me(client, bearer(token))
    await me(client, bearer(new_key["key"]))
    await me(client, basic("sally", SALES_PASSWORD))

    for secret in (SALES_PASSWORD, token, new_key["key"]):
        assert secret not in caplog.text


# --- admin bootstrap ------------------------------------------------------------------

BOOT_PASSWORD = "a long bootstrap password"


def _bootstrapping(database_url: str) -> Settings:
    return Settings(database_url=database_url, admin_user="boss", admin_password=BOOT_PASSWORD)


async def _users_after_startup(settings: Settings, clock: FakeClock) -> list[service.User]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app), app.state.promos.database.begin() as conn:
        return await service.list_users(conn)


async def test_the_admin_is_created_at_startup_on_an_empty_database(database_url, clock):
    users = await _users_after_startup(_bootstrapping(database_url), clock)

    assert [(u.username, u.role) for u in users] == [("boss", "admin")]


async def test_the_bootstrapped_admin_signs_in_with_the_configured_password(database_url, clock):
    app = create_app(_bootstrapping(database_url), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            response = await http.get("/v1/users", headers=basic("boss", BOOT_PASSWORD))

    assert response.status_code == 200, response.text


async def test_the_bootstrap_does_nothing_when_a_user_exists(database_url, clock):
    database = Database(database_url)
    try:
        await make_user(database, username="first", role="sales", now=clock())
    finally:
        await database.dispose()

    users = await _users_after_startup(_bootstrapping(database_url), clock)

    assert [u.username for u in users] == ["first"]


IGNORED = "PROMOS_ADMIN_USER and PROMOS_ADMIN_PASSWORD are ignored"


async def _with_user(database_url: str, clock: FakeClock, **user: Any) -> None:
    database = Database(database_url)
    try:
        await make_user(database, now=clock(), **user)
    finally:
        await database.dispose()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_the_bootstrap_says_it_is_ignored_when_other_users_exist(database_url, clock, caplog):
    await _with_user(database_url, clock, username="first", role="sales")

    await _users_after_startup(_bootstrapping(database_url), clock)

    [warning] = [w for w in _warnings(caplog) if IGNORED in w]
    assert "'boss' cannot sign in as an admin" in warning


async def test_the_bootstrap_says_it_is_ignored_when_the_admin_has_another_password(
    database_url, clock, caplog
):
    await _with_user(database_url, clock, username="boss", password="another one", role="admin")

    await _users_after_startup(_bootstrapping(database_url), clock)

    assert [w for w in _warnings(caplog) if IGNORED in w] != []


async def test_the_bootstrap_says_it_is_ignored_when_its_user_is_not_an_admin(
    database_url, clock, caplog
):
    await _with_user(database_url, clock, username="boss", password=BOOT_PASSWORD, role="sales")

    await _users_after_startup(_bootstrapping(database_url), clock)

    assert [w for w in _warnings(caplog) if IGNORED in w] != []


async def test_the_bootstrap_is_quiet_when_its_admin_exists_with_that_password(
    database_url, clock, caplog
):
    await _users_after_startup(_bootstrapping(database_url), clock)  # creates the admin

    await _users_after_startup(_bootstrapping(database_url), clock)

    assert _warnings(caplog) == []


async def test_an_app_told_the_database_is_prepared_does_not_bootstrap(database_url, clock):
    # `promos serve` bootstraps once before its workers start: they say nothing again.
    app = create_app(_bootstrapping(database_url), clock=clock, prepare=False)
    async with app.router.lifespan_context(app), app.state.promos.database.begin() as conn:
        users = await service.list_users(conn)

    assert users == []


@pytest.mark.postgres_only
async def test_nodes_starting_at_once_make_one_admin_and_all_start(database_url, clock):
    settings = _bootstrapping(database_url)
    databases = [Database(database_url) for _ in range(4)]
    try:
        await asyncio.gather(*(bootstrap_admin(db, settings, clock()) for db in databases))
        async with databases[0].begin() as conn:
            users = await service.list_users(conn)
    finally:
        await asyncio.gather(*(db.dispose() for db in databases))

    assert [(u.username, u.role) for u in users] == [("boss", "admin")]


async def test_the_bootstrap_does_not_log_the_password(database_url, clock, caplog):
    caplog.set_level(logging.DEBUG)

    await _users_after_startup(_bootstrapping(database_url), clock)

    assert "boss" in caplog.text
    assert BOOT_PASSWORD not in caplog.text


async def test_without_bootstrap_settings_no_user_is_created(database_url, clock):
    users = await _users_after_startup(Settings(database_url=database_url), clock)

    assert users == []
