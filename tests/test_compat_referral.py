"""The referral program API (seed 003), request by request from its README.

Every route is called at the seed's path with and without the trailing slash (never a
redirect), and every route that takes parameters with a JSON body and with form fields.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from promos.db import Database
from promos.referrals.tables import (
    email_indications,
    referral_credits,
    referral_programs,
    referrals,
)
from tests.factories.referrals import make_program, make_referral

slash = pytest.mark.parametrize("slash", [True, False], ids=["slash", "no_slash"])
encoding = pytest.mark.parametrize("as_form", [False, True], ids=["json", "form"])


def at(path: str, slash: bool) -> str:
    """The seed's path (``/program/``), or the same without its trailing slash, or with one."""
    if path.endswith("/"):
        return path if slash else path.rstrip("/")
    return path + "/" if slash else path


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    params: dict[str, Any],
    *,
    as_form: bool,
    headers: dict[str, str],
) -> httpx.Response:
    if as_form:
        form = {k: str(v) for k, v in params.items()}
        return await client.request(method, path, data=form, headers=headers)
    return await client.request(method, path, json=params, headers=headers)


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    return body["error"]


async def count(database: Database, table: Any) -> int:
    async with database.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# POST /program/


@slash
@encoding
async def test_post_program_creates_a_program(client, auth, slash, as_form):
    params = {"name": "Friends", "credit_value": "10.50", "target_value": 100}

    response = await call(
        client, "POST", at("/program/", slash), params, as_form=as_form, headers=auth
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "Friends",
        "credit_value": 10.5,
        "target_value": 100,
    }
    assert isinstance(body["id"], int)


@encoding
async def test_post_program_with_bad_values_is_refused_and_writes_nothing(
    client, auth, database, as_form
):
    bad = [
        {"credit_value": 10, "target_value": 100},
        {"name": "x", "credit_value": -1, "target_value": 100},
        {"name": "x", "credit_value": "1.005", "target_value": 100},
        {"name": "x", "credit_value": 1, "target_value": 0},
        {"name": "x", "credit_value": "ten", "target_value": 100},
        {"name": "x", "credit_value": 1, "target_value": "1e12"},
        {"name": "x\x00y", "credit_value": 1, "target_value": 100},
    ]
    for params in bad:
        response = await call(client, "POST", "/program/", params, as_form=as_form, headers=auth)
        assert_error(response, 422)
    assert await count(database, referral_programs) == 0


@encoding
@pytest.mark.parametrize("field", ["credit_value", "target_value"])
async def test_amounts_are_below_a_billion_as_the_seed_says(client, auth, database, as_form, field):
    at_limit = {"name": "x", "credit_value": 1, "target_value": 100, field: 1_000_000_000}
    below = {"name": "y", "credit_value": 1, "target_value": 100, field: "999999999.99"}

    refused = await call(client, "POST", "/program/", at_limit, as_form=as_form, headers=auth)
    made = await call(client, "POST", "/program/", below, as_form=as_form, headers=auth)

    assert_error(refused, 422)
    assert made.status_code == 201, made.text
    assert made.json()[field] == 999_999_999.99


async def test_post_program_with_a_body_that_is_not_json_or_a_form_is_refused(client, auth):
    response = await client.post(
        "/program/", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert "JSON object" in assert_error(response, 422)
    response = await client.post("/program/", json=[1, 2], headers=auth)
    assert_error(response, 422)


async def test_program_routes_need_a_credential(client):
    assert_error(await client.get("/program/"), 401)
    assert_error(await client.post("/program", json={"name": "x"}), 401)


# GET /program/ and /program/<id>/


@slash
async def test_get_program_lists_every_program_oldest_first(client, auth, database, clock, slash):
    first = await make_program(database, now=clock(), name="First")
    second = await make_program(database, now=clock(), name="Second")

    response = await client.get(at("/program/", slash), headers=auth)

    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()] == [first.id, second.id]


@slash
async def test_get_one_program_returns_its_data(client, auth, database, clock, slash):
    program = await make_program(database, now=clock(), target_value=Decimal("250.25"))

    response = await client.get(at(f"/program/{program.id}/", slash), headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": program.id,
        "name": "Friends",
        "credit_value": 10,
        "target_value": 250.25,
    }


