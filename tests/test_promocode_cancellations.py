"""Cancelling promo code uses: a redemption rolled back by its id, or an order cancelled,
and whether the use comes back (``reusable_after_cancel``, per generation or per code)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from promos.db import Database
from promos.events import service as events
from promos.promocodes import service
from tests.factories.promocodes import make_promocode
from tests.test_promocode_holds import HOLDS, PROMOCODES, event_data, take, uses_left


@pytest.fixture(params=[True, False], ids=["fast_path", "fastapi"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Each test runs on the lean routes (promos.promocodes.fast) and on their FastAPI twins."""
    return bool(request.param)


USE = {"customer": "user@example.com", "products": []}


async def redeem(client, auth, code: str) -> dict[str, Any]:
    response = await client.post(f"{PROMOCODES}/{code}/redeem", json=USE, headers=auth)
    assert response.status_code == 201, response.text
    redemption: dict[str, Any] = response.json()
    return redemption


async def confirmed_hold(client, auth, code: str, order: str) -> dict[str, Any]:
    held = (await take(client, auth, code, order)).json()
    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)
    assert response.status_code == 200, response.text
    redemption: dict[str, Any] = response.json()
    return redemption


def rollback(client, auth, redemption_id: int) -> Any:
    return client.post(f"/v1/redemptions/{redemption_id}/rollback", headers=auth)


def cancel(client, auth, order: str) -> Any:
    return client.post(f"/v1/promocode-orders/{order}/cancel", headers=auth)


# the policy


async def test_a_generation_gives_cancelled_uses_back_unless_told_otherwise(
    client, database, clock, auth
):
    made = await client.post(
        PROMOCODES, json={"pattern": "A-####", "discount_percentage": 5}, headers=auth
    )
    code = made.json()["codes"][0]

    shown = (await client.get(f"{PROMOCODES}/{code}", headers=auth)).json()

    assert made.json()["generation"]["reusable_after_cancel"] is True
    assert shown["reusable_after_cancel"] is True


async def test_a_rollback_gives_the_use_back_by_default(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    redemption = await redeem(client, auth, code)

    response = await rollback(client, auth, redemption["id"])

    assert response.status_code == 200
    assert response.json()["use_given_back"] is True
    assert response.json()["usage_count"] == 3


async def test_a_rollback_keeps_the_use_used_when_the_generation_says_so(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=1, reusable_after_cancel=False)
    redemption = await redeem(client, auth, code)

    response = await rollback(client, auth, redemption["id"])
    again = await client.post(f"{PROMOCODES}/{code}/redeem", json=USE, headers=auth)

    assert response.status_code == 200
    assert response.json()["rolled_back_at"] is not None
    assert response.json()["use_given_back"] is False
    assert await uses_left(database, code) == 0
    assert again.status_code == 409


async def test_a_codes_own_policy_overrides_its_generations(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1, reusable_after_cancel=False)
    patched = await client.patch(
        f"{PROMOCODES}/{code}", json={"reusable_after_cancel": True}, headers=auth
    )
    redemption = await redeem(client, auth, code)

    response = await rollback(client, auth, redemption["id"])

    assert patched.status_code == 200, patched.text
    assert patched.json()["reusable_after_cancel"] is True
    assert response.json()["use_given_back"] is True
    assert await uses_left(database, code) == 1


async def test_a_code_without_its_own_policy_follows_its_generation_again(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), reusable_after_cancel=False)
    await client.patch(f"{PROMOCODES}/{code}", json={"reusable_after_cancel": True}, headers=auth)

    patched = await client.patch(
        f"{PROMOCODES}/{code}", json={"reusable_after_cancel": None}, headers=auth
    )

    assert patched.json()["reusable_after_cancel"] is False


async def test_setting_the_policy_of_an_unknown_code_is_not_found(client, auth):
    response = await client.patch(
        f"{PROMOCODES}/NO-SUCH", json={"reusable_after_cancel": True}, headers=auth
    )

    assert response.status_code == 404


async def test_the_rollback_event_says_whether_the_use_came_back(client, database, clock, auth):
    async with database.begin() as conn:
        await events.create_subscription(
            conn, url="https://hooks.example.com/p", event_types=["*"], secret="s", now=clock()
        )
    code = await make_promocode(database, now=clock(), reusable_after_cancel=False)
    redemption = await redeem(client, auth, code)

    await rollback(client, auth, redemption["id"])

    [event] = await event_data(database, "promocode.redeem_rolled_back")
    assert event["use_given_back"] is False
    assert event["uses_left"] == 2


# cancelling an order


