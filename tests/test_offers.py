"""The native games and offers API (``/v1``): the same services as the Offers compat routes."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from promos.offers.tables import offers
from tests.factories.offers import make_game

GAME = "galaxy"


def offer_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Gems pack",
        "product_id": "com.galaxy.gems",
        "contents": {"gems": 5},
        "placement": "store",
        "period": {"every": "1h", "max": 2},
        "frequency": {"every": "", "max": 3},
        "trigger": {"from": 0, "to": 4_000_000_000},
        "filters": {"country": {"eq": "BR"}},
    }
    body.update(overrides)
    return body


def native_error(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code


async def test_put_get_and_list_games(client, auth):
    put = await client.put(
        f"/v1/games/{GAME}", json={"name": "Galaxy", "metadata": {"cacheMaxAge": 5}}, headers=auth
    )
    assert put.status_code == 200
    assert put.json() == {"id": GAME, "name": "Galaxy", "metadata": {"cacheMaxAge": 5}}
    assert (await client.get(f"/v1/games/{GAME}", headers=auth)).json() == put.json()
    listed = (await client.get("/v1/games", headers=auth)).json()
    assert listed == {"items": [put.json()], "has_more": False, "next_cursor": None}


async def test_unknown_game_is_404(client, auth):
    native_error(await client.get("/v1/games/nope", headers=auth), 404, "game_not_found")


async def test_routes_need_a_credential(client):
    native_error(await client.get("/v1/games"), 401)
    native_error(await client.post(f"/v1/games/{GAME}/offers", json=offer_body()), 401)


async def test_create_version_enable_disable_and_list_offers(client, auth, database, clock):
    await make_game(database, now=clock(), game_id=GAME)

    created = await client.post(f"/v1/games/{GAME}/offers", json=offer_body(), headers=auth)
    assert created.status_code == 201
    offer = created.json()
    assert offer["version"] == 1
    assert offer["enabled"] is True
    assert offer["trigger"] == {"from": 0, "to": 4_000_000_000}

    updated = await client.put(
        f"/v1/games/{GAME}/offers/{offer['id']}", json=offer_body(name="Bigger"), headers=auth
    )
    assert updated.json()["version"] == 2
    assert updated.json()["id"] == offer["id"]
    assert updated.json()["key"] != offer["key"]

    disabled = await client.post(f"/v1/games/{GAME}/offers/{offer['id']}/disable", headers=auth)
    assert disabled.json()["enabled"] is False
    enabled = await client.post(f"/v1/games/{GAME}/offers/{offer['id']}/enable", headers=auth)
    assert enabled.json()["enabled"] is True

    page = (await client.get(f"/v1/games/{GAME}/offers", headers=auth)).json()
    assert page["has_more"] is False
    assert [o["name"] for o in page["items"]] == ["Bigger"]
    got = await client.get(f"/v1/games/{GAME}/offers/{offer['id']}", headers=auth)
    assert got.json()["name"] == "Bigger"


async def test_offers_of_an_unknown_game_or_id_are_404(client, auth, database, clock):
    native_error(
        await client.post("/v1/games/nope/offers", json=offer_body(), headers=auth),
        404,
        "game_not_found",
    )
    await make_game(database, now=clock(), game_id=GAME)
    native_error(
        await client.put(f"/v1/games/{GAME}/offers/{uuid4()}", json=offer_body(), headers=auth),
        404,
        "offer_not_found",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"product_id": None},
        {"period": {"every": "soon", "max": 1}},
        {"frequency": {"every": "", "max": 0}},
        {"filters": {"level": {"geq": 10, "lt": 1}}},
        {"contents": "gems"},
        {"unknown_field": 1},
    ],
)
async def test_invalid_offers_are_422_and_not_stored(client, auth, database, clock, overrides):
    await make_game(database, now=clock(), game_id=GAME)
    body = offer_body(**overrides)
    if "product_id" in overrides:
        del body["product_id"]

    native_error(await client.post(f"/v1/games/{GAME}/offers", json=body, headers=auth), 422)
    async with database.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(offers))).scalar_one() == 0


async def test_openapi_documents_the_offers_routes(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/available-offers",
        "/offer-info",
        "/offers/claim",
        "/offers/{offer_id}/impressions",
        "/games/{game_id}",
        "/v1/games/{game_id}/offers",
    ):
        assert path in paths
