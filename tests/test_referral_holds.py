"""Referral rewards held for a program's refund window, refunds that void or claw them back,
and the self-referral guard, through the native API and the seed's compatible routes, on both
backends; refund against reward under real concurrency on PostgreSQL. The injected clock
drives the hold (nothing sleeps, nothing has to run for a reward to be granted)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from promos.db import Database
from promos.events.tables import outbox, webhook_deliveries
from promos.referrals import service
from promos.referrals.tables import email_indications, referral_credits
from promos.settings import Settings
from tests.factories.referrals import make_program, make_referral
from tests.test_referrals import warm

CALLBACK = "http://billing.test/credit/%s/"
REFERRER_CALLBACK = "http://billing.test/credit/alice/"


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


async def events_of(database: Database) -> list[Any]:
    async with database.begin() as conn:
        query = select(outbox.c.event_type, outbox.c.payload).order_by(outbox.c.id)
        return list(await conn.execute(query))


async def referrer_callbacks(database: Database) -> list[Any]:
    async with database.begin() as conn:
        d = webhook_deliveries.c
        query = select(d.status, d.next_attempt_at).where(d.url == REFERRER_CALLBACK)
        return list(await conn.execute(query))


async def ledger_kinds(database: Database) -> Counter[str]:
    async with database.begin() as conn:
        return Counter((await conn.execute(select(referral_credits.c.kind))).scalars())


async def pay(client: Any, auth: dict[str, str], total: float, user: str = "bob") -> Any:
    response = await client.put(
        f"/v1/referral-users/{user}/payments", json={"total_amount_paid": total}, headers=auth
    )
    assert response.status_code == 200, response.text
    return response.json()


async def refund(
    client: Any, auth: dict[str, str], amount: Any, user: str = "bob", key: str | None = None
) -> Any:
    headers = auth if key is None else {**auth, "Idempotency-Key": key}
    return await client.post(
        f"/v1/referrals/payments/{user}/refunds", json={"amount": amount}, headers=headers
    )


async def statement(client: Any, auth: dict[str, str], user: str = "alice") -> dict[str, Any]:
    native = (await client.get(f"/v1/referral-users/{user}/statement", headers=auth)).json()
    seed = (await client.get(f"/statement/{user}/", headers=auth)).json()
    # The seed's statement shows the same figures, in its own shape.
    assert seed["potencial_credit"] == native["potential_credit"]
    assert seed["acquired_credit"] == native["acquired_credit"]
    assert set(seed) == {"potencial_credit", "acquired_credit", "signup_credit", "referral_program"}
    return {k: native[k] for k in ("potential_credit", "pending_credit", "acquired_credit")}


async def held(database: Database, clock: Any, days: int = 30) -> None:
    await make_program(database, now=clock(), target_value=Decimal(100), reward_hold_days=days)
    await make_referral(database, now=clock(), referrer="alice", referred="bob", callback=CALLBACK)


# self-referral guard


async def test_a_user_cannot_refer_themselves_in_the_native_api(client, auth, database, clock):
    await make_program(database, now=clock())

    response = await client.post(
        "/v1/referrals", json={"referrer": "alice", "referred": "alice"}, headers=auth
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "self_referral"


async def test_a_referrer_cannot_indicate_the_address_verified_as_their_own(client, auth):
    await client.post(
        "/emailindication", json={"user_indicator": "carol", "emails": "al@x.com"}, headers=auth
    )
    verified = await client.post(
        "/emailverification", json={"emails": "al@x.com", "user_indicated": "alice"}, headers=auth
    )

    response = await client.post(
        "/emailindication", json={"user_indicator": "alice", "emails": "AL@x.com"}, headers=auth
    )

    assert verified.json() == [{"al@x.com": "carol"}]
    assert response.status_code == 422
    assert response.json() == {
        "error": "al@x.com is alice's own address: a user cannot refer themselves"
    }


async def test_a_new_user_cannot_verify_an_address_they_indicated_themselves(client, auth):
    await client.post(
        "/emailindication", json={"user_indicator": "alice", "emails": "me@x.com"}, headers=auth
    )

    response = await client.post(
        "/emailverification", json={"emails": "me@x.com", "user_indicated": "alice"}, headers=auth
    )

    assert response.status_code == 422
    assert "cannot refer themselves" in response.json()["error"]


async def test_an_address_is_verified_for_one_referred_user_only(client, auth, database):
    await client.post(
        "/emailindication", json={"user_indicator": "alice", "emails": "bob@x.com"}, headers=auth
    )
    body = {"emails": "bob@x.com", "user_indicated": "bob"}

    first = await client.post("/emailverification", json=body, headers=auth)
    again = await client.post("/emailverification", data=body, headers=auth)
    other = await client.post(
        "/emailverification", json={**body, "user_indicated": "mallory"}, headers=auth
    )

    assert first.json() == again.json() == [{"bob@x.com": "alice"}]
    assert other.status_code == 409
    assert other.json() == {"error": "bob@x.com was verified for another user already"}


async def test_a_verification_naming_no_user_binds_nothing(client, auth):
    await client.post(
        "/emailindication", json={"user_indicator": "alice", "emails": "bob@x.com"}, headers=auth
    )

    plain = await client.post("/emailverification", json={"emails": "bob@x.com"}, headers=auth)
    bound = await client.post(
        "/emailverification", json={"emails": "bob@x.com", "user_indicated": "bob"}, headers=auth
    )

    assert plain.json() == bound.json() == [{"bob@x.com": "alice"}]


# the hold


async def test_a_programs_hold_is_set_changed_and_kept_in_range(client, auth):
    created = await client.post(
        "/v1/referral-programs",
        json={"name": "F", "credit_value": 1, "target_value": 5, "reward_hold_days": 14},
        headers=auth,
    )
    path = f"/v1/referral-programs/{created.json()['id']}"
    changed = await client.patch(path, json={"reward_hold_days": 0}, headers=auth)
    refused = [
        await client.patch(path, json={"reward_hold_days": days}, headers=auth)
        for days in (-1, 3651, 1.5, "7")
    ]

    assert created.json()["reward_hold_days"] == 14
    assert changed.json()["reward_hold_days"] == 0
    assert [r.status_code for r in refused] == [422] * 4


async def test_without_a_hold_the_reward_is_granted_at_once(client, auth, database, clock):
    await held(database, clock, days=0)

    paid = await pay(client, auth, 100)

    assert (paid["acquired_credit"], paid["pending_credit"]) == (100, 0)
    assert paid["referral"]["reward_status"] == "granted"
    assert await statement(client, auth) == {
        "potential_credit": 0,
        "pending_credit": 0,
        "acquired_credit": 100,
    }


async def test_a_held_reward_is_pending_until_the_hold_ends_then_granted(
    client, auth, database, clock
):
    await held(database, clock, days=30)

    paid = await pay(client, auth, 100)
    pending = await statement(client, auth)
    clock.advance(days=30)
    granted = await statement(client, auth)
    referral = await client.get("/v1/referrals/bob", headers=auth)

    assert (paid["acquired_credit"], paid["pending_credit"]) == (0, 100)
    assert paid["referral"]["reward_status"] == "pending"
    assert pending == {"potential_credit": 100, "pending_credit": 100, "acquired_credit": 0}
    assert granted == {"potential_credit": 0, "pending_credit": 0, "acquired_credit": 100}
    assert referral.json()["reward_status"] == "granted"


async def test_the_seed_invoice_reads_a_held_reward_as_not_acquired_yet(
    client, auth, database, clock
):
    await held(database, clock)

    response = await client.put("/invoice/user/bob/", json={"total_amount_paid": 100}, headers=auth)

    assert response.json() == {"acquired_credit": 0}


async def test_a_referral_keeps_the_hold_it_was_made_under(client, auth, database, clock):
    program = await make_program(database, now=clock(), reward_hold_days=30)
    await make_referral(database, now=clock(), referrer="alice", referred="bob", program=program)
    await client.patch(
        f"/v1/referral-programs/{program.id}", json={"reward_hold_days": 0}, headers=auth
    )

    paid = await pay(client, auth, 100)

    assert paid["referral"]["reward_hold_days"] == 30
    assert paid["referral"]["reward_status"] == "pending"


async def test_a_held_reward_is_announced_pending_and_its_callback_is_due_at_the_grant(
    client, auth, database, clock
):
    await held(database, clock, days=30)
    start = clock()

    paid = await pay(client, auth, 100)

    events = await events_of(database)
    assert [e.event_type for e in events] == [
        "referral.signed_up",
        "referral.reward_pending",
        "referral.rewarded",
    ]
    assert events[1].payload["amount"] == 100
    granted_at = datetime.fromisoformat(paid["referral"]["granted_at"])
    assert datetime.fromisoformat(events[1].payload["granted_at"]) == granted_at
    [callback] = await referrer_callbacks(database)
    assert callback.status == "pending"
    assert (callback.next_attempt_at - start).days == 30
    async with database.begin() as conn:
        due = (
            await conn.execute(
                select(func.count()).where(
                    webhook_deliveries.c.event_id == select(func.max(outbox.c.id)).scalar_subquery()
                )
            )
        ).scalar_one()
    assert due == 1


# refunds


async def test_a_refund_below_the_target_voids_a_pending_reward(client, auth, database, clock):
    await held(database, clock, days=30)
    await pay(client, auth, 100)
    clock.advance(days=3)

    response = await refund(client, auth, 30)
    clock.advance(days=30)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["reversal"], body["reversed_credit"], body["total_amount_paid"]) == (
        "voided",
        100,
        70,
    )
    assert body["referral"]["reward_status"] == "voided"
    assert await statement(client, auth) == {
        "potential_credit": 0,
        "pending_credit": 0,
        "acquired_credit": 0,
    }
    # The billing side never hears of a reward that was never granted.
    assert [c.status for c in await referrer_callbacks(database)] == ["cancelled"]
    reversed_event = (await events_of(database))[-1]
    assert reversed_event.event_type == "referral.reward_reversed"
    assert reversed_event.payload["reversal"] == "voided"


async def test_a_refund_below_the_target_claws_back_a_granted_reward(client, auth, database, clock):
    await held(database, clock, days=30)
    await pay(client, auth, 100)
    clock.advance(days=31)

    response = await refund(client, auth, "0.01")

    body = response.json()
    assert (body["reversal"], body["reversed_credit"], body["total_amount_paid"]) == (
        "clawback",
        100,
        99.99,
    )
    assert body["referral"]["reward_status"] == "reversed"
    assert await statement(client, auth) == {
        "potential_credit": 0,
        "pending_credit": 0,
        "acquired_credit": 0,
    }
    assert await ledger_kinds(database) == {
        "signup": 1,
        "potential": 1,
        "acquired": 1,
        "clawback": 1,
    }
    assert (await events_of(database))[-1].payload["reversal"] == "clawback"


async def test_a_reward_is_reversed_once_and_the_total_never_goes_below_zero(
    client, auth, database, clock
):
    await held(database, clock, days=0)
    await pay(client, auth, 100)

    first = await refund(client, auth, 60)
    second = await refund(client, auth, 60)
    repaid = await pay(client, auth, 150)

    assert first.json()["reversal"] == "clawback"
    assert (second.json()["reversal"], second.json()["total_amount_paid"]) == (None, 0)
    # A reversed reward is final: paying the target again earns nothing.
    assert repaid["acquired_credit"] == 0
    assert (await statement(client, auth))["acquired_credit"] == 0
    assert (await ledger_kinds(database))["clawback"] == 1


async def test_a_refund_that_leaves_the_target_reached_reverses_nothing(
    client, auth, database, clock
):
    await held(database, clock, days=0)
    await pay(client, auth, 150)

    response = await refund(client, auth, 50)

    assert (response.json()["reversal"], response.json()["total_amount_paid"]) == (None, 100)
    assert (await statement(client, auth))["acquired_credit"] == 100


async def test_a_refund_before_the_target_only_lowers_the_total(client, auth, database, clock):
    await held(database, clock)
    await pay(client, auth, 40)

    response = await refund(client, auth, 10)
    paid = await pay(client, auth, 100)

    assert (response.json()["reversal"], response.json()["total_amount_paid"]) == (None, 30)
    assert paid["pending_credit"] == 100


async def test_a_refund_of_an_unknown_user_or_a_bad_amount_is_refused(
    client, auth, database, clock
):
    await held(database, clock)

    unknown = await refund(client, auth, 10, user="nobody")
    referrer = await refund(client, auth, 10, user="alice")
    bad = [await refund(client, auth, amount) for amount in (0, -1, "1.001", 10**9)]

    assert (unknown.status_code, unknown.json()["error"]["code"]) == (
        404,
        "referral_user_not_found",
    )
    assert referrer.status_code == 404
    assert [r.status_code for r in bad] == [422] * 4


async def test_a_refund_sent_again_with_its_key_returns_the_first_and_lowers_nothing(
    client, auth, database, clock
):
    await held(database, clock, days=0)
    await pay(client, auth, 100)

    first = await refund(client, auth, 30, key="refund-1")
    again = await refund(client, auth, 30, key="refund-1")
    other = await refund(client, auth, 30, key="refund-2")

    assert first.status_code == again.status_code == 200
    assert first.json()["reversal"] == "clawback"
    assert {k: v for k, v in again.json().items() if k != "referral"} == {
        k: v for k, v in first.json().items() if k != "referral"
    }
    assert other.json()["id"] != first.json()["id"]
    assert other.json()["total_amount_paid"] == 40
    assert (await ledger_kinds(database))["clawback"] == 1


async def test_a_refund_key_sent_with_another_amount_is_refused(client, auth, database, clock):
    await held(database, clock)
    await pay(client, auth, 50)
    await refund(client, auth, 10, key="refund-1")

    response = await refund(client, auth, 20, key="refund-1")

    assert (response.status_code, response.json()["error"]["code"]) == (
        409,
        "idempotency_key_reused",
    )
    assert (await pay(client, auth, 40))["total_amount_paid"] == 40


async def test_a_refund_key_is_per_referred_user(client, auth, database, clock):
    await held(database, clock)
    await make_referral(database, now=clock(), referrer="alice", referred="carol")
    await pay(client, auth, 50)
    await pay(client, auth, 50, user="carol")

    bob = await refund(client, auth, 10, key="refund-1")
    carol = await refund(client, auth, 10, user="carol", key="refund-1")

    assert bob.json()["total_amount_paid"] == carol.json()["total_amount_paid"] == 40


async def test_the_ledger_lists_the_hold_and_the_void(client, auth, database, clock):
    await held(database, clock, days=30)
    await pay(client, auth, 100)
    await refund(client, auth, 100)

    ledger = (await client.get("/v1/referral-users/alice/credits", headers=auth)).json()

    entries = [(e["kind"], e["amount"]) for e in ledger["items"]]
    assert entries == [("potential", 100), ("acquired", 100), ("voided", 100)]
    assert ledger["items"][1]["available_at"] == ledger["items"][2]["available_at"]


# real concurrency (PostgreSQL)


@pytest.mark.postgres_only
@pytest.mark.parametrize("days", [0, 30])
async def test_refunds_racing_the_reward_leave_the_ledger_right(
    client, auth, database, clock, days
):
    await make_program(database, now=clock(), target_value=Decimal(100), reward_hold_days=days)
    users = [f"user-{n}" for n in range(10)]
    for user in users:
        await make_referral(database, now=clock(), referrer="alice", referred=user)
    await warm(database)

    answers = await asyncio.gather(
        *(
            call
            for user in users
            for call in (
                *(
                    client.put(
                        f"/v1/referral-users/{user}/payments",
                        json={"total_amount_paid": 100 + n},
                        headers=auth,
                    )
                    for n in range(4)
                ),
                *(refund(client, auth, 5, user=user) for _ in range(4)),
            )
        )
    )

    assert Counter(a.status_code for a in answers) == {200: 80}
    async with database.begin() as conn:
        referrals = {r.referred: r for r in await _referrals(conn, users)}
        ledger = Counter(
            (row.kind, row.referral_id)
            for row in await conn.execute(
                select(referral_credits.c.kind, referral_credits.c.referral_id)
            )
        )
        kept = await service.statement(conn, "alice", now=clock())
    earned = [r for r in referrals.values() if r.rewarded_at is not None]
    undone = [r for r in earned if r.reversed_at is not None]
    # Each reward earned once, reversed at most once, and only if earned.
    assert all(n == 1 for n in ledger.values())
    assert sum(1 for kind, _ in ledger if kind == "acquired") == len(earned)
    reversals = sum(1 for kind, _ in ledger if kind in {"voided", "clawback"})
    assert reversals == len(undone)
    kept_rewards = Decimal(100) * (len(earned) - len(undone))
    assert kept.acquired_credit + kept.pending_credit == kept_rewards
    assert kept.potential_credit == Decimal(100) * (len(users) - len(earned)) + kept.pending_credit
    assert all(r.total_amount_paid >= 0 for r in referrals.values())
    assert earned, "no payment won a race"


@pytest.mark.postgres_only
async def test_retries_of_a_refund_racing_each_other_lower_the_total_once(
    client, auth, database, clock
):
    await held(database, clock, days=0)
    await pay(client, auth, 100)
    await warm(database)

    answers = await asyncio.gather(*(refund(client, auth, 30, key="refund-1") for _ in range(20)))

    assert Counter(a.status_code for a in answers) == {200: 20}
    assert {a.json()["id"] for a in answers} == {answers[0].json()["id"]}
    assert {a.json()["total_amount_paid"] for a in answers} == {70}
    assert (await ledger_kinds(database))["clawback"] == 1
    async with database.begin() as conn:
        referral = await service.get_referral(conn, "bob")
    assert referral.total_amount_paid == 70


async def _referrals(conn: Any, users: list[str]) -> list[service.Referral]:
    return [await service.get_referral(conn, user) for user in users]


@pytest.mark.postgres_only
async def test_users_racing_to_verify_one_address_leave_it_to_one(client, auth, database):
    await client.post(
        "/emailindication", json={"user_indicator": "alice", "emails": "new@x.com"}, headers=auth
    )
    await warm(database)

    answers = await asyncio.gather(
        *(
            client.post(
                "/emailverification",
                json={"emails": "new@x.com", "user_indicated": f"user-{n}"},
                headers=auth,
            )
            for n in range(20)
        )
    )

    assert Counter(a.status_code for a in answers) == {200: 1, 409: 19}
    async with database.begin() as conn:
        owners = (await conn.execute(select(email_indications.c.verified_for))).scalars().all()
    winner = next(n for n, a in enumerate(answers) if a.status_code == 200)
    assert owners == [f"user-{winner}"]
