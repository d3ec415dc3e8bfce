"""The discount generator API (seed 002), request by request from its README."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func, select, text

from promos.brands import service as brands
from promos.codes import service as codes_service
from promos.codes.tables import codes
from promos.compat.discounts import redact

GENERATE = "/discounts/api/v1.0/generate"
# The seed's example user and secret.
USER, SECRET = "2341", "jhjdvbfehfbu468hGFVYUGHBIUIUYRD"


def get_code(user: str = USER, secret: str = SECRET, brand: int | str = 2) -> str:
    return f"/discounts/api/v1.0/get_code/{user}/{secret}/{brand}"


@pytest.fixture
async def brand_user(database, clock) -> str:
    async with database.begin() as conn:
        await brands.create_brand_user(conn, user_id=USER, secret=SECRET, now=clock())
    return USER


async def codes_of(database, brand_id: int) -> int:
    async with database.begin() as conn:
        return (
            await conn.execute(
                select(func.count())
                .select_from(codes)
                .where(codes.c.client_id == brands.brand_client(brand_id))
            )
        ).scalar_one()


async def test_generate_of_the_seed_example_makes_the_codes(client, database, auth):
    response = await client.post(
        GENERATE, json={"brand_id": 1, "number_of_codes": 100}, headers=auth
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "code": "201",
        "data": "",
        "message": "System generated discount codes successfully",
        "status": "success",
    }
    assert await codes_of(database, 1) == 100


async def test_generate_twice_adds_to_the_brands_one_batch(client, database, auth):
    for _ in range(2):
        await client.post(GENERATE, json={"brand_id": 1, "number_of_codes": 10}, headers=auth)
    async with database.begin() as conn:
        batches = await codes_service.list_batches(conn, client_id=brands.brand_client(1))
    assert len(batches) == 1
    assert await codes_of(database, 1) == 20


@pytest.mark.parametrize(
    "body",
    [
        {"brand_id": "one", "number_of_codes": 10},
        {"brand_id": 1, "number_of_codes": 0},
        {"brand_id": 1, "number_of_codes": "10"},
        {"brand_id": 1},
    ],
)
async def test_bad_generates_are_refused_and_create_nothing(client, database, auth, body):
    response = await client.post(GENERATE, json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["status"] == "error"
    assert await codes_of(database, 1) == 0


async def test_generate_needs_a_credential(client, database):
    response = await client.post(GENERATE, json={"brand_id": 1, "number_of_codes": 10})
    assert response.status_code == 401
    assert response.json()["status"] == "error"


async def test_get_code_of_the_seed_example_hands_out_a_code(client, auth, brand_user):
    await client.post(GENERATE, json={"brand_id": 2, "number_of_codes": 5}, headers=auth)

    response = await client.get(get_code())

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"code", "data", "message", "status"}
    assert (body["code"], body["message"], body["status"]) == ("201", "", "success")
    assert len(body["data"]) == 8


async def test_the_same_user_gets_the_same_code_again(client, auth, brand_user):
    await client.post(GENERATE, json={"brand_id": 2, "number_of_codes": 5}, headers=auth)
    first = (await client.get(get_code())).json()["data"]
    again = (await client.get(get_code())).json()["data"]
    assert first == again


async def test_other_users_get_other_codes(client, database, clock, auth, brand_user):
    async with database.begin() as conn:
        await brands.create_brand_user(conn, user_id="7", secret="another-secret-0123", now=clock())
    await client.post(GENERATE, json={"brand_id": 2, "number_of_codes": 5}, headers=auth)
    mine = (await client.get(get_code())).json()["data"]
    theirs = (await client.get(get_code("7", "another-secret-0123"))).json()["data"]
    assert mine != theirs


async def test_a_user_gets_one_code_of_each_brand(client, auth, brand_user):
    for brand in (2, 3):
        await client.post(GENERATE, json={"brand_id": brand, "number_of_codes": 5}, headers=auth)
    assert (await client.get(get_code(brand=2))).json()["data"] != (
        await client.get(get_code(brand=3))
    ).json()["data"]


@pytest.mark.parametrize(("user", "secret"), [(USER, "wrong-secret-0123456"), ("999", SECRET)])
async def test_a_wrong_user_or_secret_is_401(client, auth, brand_user, user, secret):
    await client.post(GENERATE, json={"brand_id": 2, "number_of_codes": 5}, headers=auth)
    response = await client.get(get_code(user, secret))
    assert response.status_code == 401
    assert response.json()["message"] == "unknown user or wrong secret"


async def test_a_brand_without_codes_is_404(client, brand_user):
    response = await client.get(get_code(brand=9))
    assert response.status_code == 404
    assert response.json()["status"] == "error"


async def test_a_brand_without_codes_left_is_409(client, database, clock, auth, brand_user):
    await client.post(GENERATE, json={"brand_id": 2, "number_of_codes": 1}, headers=auth)
    async with database.begin() as conn:
        await brands.create_brand_user(
            conn, user_id="8", secret="yet-another-secret-1", now=clock()
        )
    assert (await client.get(get_code())).status_code == 200
    assert (await client.get(get_code("8", "yet-another-secret-1"))).status_code == 409


async def test_a_non_numeric_brand_is_422(client, brand_user):
    assert (await client.get(get_code(brand="two"))).status_code == 422


def test_redact_hides_the_secret_of_a_get_code_path():
    assert redact(get_code()) == "/discounts/api/v1.0/get_code/2341/***/2"
    assert redact("/discounts/api/v1.0/generate") == "/discounts/api/v1.0/generate"


async def test_the_secret_never_reaches_the_server_log(client, database, auth, brand_user, caplog):
    await client.post(GENERATE, json={"brand_id": 2, "number_of_codes": 5}, headers=auth)
    async with database.begin() as conn:
        await conn.execute(text("ALTER TABLE brand_users RENAME TO brand_users_away"))
    try:
        with caplog.at_level(logging.DEBUG):
            response = await client.get(get_code())
    finally:
        async with database.begin() as conn:
            await conn.execute(text("ALTER TABLE brand_users_away RENAME TO brand_users"))

    assert response.status_code == 500
    assert response.json()["status"] == "error"
    # The test's own HTTP client logs the URL it asked for; the server must not.
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    # The error is logged under the route's template, never the path asked for.
    assert any("get_code/{user_id}/{user_secret}/{brand_id}" in r.getMessage() for r in server)
    assert not any(SECRET in r.getMessage() or SECRET in (r.exc_text or "") for r in server)


# brand users


async def test_an_admin_creates_a_brand_user_with_a_secret_shown_once(client, admin_auth):
    response = await client.post("/v1/brand-users", json={"user_id": "42"}, headers=admin_auth)
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    assert len(secret) >= 16
    again = await client.post("/v1/brand-users", json={"user_id": "42"}, headers=admin_auth)
    assert again.status_code == 409
    assert (await client.delete("/v1/brand-users/42", headers=admin_auth)).status_code == 204


async def test_only_an_admin_creates_brand_users(client, auth):
    response = await client.post("/v1/brand-users", json={"user_id": "42"}, headers=auth)
    assert response.status_code == 403


async def test_a_short_carried_over_secret_is_refused(client, admin_auth):
    response = await client.post(
        "/v1/brand-users", json={"user_id": "42", "secret": "short"}, headers=admin_auth
    )
    assert response.status_code == 422


@pytest.mark.postgres_only
async def test_concurrent_asks_of_one_user_get_one_code(client, auth, brand_user):
    await client.post(GENERATE, json={"brand_id": 2, "number_of_codes": 50}, headers=auth)
    responses = await asyncio.gather(*(client.get(get_code()) for _ in range(20)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["data"] for r in responses}) == 1


@pytest.mark.postgres_only
async def test_concurrent_first_generations_of_a_brand_make_one_batch(client, database, auth):
    await asyncio.gather(
        *(
            client.post(GENERATE, json={"brand_id": 5, "number_of_codes": 10}, headers=auth)
            for _ in range(5)
        )
    )
    async with database.begin() as conn:
        batches = await codes_service.list_batches(conn, client_id=brands.brand_client(5))
    assert len(batches) == 1
    assert await codes_of(database, 5) == 50
