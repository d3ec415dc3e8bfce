"""Changing one's own password (``PUT /v1/auth/password``) and an admin's reset of another
user's (``PUT /v1/users/{id}/password``): the tokens each revokes, the credential cache, the
policy, the audit log."""

from __future__ import annotations

import base64

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from promos.audit.tables import audit_log
from promos.auth import service
from promos.db import Database
from promos.settings import Settings
from tests.conftest import ADMIN_PASSWORD, FakeClock
from tests.factories.auth import make_api_key, make_user

PASSWORD = "sales password"
NEW_PASSWORD = "a brand new password"
CHANGE = "/v1/auth/password"


def basic(username: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def change(current: str, new: str) -> dict[str, str]:
    return {"current_password": current, "new_password": new}


async def token_of(client: httpx.AsyncClient, login: str, password: str) -> str:
    response = await client.post("/v1/auth/tokens", json={"login": login, "password": password})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


async def status_of_me(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return (await client.get("/v1/auth/me", headers=headers)).status_code


@pytest.fixture
async def sally(database: Database, clock: FakeClock) -> service.User:
    return await make_user(database, username="sally", password=PASSWORD, now=clock())


@pytest.fixture
async def token(client: httpx.AsyncClient, sally: service.User) -> str:
    return await token_of(client, sally.username, PASSWORD)


def reset_path(user: service.User) -> str:
    return f"/v1/users/{user.id}/password"


# --- one's own password ------------------------------------------------------------------------


async def test_a_user_changes_their_own_password(client, token):
    response = await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=bearer(token))

    assert response.status_code == 204, response.text
    assert await status_of_me(client, basic("sally", NEW_PASSWORD)) == 200


async def test_the_old_password_stops_working_at_once_though_it_was_cached(client, sally):
    # The default settings cache a verified credential: the change must drop it here at once.
    assert await status_of_me(client, basic("sally", PASSWORD)) == 200

    await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=basic("sally", PASSWORD))

    assert await status_of_me(client, basic("sally", PASSWORD)) == 401


async def test_the_old_password_no_longer_signs_in(client, token):
    await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=bearer(token))

    response = await client.post("/v1/auth/tokens", json={"login": "sally", "password": PASSWORD})

    assert response.status_code == 401


async def test_the_token_the_change_was_made_with_keeps_working(client, token):
    await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=bearer(token))

    assert await status_of_me(client, bearer(token)) == 200


async def test_a_change_revokes_the_users_other_tokens_though_they_were_cached(client, token):
    other = await token_of(client, "sally", PASSWORD)
    assert await status_of_me(client, bearer(other)) == 200

    await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=bearer(token))

    assert await status_of_me(client, bearer(other)) == 401


async def test_a_change_made_over_basic_revokes_every_token(client, token):
    await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=basic("sally", PASSWORD))

    assert await status_of_me(client, bearer(token)) == 401


async def test_a_change_leaves_other_users_tokens_alone(client, token, admin_auth):
    root = await token_of(client, "root", ADMIN_PASSWORD)

    await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=bearer(token))

    assert await status_of_me(client, bearer(root)) == 200


async def test_a_wrong_current_password_is_a_403_and_changes_nothing(client, token):
    response = await client.put(
        CHANGE, json=change("not my password", NEW_PASSWORD), headers=bearer(token)
    )

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "wrong_password"
    assert await status_of_me(client, basic("sally", PASSWORD)) == 200
    assert await status_of_me(client, basic("sally", NEW_PASSWORD)) == 401


async def test_a_new_password_shorter_than_the_minimum_is_a_422(client, token):
    short = "x" * (service.MIN_PASSWORD_LENGTH - 1)

    response = await client.put(CHANGE, json=change(PASSWORD, short), headers=bearer(token))

    assert response.status_code == 422, response.text
    assert str(service.MIN_PASSWORD_LENGTH) in response.text
    assert await status_of_me(client, basic("sally", PASSWORD)) == 200


async def test_an_api_key_has_no_password_to_change(client, auth):
    response = await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=auth)

    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "no_password"


