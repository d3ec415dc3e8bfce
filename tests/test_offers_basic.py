"""The Offers seed's own Basic credential (``OFFERS_BASICAUTH_*``) opens the Offers
management routes, and no other route of the app."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from promos.codes.tables import codes
from promos.settings import Settings
from tests._routes import concrete_path
from tests.test_auth import APP_ROUTES, PRIVATE, basic

OFFERS_USER, OFFERS_PASSWORD = "offers-admin", "offers seed password"
# The routes the Offers seed documents as "Requires basic auth" (seed 004, 3.2 and 3.3).
OFFERS_MANAGEMENT = {
    ("PUT", "/games/{game_id}"),
    ("GET", "/games"),
    ("POST", "/offers"),
    ("PUT", "/offers/{offer_id}"),
    ("PUT", "/offers/{offer_id}/enable"),
    ("PUT", "/offers/{offer_id}/disable"),
    ("GET", "/offers"),
}
NOT_OFFERS_MANAGEMENT = sorted(set(PRIVATE) - OFFERS_MANAGEMENT)
# The credential is refused before any database is asked: SQLite alone shows it.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "auth_cache_seconds": 0,
            "offers_basic_auth_username": OFFERS_USER,
            "offers_basic_auth_password": SecretStr(OFFERS_PASSWORD),
        }
    )


def _shape(body: Any) -> Any:
    """An error body's keys, nested: what two errors of one API have in common."""
    return {k: _shape(v) for k, v in body.items()} if isinstance(body, dict) else None


def test_the_offers_management_routes_are_all_private():
    assert set(PRIVATE) >= OFFERS_MANAGEMENT


@ON_SQLITE
@pytest.mark.parametrize(
    ("method", "path"), NOT_OFFERS_MANAGEMENT, ids=[f"{m} {p}" for m, p in NOT_OFFERS_MANAGEMENT]
)
async def test_the_offers_basic_credential_is_refused_outside_the_offers_management_routes(
    client, method, path
):
    url = concrete_path(path, APP_ROUTES[method, path])

    response = await client.request(method, url, headers=basic(OFFERS_USER, OFFERS_PASSWORD))

    assert response.status_code == 401, response.text
    # In the shape of the route's own API: the shape it answers without a credential.
    anonymous = await client.request(method, url)
    assert _shape(response.json()) == _shape(anonymous.json())


@ON_SQLITE
@pytest.mark.parametrize(("method", "path"), sorted(OFFERS_MANAGEMENT))
async def test_the_offers_basic_credential_opens_each_offers_management_route(client, method, path):
    url = concrete_path(path, APP_ROUTES[method, path])

    response = await client.request(
        method,
        url,
        params={"game-id": "galaxy"},
        json={"name": "Galaxy"},
        headers=basic(OFFERS_USER, OFFERS_PASSWORD),
    )

    # Let in: what follows is the route's own answer (the game, or the offer is unknown).
    assert response.status_code not in (401, 403), response.text


async def test_the_offers_basic_credential_cannot_upload_codes(client, database):
    response = await client.post(
        "/api/v1/codes/upload",
        files={"file": ("codes.csv", f"client_id,code\n{UUID(int=1)},ABC\n", "text/csv")},
        data={"batch_name": "spring"},
        headers=basic(OFFERS_USER, OFFERS_PASSWORD),
    )

    assert response.status_code == 401, response.text
    async with database.begin() as conn:
        assert (await conn.execute(select(codes.c.code))).first() is None
