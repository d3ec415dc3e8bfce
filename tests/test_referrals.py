"""The native referral API (``/v1``), the ledger and outbox it writes, and its rules under
real concurrency on PostgreSQL: a referrer is rewarded once per referred user, a user is
referred once."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from promos.db import Database
from promos.events.tables import outbox, webhook_deliveries
from promos.referrals import service
from promos.referrals.tables import referral_credits, referrals
from promos.settings import Settings
from tests.factories.referrals import make_program, make_referral

CALLBACK = "http://billing.test/credit/%s/"


async def rows(database: Database, table: Any, *columns: Any) -> list[Any]:
    async with database.begin() as conn:
        query = select(*columns) if columns else select(table)
        return list(await conn.execute(query.select_from(table)))


async def count(database: Database, table: Any) -> int:
    async with database.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# programs


async def test_a_program_is_created_read_changed_and_deleted(client, auth):
    created = await client.post(
        "/v1/referral-programs",
        json={"name": "Friends", "credit_value": 10, "target_value": "99.90"},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    program = created.json()
    assert (program["credit_value"], program["target_value"]) == (10, 99.9)
    path = f"/v1/referral-programs/{program['id']}"

    changed = await client.patch(path, json={"credit_value": 12.5}, headers=auth)
    listed = await client.get("/v1/referral-programs", headers=auth)
    deleted = await client.delete(path, headers=auth)

    assert changed.json()["credit_value"] == 12.5
    assert changed.json()["name"] == "Friends"
    assert [p["id"] for p in listed.json()["items"]] == [program["id"]]
    assert deleted.status_code == 204
    gone = await client.get(path, headers=auth)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "program_not_found"


async def test_a_program_with_referrals_cannot_be_deleted(client, auth, database, clock):
    program = await make_program(database, now=clock())
    await make_referral(database, now=clock(), program=program)

    response = await client.delete(f"/v1/referral-programs/{program.id}", headers=auth)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "program_in_use"


async def test_a_program_with_bad_values_is_refused(client, auth, database):
    for body in (
        {"name": "x", "credit_value": 1, "target_value": 0},
        {"name": "x", "credit_value": 1.001, "target_value": 5},
        {"name": "x", "credit_value": 1, "target_value": 5, "extra": 1},
    ):
        response = await client.post("/v1/referral-programs", json=body, headers=auth)
        assert response.status_code == 422, response.text
    assert (await client.get("/v1/referral-programs", headers=auth)).json()["items"] == []


@pytest.mark.parametrize("field", ["credit_value", "target_value"])
async def test_amounts_are_below_a_billion(client, auth, field):
    program = {"name": "x", "credit_value": 1, "target_value": 100}

    refused = await client.post(
        "/v1/referral-programs", json={**program, field: 1_000_000_000}, headers=auth
    )
    made = await client.post(
        "/v1/referral-programs", json={**program, field: 999_999_999.99}, headers=auth
    )

    assert refused.status_code == 422, refused.text
    assert made.status_code == 201, made.text


async def test_a_total_paid_of_a_billion_is_refused(client, auth, database, clock):
    await make_program(database, now=clock())
    await make_referral(database, now=clock())

    response = await client.put(
        "/v1/referral-users/bob/payments", json={"total_amount_paid": 1_000_000_000}, headers=auth
    )

    assert response.status_code == 422, response.text


# referrals, payments, statements


async def test_a_referral_credits_the_new_user_and_promises_the_referrer_the_target(
    client, auth, database, clock
):
    program = await make_program(database, now=clock(), credit_value=Decimal(5))

    response = await client.post(
        "/v1/referrals", json={"referrer": "alice", "referred": "bob"}, headers=auth
    )

    assert response.status_code == 201, response.text
    assert response.json()["program"]["id"] == program.id
    bob = (await client.get("/v1/referral-users/bob/credits", headers=auth)).json()["items"]
    alice = (await client.get("/v1/referral-users/alice/credits", headers=auth)).json()["items"]
    assert [(c["kind"], c["amount"]) for c in bob] == [("signup", 5)]
    assert [(c["kind"], c["amount"]) for c in alice] == [("potential", 100)]


async def test_registering_again_is_idempotent_and_another_referrer_is_refused(
    client, auth, database, clock
):
    await make_program(database, now=clock())
    body = {"referrer": "alice", "referred": "bob"}

    first = await client.post("/v1/referrals", json=body, headers=auth)
    again = await client.post("/v1/referrals", json=body, headers=auth)
    other = await client.post(
        "/v1/referrals", json={"referrer": "carol", "referred": "bob"}, headers=auth
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert other.json()["error"]["code"] == "already_referred"
    assert await count(database, referrals) == 1
    assert await count(database, referral_credits) == 2
    assert await count(database, outbox) == 1


async def test_the_reward_goes_to_the_referrer_once_when_the_total_reaches_the_target(
    client, auth, database, clock
):
    await make_program(database, now=clock(), target_value=Decimal(50))
    await make_referral(database, now=clock(), referrer="alice", referred="bob")

    answers = [
        (
            await client.put(
                "/v1/referral-users/bob/payments", json={"total_amount_paid": paid}, headers=auth
            )
        ).json()
        for paid in (20, 50, 70)
    ]

    assert [a["acquired_credit"] for a in answers] == [0, 50, 0]
    assert [a["total_amount_paid"] for a in answers] == [20, 50, 70]
    statement = (await client.get("/v1/referral-users/alice/statement", headers=auth)).json()
    assert statement["acquired_credit"] == 50
    assert statement["potential_credit"] == 0
    assert statement["referrals"] == 1
    ledger = await rows(
        database, referral_credits, referral_credits.c.user_hash, referral_credits.c.kind
    )
    assert sorted(tuple(c) for c in ledger) == [
        ("alice", "acquired"),
        ("alice", "potential"),
        ("bob", "signup"),
    ]


async def test_a_referral_keeps_the_terms_it_was_made_under(client, auth, database, clock):
    program = await make_program(database, now=clock(), target_value=Decimal(50))
    await make_referral(database, now=clock(), referrer="alice", referred="bob")
    await client.patch(
        f"/v1/referral-programs/{program.id}", json={"target_value": 500}, headers=auth
    )

    answer = await client.put(
        "/v1/referral-users/bob/payments", json={"total_amount_paid": 50}, headers=auth
    )

    assert answer.json()["acquired_credit"] == 50


async def test_the_statement_of_a_referred_user_names_the_referrer(client, auth, database, clock):
    await make_program(database, now=clock())
    await make_referral(database, now=clock(), referrer="alice", referred="bob")

    statement = (await client.get("/v1/referral-users/bob/statement", headers=auth)).json()

    assert statement["referred_by"] == "alice"
    assert statement["signup_credit"] == 10
    assert statement["potential_credit"] == 0


async def test_unknown_users_are_a_404(client, auth):
    for path in ("statement", "credits"):
        response = await client.get(f"/v1/referral-users/nobody/{path}", headers=auth)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "referral_user_not_found"
    response = await client.put(
        "/v1/referral-users/nobody/payments", json={"total_amount_paid": 1}, headers=auth
    )
    assert response.status_code == 404


# the outbox, written in the transaction of the credit


async def test_sign_up_and_reward_are_events_in_the_outbox_with_their_callbacks(database, clock):
    program = await make_program(database, now=clock(), target_value=Decimal(30))
    await make_referral(database, now=clock(), referrer="alice", referred="bob", callback=CALLBACK)
    async with database.begin() as conn:
        await service.record_payment(
            conn, user_hash="bob", total_amount_paid=Decimal(30), now=clock(), callback=CALLBACK
        )

    events = await rows(database, outbox, outbox.c.event_type, outbox.c.payload)
    assert [e.event_type for e in events] == ["referral.signed_up", "referral.rewarded"]
    assert events[1].payload["referrer"] == "alice"
    assert events[1].payload["amount"] == 30
    callbacks = await rows(
        database, webhook_deliveries, webhook_deliveries.c.url, webhook_deliveries.c.body
    )
    assert [tuple(c) for c in callbacks] == [
        (
            "http://billing.test/credit/bob/",
            f"amount=10.00&program_name={program.name}&user_indicator_hash=alice",
        ),
        (
            "http://billing.test/credit/alice/",
            f"amount=30.00&program_name={program.name}&user_indicator_hash=alice",
        ),
    ]


async def test_a_refused_registration_leaves_no_event(database, clock):
    await make_program(database, now=clock())
    await make_referral(database, now=clock(), referrer="alice", referred="bob")

    with pytest.raises(service.AlreadyReferred):
        await make_referral(database, now=clock(), referrer="carol", referred="bob")

    assert await count(database, outbox) == 1


# real concurrency (PostgreSQL)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        db_pool_size=20,
        db_max_overflow=10,
        referral_callback_url=CALLBACK,
        webhook_secret="a secret of sixteen or more",
        webhook_dispatcher=False,
    )


async def warm(database: Database, size: int = 20) -> None:
    """Open the pool's connections up front, so that the requests below really race."""
    everyone = asyncio.Barrier(size)

    async def hold() -> None:
        async with database.engine.connect() as conn:
            await conn.execute(select(1))
            await everyone.wait()

    await asyncio.wait_for(asyncio.gather(*(hold() for _ in range(size))), timeout=10)