@slash
async def test_get_an_unknown_program_is_a_404(client, auth, slash):
    assert_error(await client.get(at("/program/999/", slash), headers=auth), 404)
    assert_error(await client.get(at("/program/abc/", slash), headers=auth), 422)


# PUT /program/<id>/


@slash
@encoding
async def test_put_program_updates_the_fields_given(
    *, client, auth, database, clock, slash, as_form
):
    program = await make_program(database, now=clock())

    response = await call(
        client,
        "PUT",
        at(f"/program/{program.id}/", slash),
        {"name": "Best friends", "target_value": "150"},
        as_form=as_form,
        headers=auth,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": program.id,
        "name": "Best friends",
        "credit_value": 10,
        "target_value": 150,
    }


async def test_put_an_unknown_program_is_a_404(client, auth):
    response = await client.put("/program/999/", json={"name": "x"}, headers=auth)
    assert_error(response, 404)


# DELETE /program/<id>/


@slash
async def test_delete_program_deletes_it(client, auth, database, clock, slash):
    program = await make_program(database, now=clock())

    response = await client.delete(at(f"/program/{program.id}/", slash), headers=auth)

    assert response.status_code == 204, response.text
    assert_error(await client.get(f"/program/{program.id}/", headers=auth), 404)


async def test_delete_a_program_with_referrals_is_a_409(client, auth, database, clock):
    program = await make_program(database, now=clock())
    await make_referral(database, now=clock(), program=program)

    assert_error(await client.delete(f"/program/{program.id}/", headers=auth), 409)
    assert await count(database, referral_programs) == 1


# POST /register/