async def test_cancelling_an_order_releases_its_holds_and_rolls_back_its_redemptions(
    client, database, clock, auth
):
    first = await make_promocode(database, now=clock(), usage_count=2)
    second = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await confirmed_hold(client, auth, first, "order-9")
    held = (await take(client, auth, second, "order-9")).json()
    other = (await take(client, auth, second, "order-10")).json()

    response = await cancel(client, auth, "order-9")

    assert response.status_code == 200, response.text
    done = response.json()
    assert done["order"] == "order-9"
    assert [(h["id"], h["status"]) for h in done["holds"]] == [(held["id"], "released")]
    assert [(r["id"], r["use_given_back"]) for r in done["redemptions"]] == [
        (redemption["id"], True)
    ]
    assert await uses_left(database, first) == 2
    assert await uses_left(database, second) == 1  # order-10 still holds one
    assert (await client.get(f"{HOLDS}/{other['id']}", headers=auth)).json()["status"] == "held"


async def test_cancelling_an_order_follows_each_codes_policy(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2, reusable_after_cancel=False)
    await confirmed_hold(client, auth, code, "order-1")

    done = (await cancel(client, auth, "order-1")).json()

    assert [r["use_given_back"] for r in done["redemptions"]] == [False]
    assert await uses_left(database, code) == 1


async def test_cancelling_an_order_again_changes_nothing(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    await confirmed_hold(client, auth, code, "order-1")
    await cancel(client, auth, "order-1")

    again = await cancel(client, auth, "order-1")

    assert again.status_code == 200
    assert again.json() == {"order": "order-1", "holds": [], "redemptions": []}
    assert await uses_left(database, code) == 2


async def test_cancelling_an_unknown_order_is_not_found(client, auth):
    response = await cancel(client, auth, "order-unknown")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "order_not_found"


async def test_cancelling_an_order_whose_hold_lapsed_gives_its_use_back_once(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=1)
    await take(client, auth, code, "order-1", ttl_seconds=60)
    clock.advance(seconds=60)

    done = (await cancel(client, auth, "order-1")).json()

    assert [h["status"] for h in done["holds"]] == ["expired"]
    assert await uses_left(database, code) == 1


# real concurrency


@pytest.mark.postgres_only
async def test_concurrent_cancels_of_an_order_give_each_use_back_once(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=3)
    await confirmed_hold(client, auth, code, "order-1")
    other = await make_promocode(database, now=clock(), usage_count=3)
    await take(client, auth, other, "order-1")

    responses = await asyncio.gather(*(cancel(client, auth, "order-1") for _ in range(10)))

    assert {r.status_code for r in responses} == {200}
    assert sum(len(r.json()["redemptions"]) for r in responses) == 1
    assert await uses_left(database, code) == 3
    assert await uses_left(database, other) == 3


@pytest.mark.postgres_only
async def test_a_cancel_racing_a_confirm_leaves_the_use_given_back(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code, "order-1")).json()

    confirm, cancelled = await asyncio.gather(
        client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth), cancel(client, auth, "order-1")
    )

    assert cancelled.status_code == 200, cancelled.text
    assert confirm.status_code in {200, 409}
    assert await uses_left(database, code) == 1
    if confirm.status_code == 200:
        async with database.begin() as conn:
            found = await service.get_redemption(conn, held["id"])
        assert found.rolled_back_at is not None


async def deadlocks(database: Database) -> int:
    """The deadlocks PostgreSQL has counted in the test's database (as its backends report
    them: at the end of a transaction, at most once a second)."""
    async with database.begin() as conn:
        found = await conn.execute(
            text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        )
        return int(found.scalar_one())


async def _after(seconds: float, request: Any) -> Any:
    await asyncio.sleep(seconds)
    return await request


@pytest.mark.postgres_only
async def test_cancels_racing_redeems_of_their_codes_sent_together_never_deadlock(
    client, database, clock, auth
):
    # Each order held its higher code first: its cancel releases the holds in id order, the
    # codes' reverse, while a group of redeems locks the codes in id order. Each round sends
    # the redeems a little later, so that some arrive while the cancel is half done. A
    # deadlock's loser would be retried (a group) or answer 500 (a cancel), a second later:
    # PostgreSQL counts them.
    deadlocks_before = await deadlocks(database)
    for n in range(12):
        low = await make_promocode(database, now=clock(), usage_count=10)
        high = await make_promocode(database, now=clock(), usage_count=10)
        await take(client, auth, high, f"order-{n}")
        await take(client, auth, low, f"order-{n}")

        responses = await asyncio.gather(
            cancel(client, auth, f"order-{n}"),
            *(
                _after(n / 2000, client.post(f"{PROMOCODES}/{c}/redeem", json=USE, headers=auth))
                for c in (low, high) * 3
            ),
        )

        assert [r.status_code for r in responses] == [200] + [201] * 6
        assert await uses_left(database, low) == await uses_left(database, high) == 7
    assert await deadlocks(database) == deadlocks_before