@pytest.mark.postgres_only
async def test_concurrent_invoices_reward_the_referrer_exactly_once(client, auth, database, clock):
    await make_program(database, now=clock(), target_value=Decimal(100))
    await make_referral(database, now=clock(), referrer="alice", referred="bob")
    await warm(database)

    responses = await asyncio.gather(
        *(
            client.put("/invoice/user/bob/", json={"total_amount_paid": 100 + n}, headers=auth)
            for n in range(60)
        )
    )

    assert Counter(r.status_code for r in responses) == {200: 60}
    assert Counter(r.json()["acquired_credit"] for r in responses) == {100: 1, 0: 59}
    async with database.begin() as conn:
        kinds = Counter((await conn.execute(select(referral_credits.c.kind))).scalars())
        rewarded = (
            await conn.execute(
                select(func.count()).where(outbox.c.event_type == "referral.rewarded")
            )
        ).scalar_one()
        callbacks = (
            await conn.execute(
                select(func.count()).where(
                    webhook_deliveries.c.url == "http://billing.test/credit/alice/"
                )
            )
        ).scalar_one()
        paid = (await conn.execute(select(referrals.c.total_amount_paid))).scalar_one()
    assert kinds == {"signup": 1, "potential": 1, "acquired": 1}
    assert (rewarded, callbacks) == (1, 1)
    assert paid == Decimal("159.00")


@pytest.mark.postgres_only
async def test_concurrent_registrations_refer_a_user_only_once(client, auth, database, clock):
    await make_program(database, now=clock())
    await warm(database)

    responses = await asyncio.gather(
        *(
            client.post(
                "/register/",
                json={"user_indicator": f"referrer-{n}", "user_indicated": "newcomer"},
                headers=auth,
            )
            for n in range(40)
        )
    )

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 39}
    assert await count(database, referrals) == 1
    assert await count(database, referral_credits) == 2
    assert await count(database, outbox) == 1
    assert await count(database, webhook_deliveries) == 1


@pytest.mark.postgres_only
async def test_concurrent_repeats_of_one_registration_credit_once(client, auth, database, clock):
    await make_program(database, now=clock())
    await warm(database)

    responses = await asyncio.gather(
        *(
            client.post(
                "/register/",
                json={"user_indicator": "alice", "user_indicated": "bob"},
                headers=auth,
            )
            for _ in range(30)
        )
    )

    assert Counter(r.status_code for r in responses) == {201: 1, 200: 29}
    assert await count(database, referral_credits) == 2
    assert await count(database, webhook_deliveries) == 1
