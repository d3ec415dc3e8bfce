"""The Promos API (seed 001), request by request from its document.

Prefix-less paths of the seed are served at the root and under /api: the promo code tests run
at both. Errors are the seed's {"error": ..., "status": ...}.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from promos.catalog.tables import specials
from promos.promocodes import service
from promos.promocodes.tables import promocodes
from tests.conftest import ADMIN_PASSWORD
from tests.factories.auth import make_user
from tests.factories.catalog import make_special, make_upgrade_program
from tests.factories.promocodes import make_promocode

# The seed's own example of promocodes/set.
SEED_SET = {
    "discount_percentage": 20,
    "discount_amount": 0,
    "usage_count": 4,
    "charset": "123456789QWERTYUPASDFGHJKLZXCVBNM",
    "count": 3,
    "expires_in": "2026-12-31",
    "pattern": "############",
    "products": ["SKU12345", "SKU67890"],
    "usage_by": "user@example.com",
}
SEED_FIELDS = {
    "id",
    "code",
    "discount_percentage",
    "discount_amount",
    "usage_count",
    "usage_by",
    "products",
    "expires_in",
    "created",
    "created_unix",
    "pattern",
    "charset",
    "count",
}
prefixes = pytest.mark.parametrize("prefix", ["", "/api"], ids=["root", "api"])


def assert_seed_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "status"}
    assert body["status"] == status
    return body["error"]


async def count_codes(database) -> int:
    async with database.begin() as conn:
        return (await conn.execute(select(func.count()).select_from(promocodes))).scalar_one()


# sign-in


@prefixes
async def test_signin_returns_a_token_that_authenticate_knows(client, database, clock, prefix):
    await make_user(database, now=clock(), username="root", password=ADMIN_PASSWORD, role="admin")

    signed = await client.post(
        f"{prefix}/signin", json={"login": "root", "password": ADMIN_PASSWORD}
    )
    assert signed.status_code == 200, signed.text
    token = signed.json()["token"]

    by_header = await client.get(
        f"{prefix}/authenticate", headers={"Authorization": f"Bearer {token}"}
    )
    by_body = await client.post(f"{prefix}/authenticate", json={"token": token})
    assert by_header.json() == by_body.json() == {"id": 1, "login": "root", "role": "ADMIN"}


async def test_signin_with_a_wrong_password_is_401(client, database, clock):
    await make_user(database, now=clock())
    response = await client.post("/signin", json={"login": "sally", "password": "wrong one!"})
    assert_seed_error(response, 401)


async def test_a_sales_user_is_sales_and_has_full_access(client, database, clock):
    await make_user(database, now=clock(), username="sally", password="sales password")
    token = (
        await client.post("/signin", json={"login": "sally", "password": "sales password"})
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/authenticate", headers=headers)).json()["role"] == "SALES"
    assert (await client.post("/promocodes/set", json=SEED_SET, headers=headers)).status_code == 200


async def test_authenticate_with_an_unknown_token_is_401(client):
    assert_seed_error(await client.post("/authenticate", json={"token": "pt_nope"}), 401)


# promocodes/set


@prefixes
async def test_set_of_the_seed_example_creates_the_codes(client, database, auth, prefix):
    response = await client.post(f"{prefix}/promocodes/set", json=SEED_SET, headers=auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200
    assert body["message"].startswith("Promocode ")
    assert body["message"].endswith(" created.")
    made = await client.get(f"{prefix}/promocodes/get", headers=auth)
    codes_ = [p["code"] for p in made.json()]
    assert len(codes_) == 3
    assert body["message"] == f"Promocode {', '.join(codes_)} created."
    assert all(len(c) == 12 and set(c) <= set(SEED_SET["charset"]) for c in codes_)


async def test_set_with_an_amount_stores_the_amount(client, auth):
    body = {**SEED_SET, "discount_percentage": 0, "discount_amount": 12.5, "count": 1}
    assert (await client.post("/promocodes/set", json=body, headers=auth)).status_code == 200
    [made] = (await client.get("/promocodes/get", headers=auth)).json()
    assert made["discount_amount"] == 12.5
    assert made["discount_percentage"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"discount_amount": 5},
        {"discount_percentage": 0},
        {"pattern": "#", "charset": "AB", "count": 5},
        {"expires_in": "2020-01-01"},
        {"count": "3"},
        {"usage_count": "four"},
        {"products": "SKU12345"},
        {"pattern": None},
    ],
)
async def test_bad_sets_are_400_and_create_nothing(client, database, auth, change):
    response = await client.post("/promocodes/set", json={**SEED_SET, **change}, headers=auth)
    assert_seed_error(response, 400)
    assert await count_codes(database) == 0


@prefixes
@pytest.mark.parametrize("unset", ["", None], ids=["empty", "null"])
async def test_set_with_usage_by_unset_makes_codes_for_anybody(client, auth, prefix, unset):
    body = {**SEED_SET, "usage_by": unset}

    response = await client.post(f"{prefix}/promocodes/set", json=body, headers=auth)

    assert response.status_code == 200, response.text
    made = (await client.get(f"{prefix}/promocodes/get", headers=auth)).json()
    assert [p["usage_by"] for p in made] == ["", "", ""]


@pytest.mark.parametrize("usage_by", ["nobody", "a\u0000@example.com", "a@exa\u202emple.com"])
async def test_set_with_a_usage_by_that_is_no_e_mail_is_400(client, database, auth, usage_by):
    body = {**SEED_SET, "usage_by": usage_by}

    assert_seed_error(await client.post("/promocodes/set", json=body, headers=auth), 400)
    assert await count_codes(database) == 0


async def test_set_needs_a_credential(client, database):
    assert_seed_error(await client.post("/promocodes/set", json=SEED_SET), 401)
    assert await count_codes(database) == 0


# promocodes/get...


async def test_get_returns_every_code_with_the_seed_fields(client, database, clock, auth):
    code = await make_promocode(
        database,
        now=clock(),
        pattern="SUMMER21",
        usage_count=5,
        usage_by="user@example.com",
        products=("SKU12345", "SKU67890"),
        expires_in=date(2026, 12, 31),
    )

    [found] = (await client.get("/promocodes/get", headers=auth)).json()

    assert set(found) == SEED_FIELDS
    assert found == {
        "id": found["id"],
        "code": code,
        "discount_percentage": 20,
        "discount_amount": 0,
        "usage_count": 5,
        "usage_by": "user@example.com",
        "products": ["SKU12345", "SKU67890"],
        "expires_in": "2026-12-31",
        "created": "2026-03-01",
        "created_unix": int(clock().timestamp()),
        "pattern": "SUMMER21",
        "charset": found["charset"],
        "count": 1,
    }


async def test_get_with_limits_returns_that_range(client, database, clock, auth):
    made = [await make_promocode(database, now=clock()) for _ in range(5)]
    response = await client.get("/promocodes/get/1/3", headers=auth)
    assert [p["code"] for p in response.json()] == made[1:3]
    assert_seed_error(await client.get("/promocodes/get/3/1", headers=auth), 400)
    assert_seed_error(await client.get("/promocodes/get/a/b", headers=auth), 400)


@prefixes
async def test_get_with_a_search_finds_codes_containing_it(client, database, clock, auth, prefix):
    summer = await make_promocode(database, now=clock(), pattern="SUMMER21")
    await make_promocode(database, now=clock(), pattern="WINTER21")
    response = await client.get(f"{prefix}/promocodes/get/summer", headers=auth)
    assert [p["code"] for p in response.json()] == [summer]


async def test_get_with_a_search_and_limits(client, database, clock, auth):
    found = [await make_promocode(database, now=clock(), pattern=f"SALE{n}") for n in range(3)]
    await make_promocode(database, now=clock(), pattern="OTHER")
    response = await client.get("/promocodes/get/SALE/1/10", headers=auth)
    assert [p["code"] for p in response.json()] == found[1:]


async def test_getusedby_defaults_to_the_signed_in_user(client, database, clock):
    await make_user(database, now=clock(), username="user@example.com", password="long enough")
    mine = await make_promocode(database, now=clock(), usage_by="user@example.com")
    await make_promocode(database, now=clock(), usage_by="other@example.com")
    token = (
        await client.post("/signin", json={"login": "user@example.com", "password": "long enough"})
    ).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    assert [
        p["code"] for p in (await client.get("/promocodes/getusedby", headers=headers)).json()
    ] == [mine]
    other = await client.get(
        "/promocodes/getusedby", params={"email": "other@example.com"}, headers=headers
    )
    assert len(other.json()) == 1
    assert other.json()[0]["usage_by"] == "other@example.com"


async def test_getdiscountpercentage_leaves_out_amounts(client, database, clock, auth):
    percent = await make_promocode(database, now=clock())
    await make_promocode(
        database, now=clock(), discount_percentage=None, discount_amount=Decimal(5)
    )
    response = await client.get("/promocodes/getdiscountpercentage", headers=auth)
    assert [p["code"] for p in response.json()] == [percent]


@pytest.mark.parametrize(
    "path",
    [
        "/promocodes/get",
        "/promocodes/get/SUMMER",
        "/promocodes/get/0/10",
        "/promocodes/getusedby",
        "/promocodes/getdiscountpercentage",
        "/promocodes/del/SUMMER21",
        "/promocodes/decrement/SUMMER21",
        "/api/get?module=specials",
    ],
)
async def test_private_routes_need_a_credential(client, path):
    assert_seed_error(await client.get(path), 401)


# promocodes/del, getbycode, decrement


@prefixes
async def test_del_deletes_the_code(client, database, clock, auth, prefix):
    code = await make_promocode(database, now=clock())
    response = await client.get(f"{prefix}/promocodes/del/{code}", headers=auth)
    assert response.json() == {"message": "Promocodes deleted.", "status": 200}
    assert await count_codes(database) == 0
    assert_seed_error(await client.get(f"{prefix}/promocodes/del/{code}", headers=auth), 400)


@prefixes
async def test_getbycode_is_public(client, database, clock, prefix):
    code = await make_promocode(database, now=clock(), pattern="SUMMER21")
    response = await client.get(f"{prefix}/promocodes/getbycode/SUMMER21")
    assert response.status_code == 200, response.text
    assert response.json()["code"] == code
    assert set(response.json()) == SEED_FIELDS


async def test_getbycode_answers_alike_for_unknown_expired_and_used_up(client, database, clock):
    await make_promocode(database, now=clock(), pattern="EXPIRED", expires_in=date(2026, 3, 1))
    used = await make_promocode(database, now=clock(), pattern="USEDUP", usage_count=1)
    async with database.begin() as conn:
        await service.redeem(conn, code=used, customer=None, skus=None, now=clock())
    clock.advance(days=1)

    answers = [
        assert_seed_error(await client.get(f"/promocodes/getbycode/{code}"), 400)
        for code in ("UNKNOWN", "EXPIRED", "USEDUP")
    ]
    assert len(set(answers)) == 1


@pytest.mark.parametrize("malformed", ["A" * 300, "AB%00CD", "AB%0ACD", "%7F"])
async def test_getbycode_answers_malformed_codes_as_unknown_ones(client, malformed):
    unknown = await client.get("/promocodes/getbycode/UNKNOWN")
    response = await client.get(f"/promocodes/getbycode/{malformed}")
    assert (response.status_code, response.json()) == (unknown.status_code, unknown.json())


@prefixes
async def test_decrement_uses_one_use(client, database, clock, auth, prefix):
    code = await make_promocode(database, now=clock(), usage_count=2)
    response = await client.get(f"{prefix}/promocodes/decrement/{code}", headers=auth)
    assert response.json() == {"message": f"Promocode {code} decremented.", "status": 200}
    [found] = (await client.get("/promocodes/get", headers=auth)).json()
    assert found["usage_count"] == 1


async def test_decrement_stops_at_zero(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    assert (await client.get(f"/promocodes/decrement/{code}", headers=auth)).status_code == 200
    message = assert_seed_error(
        await client.get(f"/promocodes/decrement/{code}", headers=auth), 400
    )
    assert "no uses left" in message


async def test_decrement_of_an_expired_code_is_refused(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), expires_in=date(2026, 3, 1))
    clock.advance(days=1)
    message = assert_seed_error(
        await client.get(f"/promocodes/decrement/{code}", headers=auth), 400
    )
    assert "expired" in message


@pytest.mark.postgres_only
async def test_concurrent_decrements_never_go_below_zero(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    responses = await asyncio.gather(
        *(client.get(f"/promocodes/decrement/{code}", headers=auth) for _ in range(20))
    )
    assert Counter(r.status_code for r in responses) == {200: 3, 400: 17}


# specials and upgrades: the shared CRUD

SPECIAL = {"sku": "SKU12345", "title": "Summer special", "discount_percentage": 25}
UPGRADE = {"from_sku": "SKU1", "to_sku": "SKU2", "title": "Go pro", "discount_amount": 10}


@pytest.mark.parametrize(
    ("module", "body", "field"),
    [("specials", SPECIAL, "sku"), ("upgrades", UPGRADE, "to_sku")],
)
async def test_crud_creates_reads_updates_and_deletes(client, auth, module, body, field):
    created = await client.post(f"/api/create?module={module}", json=body, headers=auth)
    assert created.status_code == 200, created.text
    item = created.json()
    assert item[field] == body[field]

    assert (await client.get(f"/api/get?module={module}", headers=auth)).json() == [item]
    assert (await client.get(f"/api/get/{item['id']}?module={module}", headers=auth)).json() == item
    updated = await client.put(
        f"/api/update?module={module}",
        json={**body, "id": item["id"], "title": "New"},
        headers=auth,
    )
    assert updated.json()["title"] == "New"
    deleted = await client.delete(f"/api/delete/{item['id']}?module={module}", headers=auth)
    assert deleted.status_code == 200
    assert deleted.json()["status"] == 200
    assert_seed_error(await client.get(f"/api/get/{item['id']}?module={module}", headers=auth), 400)


@pytest.mark.parametrize("module", ["", "?module=offers", "?module="])
async def test_crud_with_an_unknown_module_is_400_and_creates_nothing(
    client, database, auth, module
):
    assert_seed_error(await client.post(f"/api/create{module}", json=SPECIAL, headers=auth), 400)
    async with database.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(specials))).scalar_one() == 0


async def test_crud_with_wrong_types_is_400(client, auth):
    body = {**SPECIAL, "discount_percentage": "lots"}
    assert_seed_error(
        await client.post("/api/create?module=specials", json=body, headers=auth), 400
    )
    assert_seed_error(
        await client.put("/api/update?module=specials", json=SPECIAL, headers=auth), 400
    )


# public specials and upgrade programs


@prefixes
async def test_special_by_sku_is_public_and_active_now(client, database, clock, prefix):
    now = clock()
    await make_special(database, now=now, ends_at=now - timedelta(days=1), title="gone")
    await make_special(database, now=now, title="on")
    response = await client.get(f"{prefix}/special/SKU12345")
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "on"
    assert response.json()["price"] == 9.99
    assert_seed_error(await client.get(f"{prefix}/special/SKU0"), 400)


@prefixes
async def test_upgrade_program_lists_the_actual_ones(client, database, clock, prefix):
    now = clock()
    on = await make_upgrade_program(database, now=now)
    await make_upgrade_program(database, now=now, starts_at=now + timedelta(days=1))
    response = await client.get(f"{prefix}/upgrade-program")
    assert [p["id"] for p in response.json()] == [on.id]


@prefixes
async def test_promocode_upgrade_program_makes_a_code_for_the_program(
    client, database, clock, auth, prefix
):
    program = await make_upgrade_program(
        database, now=clock(), ends_at=clock() + timedelta(days=10)
    )
    response = await client.post(
        f"{prefix}/promocode/upgrade-program",
        json={"upgrade_program_id": program.id, "usage_by": "user@example.com"},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    made = response.json()
    assert made["code"].startswith("UP-")
    assert made["discount_percentage"] == 15
    assert made["products"] == ["SKU67890"]
    assert made["expires_in"] == "2026-03-11"
    assert made["usage_by"] == "user@example.com"


@pytest.mark.parametrize("unset", ["", None], ids=["empty", "null"])
async def test_promocode_upgrade_program_with_usage_by_unset_is_for_anybody(
    client, database, clock, auth, unset
):
    program = await make_upgrade_program(database, now=clock())

    response = await client.post(
        "/promocode/upgrade-program",
        json={"upgrade_program_id": program.id, "usage_by": unset, "expires_in": "2026-12-31"},
        headers=auth,
    )

    assert response.status_code == 200, response.text
    assert response.json()["usage_by"] == ""


async def test_promocode_upgrade_program_needs_a_credential(client, database, clock):
    program = await make_upgrade_program(database, now=clock())
    response = await client.post(
        "/promocode/upgrade-program", json={"upgrade_program_id": program.id}
    )
    assert_seed_error(response, 401)
    assert await count_codes(database) == 0


async def test_promocode_upgrade_program_of_an_ended_program_is_400(client, database, clock, auth):
    program = await make_upgrade_program(database, now=clock(), ends_at=clock())
    response = await client.post(
        "/promocode/upgrade-program", json={"upgrade_program_id": program.id}, headers=auth
    )
    assert_seed_error(response, 400)
    assert await count_codes(database) == 0