@slash
@encoding
async def test_register_records_the_referral_and_credits_the_new_user(
    *, client, auth, database, clock, slash, as_form
):
    program = await make_program(database, now=clock(), credit_value=Decimal(15))
    params = {"user_indicator": "alice", "user_indicated": "bob", "referral_program_id": program.id}

    response = await call(
        client, "POST", at("/register/", slash), params, as_form=as_form, headers=auth
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user_indicated"] == "bob"
    assert body["user_indicator"] == "alice"
    assert body["referral_program"]["id"] == program.id
    assert body["credit_value"] == 15
    assert body["total_amount_paid"] == 0
    statement = (await client.get("/statement/bob/", headers=auth)).json()
    assert statement["signup_credit"] == 15


@encoding
async def test_register_without_a_program_uses_the_oldest(client, auth, database, clock, as_form):
    oldest = await make_program(database, now=clock(), name="Oldest")
    await make_program(database, now=clock(), name="Newer")

    response = await call(
        client,
        "POST",
        "/register/",
        {"user_indicator": "alice", "user_indicated": "bob"},
        as_form=as_form,
        headers=auth,
    )

    assert response.status_code == 201, response.text
    assert response.json()["referral_program"]["id"] == oldest.id


async def test_register_with_no_program_at_all_is_a_404(client, auth, database):
    response = await client.post(
        "/register/", json={"user_indicator": "alice", "user_indicated": "bob"}, headers=auth
    )
    assert "no referral program" in assert_error(response, 404)
    assert await count(database, referrals) == 0


async def test_register_in_an_unknown_program_is_a_404(client, auth, database, clock):
    await make_program(database, now=clock())
    response = await client.post(
        "/register/",
        json={"user_indicator": "alice", "user_indicated": "bob", "referral_program_id": 999},
        headers=auth,
    )
    assert_error(response, 404)
    assert await count(database, referrals) == 0


async def test_registering_the_same_referral_again_credits_nothing_more(
    client, auth, database, clock
):
    await make_program(database, now=clock())
    params = {"user_indicator": "alice", "user_indicated": "bob"}

    first = await client.post("/register/", json=params, headers=auth)
    again = await client.post("/register", data=params, headers=auth)

    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert await count(database, referrals) == 1
    assert await count(database, referral_credits) == 2  # bob's sign-up, alice's potential


async def test_a_user_referred_by_somebody_else_already_is_a_409(client, auth, database, clock):
    await make_program(database, now=clock())
    await make_referral(database, now=clock(), referrer="alice", referred="bob")

    response = await client.post(
        "/register/", json={"user_indicator": "carol", "user_indicated": "bob"}, headers=auth
    )

    assert "already referred" in assert_error(response, 409)
    assert await count(database, referrals) == 1
    assert await count(database, referral_credits) == 2


@encoding
async def test_register_with_bad_input_is_refused_and_writes_nothing(
    client, auth, database, clock, as_form
):
    await make_program(database, now=clock())
    bad = [
        {"user_indicator": "alice"},
        {"user_indicated": "bob"},
        {"user_indicator": "alice", "user_indicated": "alice"},
        {"user_indicator": "al ice", "user_indicated": "bob"},
        {"user_indicator": "alice", "user_indicated": "b" * 256},
        {"user_indicator": "alice", "user_indicated": "bob", "referral_program_id": "x"},
        {"user_indicator": "alice", "user_indicated": "bob", "referral_program_id": 0},
    ]
    for params in bad:
        response = await call(client, "POST", "/register/", params, as_form=as_form, headers=auth)
        assert_error(response, 422)
    assert await count(database, referrals) == 0
    assert await count(database, referral_credits) == 0


# PUT /invoice/user/<user_hash>/


@slash
@encoding
async def test_invoice_reaching_the_target_rewards_the_referrer_once(
    *, client, auth, database, clock, slash, as_form
):
    await make_program(database, now=clock(), target_value=Decimal(100))
    await make_referral(database, now=clock(), referrer="alice", referred="bob")
    path = at("/invoice/user/bob/", slash)

    below = await call(
        client, "PUT", path, {"total_amount_paid": "60"}, as_form=as_form, headers=auth
    )
    reached = await call(
        client, "PUT", path, {"total_amount_paid": "100.00"}, as_form=as_form, headers=auth
    )
    beyond = await call(
        client, "PUT", path, {"total_amount_paid": 250}, as_form=as_form, headers=auth
    )

    assert [r.status_code for r in (below, reached, beyond)] == [200, 200, 200]
    assert [r.json() for r in (below, reached, beyond)] == [
        {"acquired_credit": 0},
        {"acquired_credit": 100},
        {"acquired_credit": 0},
    ]
    alice = (await client.get("/statement/alice/", headers=auth)).json()
    assert alice["acquired_credit"] == 100
    assert alice["potencial_credit"] == 0
    bob = (await client.get("/statement/bob/", headers=auth)).json()
    assert bob["acquired_credit"] == 0  # the reward is the referrer's, never the referred's


async def test_an_older_smaller_total_does_not_lower_the_running_total(
    client, auth, database, clock
):
    await make_program(database, now=clock(), target_value=Decimal(100))
    await make_referral(database, now=clock())

    await client.put("/invoice/user/bob/", json={"total_amount_paid": 80}, headers=auth)
    await client.put("/invoice/user/bob/", json={"total_amount_paid": 30}, headers=auth)

    async with database.begin() as conn:
        paid = (await conn.execute(select(referrals.c.total_amount_paid))).scalar_one()
    assert paid == Decimal("80.00")


async def test_invoice_of_an_unknown_user_is_a_404(client, auth, database, clock):
    await make_program(database, now=clock())
    response = await client.put(
        "/invoice/user/nobody/", json={"total_amount_paid": 5}, headers=auth
    )
    assert "unknown" in assert_error(response, 404)


async def test_invoice_of_a_referrer_who_was_not_referred_earns_nothing(
    client, auth, database, clock
):
    await make_program(database, now=clock())
    await make_referral(database, now=clock(), referrer="alice", referred="bob")

    response = await client.put(
        "/invoice/user/alice/", json={"total_amount_paid": 500}, headers=auth
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"acquired_credit": 0}


@encoding
async def test_invoice_with_bad_input_is_refused_and_writes_nothing(
    client, auth, database, clock, as_form
):
    await make_program(database, now=clock(), target_value=Decimal(10))
    await make_referral(database, now=clock())
    for params in (
        {},
        {"total_amount_paid": -5},
        {"total_amount_paid": "abc"},
        {"total_amount_paid": "10.001"},
        {"total_amount_paid": "nan"},
    ):
        response = await call(
            client, "PUT", "/invoice/user/bob/", params, as_form=as_form, headers=auth
        )
        assert_error(response, 422)
    assert await count(database, referral_credits) == 2
    async with database.begin() as conn:
        row = (
            await conn.execute(select(referrals.c.total_amount_paid, referrals.c.rewarded_at))
        ).one()
    assert row == (Decimal("0.00"), None)


# GET /statement/<user_hash>/


@slash
async def test_statement_shows_potential_and_acquired_credit_and_the_program(
    client, auth, database, clock, slash
):
    program = await make_program(database, now=clock(), target_value=Decimal(40))
    await make_referral(database, now=clock(), referrer="alice", referred="bob")
    await make_referral(database, now=clock(), referrer="alice", referred="carol")
    await client.put("/invoice/user/carol/", json={"total_amount_paid": 40}, headers=auth)

    response = await client.get(at("/statement/alice/", slash), headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "potencial_credit": 40,
        "acquired_credit": 40,
        "signup_credit": 0,
        "referral_program": {
            "id": program.id,
            "name": "Friends",
            "credit_value": 10,
            "target_value": 40,
        },
    }


@slash
async def test_statement_of_an_unknown_user_is_a_404(client, auth, slash):
    assert "unknown" in assert_error(
        await client.get(at("/statement/nobody/", slash), headers=auth), 404
    )


# POST /emailindication and /emailverification


@slash
@encoding
async def test_email_indication_saves_the_normalised_addresses(
    client, auth, database, slash, as_form
):
    params = {
        "user_indicator": "alice",
        "emails": " Ann@Example.com, bo@example.org ,,ann@example.com",
    }

    response = await call(
        client, "POST", at("/emailindication", slash), params, as_form=as_form, headers=auth
    )

    assert response.status_code == 201, response.text
    assert response.json() == {
        "user_indicator": "alice",
        "emails": ["ann@example.com", "bo@example.org"],
        "already_indicated": [],
    }
    assert await count(database, email_indications) == 2


async def test_an_email_indicated_by_another_referrer_stays_theirs(client, auth):
    await client.post(
        "/emailindication",
        json={"user_indicator": "alice", "emails": "ann@example.com"},
        headers=auth,
    )

    response = await client.post(
        "/emailindication",
        json={"user_indicator": "carol", "emails": "ANN@example.com,dan@example.com"},
        headers=auth,
    )

    assert response.status_code == 201, response.text
    assert response.json() == {
        "user_indicator": "carol",
        "emails": ["dan@example.com"],
        "already_indicated": ["ann@example.com"],
    }
    verified = await client.post(
        "/emailverification", json={"emails": "ann@example.com"}, headers=auth
    )
    assert verified.json() == [{"ann@example.com": "alice"}]


@encoding
async def test_email_indication_with_a_bad_address_writes_nothing(client, auth, database, as_form):
    for emails in ("ann@example.com,not-an-email", "", " , ", "a@b@c.com"):
        response = await call(
            client,
            "POST",
            "/emailindication",
            {"user_indicator": "alice", "emails": emails},
            as_form=as_form,
            headers=auth,
        )
        assert_error(response, 422)
    assert await count(database, email_indications) == 0


@slash
@encoding
async def test_email_verification_names_the_referrer_of_each_indicated_address(
    client, auth, slash, as_form
):
    await client.post(
        "/emailindication",
        json={"user_indicator": "alice", "emails": "ann@example.com,bo@example.org"},
        headers=auth,
    )

    response = await call(
        client,
        "POST",
        at("/emailverification", slash),
        {"emails": "BO@example.org, unknown@example.net, ann@example.com"},
        as_form=as_form,
        headers=auth,
    )

    assert response.status_code == 200, response.text
    assert response.json() == [{"bo@example.org": "alice"}, {"ann@example.com": "alice"}]
