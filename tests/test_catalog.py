"""Specials and upgrade programs through the native API: CRUD and "active now"."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from promos.catalog.tables import specials, upgrade_programs
from tests.factories.catalog import make_special, make_upgrade_program

SPECIAL = {"sku": "SKU12345", "title": "Summer special", "price": "9.99"}
PROGRAM = {
    "from_sku": "SKU12345",
    "to_sku": "SKU67890",
    "title": "Go pro",
    "discount_percentage": 15,
}


async def rows(database, table) -> int:
    async with database.begin() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_a_special_is_created_read_updated_and_deleted(client, auth):
    created = await client.post("/v1/specials", json=SPECIAL, headers=auth)
    assert created.status_code == 201, created.text
    special = created.json()
    assert special["price"] == "9.99"

    url = f"/v1/specials/{special['id']}"
    assert (await client.get(url, headers=auth)).json() == special
    updated = await client.put(
        url, json={**SPECIAL, "price": None, "discount_percentage": 30}, headers=auth
    )
    assert updated.status_code == 200, updated.text
    assert Decimal(updated.json()["discount_percentage"]) == 30
    assert updated.json()["price"] is None
    assert [s["id"] for s in (await client.get("/v1/specials", headers=auth)).json()["items"]] == [
        special["id"]
    ]
    assert (await client.delete(url, headers=auth)).status_code == 204
    assert (await client.get(url, headers=auth)).status_code == 404


async def test_an_upgrade_program_is_created_read_updated_and_deleted(client, auth):
    created = await client.post("/v1/upgrade-programs", json=PROGRAM, headers=auth)
    assert created.status_code == 201, created.text
    url = f"/v1/upgrade-programs/{created.json()['id']}"
    updated = await client.put(url, json={**PROGRAM, "title": "Go max"}, headers=auth)
    assert updated.json()["title"] == "Go max"
    assert (await client.delete(url, headers=auth)).status_code == 204
    assert (await client.get(url, headers=auth)).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {**SPECIAL, "discount_amount": 5},
        {"sku": "SKU1", "title": "nothing off"},
        {**SPECIAL, "price": -1},
        {**SPECIAL, "price": "abc"},
        {**SPECIAL, "starts_at": "2026-03-02T00:00:00Z", "ends_at": "2026-03-01T00:00:00Z"},
        {**SPECIAL, "starts_at": "2026-03-02T00:00:00"},
        {**SPECIAL, "sku": ""},
        {**SPECIAL, "colour": "red"},
    ],
)
async def test_bad_specials_are_refused_and_create_nothing(client, database, auth, body):
    response = await client.post("/v1/specials", json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert await rows(database, specials) == 0


@pytest.mark.parametrize(
    "body",
    [
        {**PROGRAM, "discount_amount": 5},
        {**PROGRAM, "discount_percentage": None},
        {**PROGRAM, "to_sku": "SKU12345"},
        {**PROGRAM, "discount_percentage": 150},
    ],
)
async def test_bad_upgrade_programs_are_refused(client, database, auth, body):
    response = await client.post("/v1/upgrade-programs", json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert await rows(database, upgrade_programs) == 0


async def test_the_active_special_is_the_newest_whose_window_holds_now(
    client, database, clock, auth
):
    now = clock()
    await make_special(database, now=now, ends_at=now - timedelta(days=1), title="gone")
    await make_special(database, now=now, starts_at=now - timedelta(days=1), title="on")
    await make_special(database, now=now, starts_at=now + timedelta(days=1), title="coming")

    response = await client.get("/v1/specials/active/SKU12345", headers=auth)

    assert response.json()["title"] == "on"
    clock.advance(days=2)
    assert (await client.get("/v1/specials/active/SKU12345", headers=auth)).json()[
        "title"
    ] == "coming"


async def test_no_active_special_is_404(client, database, clock, auth):
    await make_special(database, now=clock(), ends_at=clock() - timedelta(seconds=1))
    response = await client.get("/v1/specials/active/SKU12345", headers=auth)
    assert response.status_code == 404


async def test_active_upgrade_programs_leave_out_ended_ones(client, database, clock, auth):
    now = clock()
    on = await make_upgrade_program(database, now=now)
    await make_upgrade_program(database, now=now, ends_at=now)
    response = await client.get("/v1/upgrade-programs/active", headers=auth)
    assert [p["id"] for p in response.json()["items"]] == [on.id]


async def test_catalog_routes_need_a_credential(client):
    assert (await client.get("/v1/specials")).status_code == 401
    assert (await client.post("/v1/upgrade-programs", json=PROGRAM)).status_code == 401