class TestTheOffersBasicPair:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={
                "offers_basic_auth_username": "offers",
                "offers_basic_auth_password": SecretStr("offers password"),
            }
        )

    async def test_it_opens_no_password_change_its_password_is_set_in_the_settings(self, client):
        response = await client.put(
            CHANGE,
            json=change("offers password", NEW_PASSWORD),
            headers=basic("offers", "offers password"),
        )

        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "credential_not_for_route"


async def test_changing_a_password_needs_a_credential(client, sally):
    response = await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD))

    assert response.status_code == 401


async def test_a_change_is_audited_without_either_password(client, token, database):
    await client.put(CHANGE, json=change(PASSWORD, NEW_PASSWORD), headers=bearer(token))

    async with database.begin() as conn:
        [row] = (await conn.execute(select(audit_log))).all()
    assert (row.action, row.actor_name, row.target_type) == (
        "user.password_change",
        "sally",
        "user",
    )
    assert row.after == {"username": "sally", "tokens_revoked": 0}
    assert PASSWORD not in repr(tuple(row))
    assert NEW_PASSWORD not in repr(tuple(row))


class TestWrongCurrentPasswordsAreRateLimited:
    """A wrong current password is a failed sign-in made with a token: it counts as one."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"rate_limit_signin_per_login": 2})

    async def test_the_third_wrong_current_password_is_refused_unchecked(self, client, token):
        wrong = change("guess one", NEW_PASSWORD)
        statuses = [
            (await client.put(CHANGE, json=wrong, headers=bearer(token))).status_code
            for _ in range(3)
        ]

        assert statuses == [403, 403, 429]


# --- an admin's reset --------------------------------------------------------------------------


async def test_an_admin_resets_a_users_password(client, sally, admin_auth):
    response = await client.put(
        reset_path(sally), json={"password": NEW_PASSWORD}, headers=admin_auth
    )

    assert response.status_code == 204, response.text
    assert await status_of_me(client, basic("sally", NEW_PASSWORD)) == 200
    assert await status_of_me(client, basic("sally", PASSWORD)) == 401


async def test_a_reset_revokes_every_token_of_the_user_though_cached(
    client, sally, token, admin_auth
):
    assert await status_of_me(client, bearer(token)) == 200

    await client.put(reset_path(sally), json={"password": NEW_PASSWORD}, headers=admin_auth)

    assert await status_of_me(client, bearer(token)) == 401


async def test_a_reset_of_a_short_password_is_a_422(client, sally, admin_auth):
    response = await client.put(reset_path(sally), json={"password": "short"}, headers=admin_auth)

    assert response.status_code == 422, response.text
    assert await status_of_me(client, basic("sally", PASSWORD)) == 200


async def test_resetting_an_unknown_users_password_is_a_404(client, admin_auth):
    response = await client.put(
        "/v1/users/4242/password", json={"password": NEW_PASSWORD}, headers=admin_auth
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "user_not_found"


async def test_a_sales_user_may_not_reset_a_password(client, sally, admin_auth):
    response = await client.put(
        "/v1/users/1/password", json={"password": NEW_PASSWORD}, headers=basic("sally", PASSWORD)
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"


async def test_a_sales_api_key_may_not_reset_a_password(client, sally, database, clock):
    secret = await make_api_key(database, now=clock())

    response = await client.put(
        reset_path(sally), json={"password": NEW_PASSWORD}, headers=bearer(secret)
    )

    assert response.status_code == 403


async def test_a_reset_of_a_disabled_user_leaves_them_disabled(client, sally, admin_auth):
    await client.delete(f"/v1/users/{sally.id}", headers=admin_auth)

    await client.put(reset_path(sally), json={"password": NEW_PASSWORD}, headers=admin_auth)

    assert await status_of_me(client, basic("sally", NEW_PASSWORD)) == 401


async def test_a_reset_is_audited_with_the_revoked_tokens_and_no_password(
    client, sally, token, admin_auth, database
):
    await client.put(reset_path(sally), json={"password": NEW_PASSWORD}, headers=admin_auth)

    async with database.begin() as conn:
        [row] = (await conn.execute(select(audit_log))).all()
    assert (row.action, row.actor_name, row.target_id) == (
        "user.password_reset",
        "root",
        str(sally.id),
    )
    assert row.after == {"username": "sally", "tokens_revoked": 1}
    assert NEW_PASSWORD not in repr(tuple(row))
