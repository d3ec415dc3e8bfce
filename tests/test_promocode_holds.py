"""Promo code holds through the native API: taking a use for an order for a while, then
confirming it (a redemption with the hold's id), releasing it, or letting it lapse.

Expiry is driven by the injected clock; the races run on PostgreSQL only, with real
concurrency.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from promos.db import Database
from promos.events import service as events
from promos.events.outbox import event_time
from promos.events.tables import outbox
from promos.promocodes import carts, holds, lean, service
from promos.promocodes.tables import promocode_holds, promocode_redemptions
from promos.settings import Settings
from tests.conftest import FakeClock
from tests.factories.promocodes import make_promocode


@pytest.fixture(params=[True, False], ids=["fast_path", "fastapi"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Each test runs on the lean routes (promos.promocodes.fast) and on their FastAPI twins."""
    return bool(request.param)


PROMOCODES = "/v1/promocodes"
HOLDS = "/v1/promocode-holds"
OTHER_USE = {"customer": "b@example.com", "products": []}


def hold_body(
    order: str = "order-1",
    customer: str = "user@example.com",
    products: list[str] | None = None,
    ttl_seconds: int | None = 600,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer": customer,
        "order": order,
        "products": products if products is not None else [],
    }
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    return body


def take(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    code: str,
    order: str = "order-1",
    *,
    key: str | None = None,
    **body: Any,
) -> Any:
    """One hold request (a coroutine, to be awaited or gathered)."""
    headers = auth if key is None else {**auth, "Idempotency-Key": key}
    return client.post(f"{PROMOCODES}/{code}/holds", json=hold_body(order, **body), headers=headers)


async def uses_left(database: Database, code: str) -> int:
    """The stored uses left: what the next taker finds before giving lapsed holds back."""
    async with database.begin() as conn:
        return (await service.get_promocode(conn, code)).usage_count


async def hold_statuses(database: Database) -> Counter[str]:
    async with database.begin() as conn:
        return Counter((await conn.execute(select(promocode_holds.c.status))).scalars())


async def redemption_count(database: Database) -> int:
    async with database.begin() as conn:
        return (
            await conn.execute(select(func.count()).select_from(promocode_redemptions))
        ).scalar_one()


async def subscribe_all(database: Database, clock: FakeClock) -> None:
    async with database.begin() as conn:
        await events.create_subscription(
            conn, url="https://hooks.example.com/promos", event_types=["*"], secret="s", now=clock()
        )


async def event_data(database: Database, event_type: str) -> list[dict[str, Any]]:
    async with database.begin() as conn:
        rows = await conn.execute(
            select(outbox.c.payload).where(outbox.c.event_type == event_type).order_by(outbox.c.id)
        )
        return list(rows.scalars())


# taking a hold


async def test_a_hold_takes_one_use_until_it_expires(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)

    response = await take(client, auth, code, ttl_seconds=600)

    assert response.status_code == 201, response.text
    held = response.json()
    assert held["status"] == "held"
    assert held["order"] == "order-1"
    assert held["usage_count"] == 2
    assert held["expires_at"] == "2026-03-01T12:10:00Z"
    assert await uses_left(database, code) == 2


async def test_a_hold_lasts_at_most_the_configured_longest(client, database, clock, auth, state):
    code = await make_promocode(database, now=clock())
    state.settings.promocode_hold_max_seconds = 120

    held = (await take(client, auth, code, ttl_seconds=3600)).json()

    assert held["expires_at"] == "2026-03-01T12:02:00Z"


async def test_a_hold_without_a_ttl_lasts_fifteen_minutes(client, database, clock, auth):
    code = await make_promocode(database, now=clock())

    held = (await take(client, auth, code, ttl_seconds=None)).json()

    assert held["expires_at"] == "2026-03-01T12:15:00Z"


REFUSALS = {
    "used up": ({"usage_count": 1}, {}, 409, "promocode_used_up"),
    "bound": ({"usage_by": "owner@example.com"}, {}, 403, "promocode_not_for_customer"),
    "products": (
        {"products": ("SKU-1",)},
        {"products": ["SKU-2"]},
        403,
        "promocode_not_for_products",
    ),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
async def test_a_hold_is_refused_for_the_reasons_a_redemption_is(
    client, database, clock, auth, refusal
):
    overrides, body, status, error = refusal
    code = await make_promocode(database, now=clock(), **overrides)
    if overrides.get("usage_count") == 1:
        assert (await take(client, auth, code, "order-0")).status_code == 201

    response = await take(client, auth, code, "order-2", **body)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == error


async def test_holds_sent_together_take_the_code_s_uses_one_after_another(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=5)

    # Sent together, the lean path takes them in one statement (lean.hold_group).
    responses = await asyncio.gather(*(take(client, auth, code, f"order-{n}") for n in range(3)))

    assert [r.status_code for r in responses] == [201, 201, 201]
    assert sorted(r.json()["usage_count"] for r in responses) == [2, 3, 4]
    assert await uses_left(database, code) == 2


async def test_holds_sent_together_are_each_judged_on_their_own(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3, products=("SKU-1",))

    fits, misfits, fits_too = await asyncio.gather(
        take(client, auth, code, "order-1", products=["SKU-1"]),
        take(client, auth, code, "order-2", products=["SKU-2"]),
        take(client, auth, code, "order-3", products=["SKU-2", "SKU-1"]),
    )

    assert (fits.status_code, fits_too.status_code) == (201, 201)
    assert misfits.status_code == 403
    assert misfits.json()["error"]["code"] == "promocode_not_for_products"
    assert await uses_left(database, code) == 1


async def test_holds_sent_together_record_each_its_cart_and_event(client, database, clock, auth):
    await subscribe_all(database, clock)
    code = await make_promocode(
        database, now=clock(), usage_count=3, products=("SKU-A", "SKU-B", "SKU-C")
    )

    one, two = await asyncio.gather(
        take(client, auth, code, "order-1", products=["SKU-A"]),
        take(client, auth, code, "order-2", products=["SKU-C", "SKU-B", "SKU-C"]),
    )

    held = await event_data(database, "promocode.held")
    answers = [one.json(), two.json()]
    assert sorted((e["hold_id"], e["order"], e["uses_left"]) for e in held) == sorted(
        (a["id"], a["order"], a["usage_count"]) for a in answers
    )
    async with database.begin() as conn:
        assert await carts.cart_of(conn, answers[0]["id"]) == ("SKU-A",)
        assert await carts.cart_of(conn, answers[1]["id"]) == ("SKU-B", "SKU-C")


async def test_a_hold_of_an_expired_code_is_refused_as_gone(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), expires_in=date(2026, 3, 1))
    clock.advance(days=1)

    response = await take(client, auth, code)

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "promocode_expired"


async def test_a_hold_of_an_unknown_code_is_not_found(client, auth):
    response = await take(client, auth, "NO-SUCH-CODE")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "promocode_not_found"


async def test_a_held_use_is_not_redeemable_by_anybody_else(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    await take(client, auth, code)

    redeem = await client.post(f"{PROMOCODES}/{code}/redeem", json=OTHER_USE, headers=auth)
    decrement = await client.get(f"/promocodes/decrement/{code}", headers=auth)

    assert redeem.status_code == 409
    assert decrement.status_code != 200
    assert await uses_left(database, code) == 0


# asking again


async def test_the_same_order_asking_again_gets_the_same_hold(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)

    first = (await take(client, auth, code)).json()
    again = await take(client, auth, code)

    assert again.status_code == 201
    assert again.json()["id"] == first["id"]
    assert await uses_left(database, code) == 2


async def test_the_same_order_asking_again_for_its_last_use_gets_its_hold(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=1)
    first = (await take(client, auth, code)).json()

    again = await take(client, auth, code)

    assert again.status_code == 201
    assert again.json()["id"] == first["id"]


async def test_a_retry_with_the_same_key_gets_the_same_hold(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)

    first = (await take(client, auth, code, key="k-1")).json()
    again = (await take(client, auth, code, key="k-1")).json()

    assert again["id"] == first["id"]
    assert await uses_left(database, code) == 2


async def test_a_key_used_for_another_order_is_refused(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    await take(client, auth, code, "order-1", key="k-1")

    response = await take(client, auth, code, "order-2", key="k-1")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


async def test_an_order_held_for_another_customer_is_refused(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    await take(client, auth, code, "order-1", customer="a@example.com")

    response = await take(client, auth, code, "order-1", customer="b@example.com")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_held_for_another_customer"
    assert await uses_left(database, code) == 2


async def test_an_order_asking_after_its_hold_lapsed_gets_a_new_hold(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    first = (await take(client, auth, code, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    again = await take(client, auth, code)

    assert again.status_code == 201
    assert again.json()["id"] != first["id"]
    assert again.json()["status"] == "held"
    assert await hold_statuses(database) == {"expired": 1, "held": 1}


# confirming


async def test_a_confirmed_hold_is_a_redemption_with_its_id(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    held = (await take(client, auth, code)).json()
    clock.advance(seconds=30)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 200, response.text
    redemption = response.json()
    assert redemption["id"] == held["id"]
    assert redemption["customer"] == "user@example.com"
    assert redemption["usage_count"] == 2
    assert (await client.get(f"{HOLDS}/{held['id']}", headers=auth)).json()["status"] == (
        "confirmed"
    )
    assert await uses_left(database, code) == 2


async def test_confirming_twice_gives_the_same_redemption(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    held = (await take(client, auth, code)).json()

    first = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)
    second = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert second.status_code == 200
    assert second.json() == first.json()
    assert await redemption_count(database) == 1


async def test_held_and_redeemed_ids_never_clash(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=10)
    use = {"customer": "user@example.com", "products": []}
    held = (await take(client, auth, code, "order-1")).json()
    redeemed = (await client.post(f"{PROMOCODES}/{code}/redeem", json=use, headers=auth)).json()
    other = (await take(client, auth, code, "order-2")).json()

    confirmed = [
        (await client.post(f"{HOLDS}/{h['id']}/confirm", headers=auth)).json()["id"]
        for h in (held, other)
    ]

    assert len({held["id"], redeemed["id"], other["id"]}) == 3
    assert confirmed == [held["id"], other["id"]]
    assert await redemption_count(database) == 3


async def test_a_confirmed_hold_is_rolled_back_as_a_redemption(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    held = (await take(client, auth, code)).json()
    await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    response = await client.post(f"/v1/redemptions/{held['id']}/rollback", headers=auth)

    assert response.status_code == 200, response.text
    assert await uses_left(database, code) == 3


async def test_a_lapsed_hold_is_not_confirmed(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    held = (await take(client, auth, code, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "hold_expired"
    assert "2026-03-01T12:01:00" in error["message"]
    assert await redemption_count(database) == 0


async def test_confirms_sent_together_decide_each_hold_on_its_own(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    lapsing = (await take(client, auth, code, "order-1", ttl_seconds=60)).json()
    clock.advance(seconds=30)
    held = (await take(client, auth, code, "order-2", ttl_seconds=60)).json()
    clock.advance(seconds=30)

    # Sent together, the lean path confirms them in one statement (lean.confirm_group).
    lapsed, confirmed = await asyncio.gather(
        client.post(f"{HOLDS}/{lapsing['id']}/confirm", headers=auth),
        client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth),
    )

    assert lapsed.status_code == 410
    assert lapsed.json()["error"]["code"] == "hold_expired"
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["id"] == held["id"]
    assert await redemption_count(database) == 1


async def test_a_released_hold_is_not_confirmed(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    held = (await take(client, auth, code)).json()
    await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "hold_released"


async def test_a_late_confirm_takes_a_free_use_when_allowed(client, database, clock, auth, state):
    state.settings.promocode_hold_late_confirm = True
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code, ttl_seconds=60)).json()
    clock.advance(seconds=90)

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == held["id"]
    assert await uses_left(database, code) == 0
    assert await hold_statuses(database) == {"confirmed": 1}


async def test_a_late_confirm_is_refused_when_others_took_the_use(
    client, database, clock, auth, state
):
    state.settings.promocode_hold_late_confirm = True
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code, "order-1", ttl_seconds=60)).json()
    clock.advance(seconds=90)
    assert (await take(client, auth, code, "order-2")).status_code == 201

    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    assert response.status_code == 410
    assert "no use free" in response.json()["error"]["message"]
    assert await uses_left(database, code) == 0


async def test_confirming_an_unknown_hold_is_not_found(client, auth):
    response = await client.post(f"{HOLDS}/999999/confirm", headers=auth)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "hold_not_found"


# releasing and expiry


async def test_a_release_gives_the_use_back_at_once(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code)).json()

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)
    again = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert response.status_code == 200
    assert response.json()["status"] == "released"
    assert response.json()["usage_count"] == 1
    assert again.json() == response.json()
    assert await uses_left(database, code) == 1


async def test_a_release_counts_the_code_s_lapsed_holds_as_free(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    await take(client, auth, code, "order-1", ttl_seconds=60)
    held = (await take(client, auth, code, "order-2", ttl_seconds=600)).json()
    clock.advance(seconds=60)

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert response.status_code == 200
    assert response.json()["usage_count"] == 2  # its use back, and the lapsed hold's free
    assert await hold_statuses(database) == {"held": 1, "released": 1}  # nothing else ended


async def test_releasing_an_unknown_hold_is_not_found(client, auth):
    response = await client.post(f"{HOLDS}/999999/release", headers=auth)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "hold_not_found"


async def test_releasing_a_hold_id_out_of_range_is_not_found(client, auth):
    response = await client.post(f"{HOLDS}/99999999999999999999/release", headers=auth)

    assert response.status_code == 404


async def test_releasing_needs_a_credential(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code)).json()

    response = await client.post(f"{HOLDS}/{held['id']}/release")

    assert response.status_code == 401
    assert (await client.get(f"{HOLDS}/{held['id']}", headers=auth)).json()["status"] == "held"


async def test_a_confirmed_hold_is_not_released(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    held = (await take(client, auth, code)).json()
    await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "hold_confirmed"


async def test_a_lapsed_hold_use_is_free_to_the_next_redemption(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    await take(client, auth, code, ttl_seconds=60)
    clock.advance(seconds=60)

    response = await client.post(f"{PROMOCODES}/{code}/redeem", json=OTHER_USE, headers=auth)

    assert response.status_code == 201, response.text
    assert response.json()["usage_count"] == 0
    assert await hold_statuses(database) == {"expired": 1}


async def test_a_lapsed_hold_use_is_free_to_the_seeds_decrement(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    await take(client, auth, code, ttl_seconds=60)
    clock.advance(seconds=61)

    response = await client.get(f"/promocodes/decrement/{code}", headers=auth)

    assert response.status_code == 200, response.text
    assert await uses_left(database, code) == 0


async def test_readers_count_a_lapsed_hold_use_as_free(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    shown = (await client.get(f"{PROMOCODES}/{code}", headers=auth)).json()
    validated = await client.post(f"{PROMOCODES}/{code}/validate", json=OTHER_USE, headers=auth)
    seed = await client.get(f"/promocodes/getbycode/{code}")
    hold = (await client.get(f"{HOLDS}/{held['id']}", headers=auth)).json()

    assert shown["usage_count"] == 1
    assert validated.status_code == 200
    assert seed.status_code == 200
    assert hold["status"] == "expired"
    assert hold["usage_count"] == 1
    assert await hold_statuses(database) == {"held": 1}  # nothing written by reading


async def test_releasing_a_lapsed_hold_gives_its_use_back_once(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code, ttl_seconds=60)).json()
    clock.advance(seconds=60)

    response = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)
    again = await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert response.json()["status"] == "expired"
    assert again.json()["status"] == "expired"
    assert await uses_left(database, code) == 1


# events


async def test_holds_emit_held_released_and_expired_events(client, database, clock, auth):
    await subscribe_all(database, clock)
    code = await make_promocode(database, now=clock(), usage_count=2)
    first = (await take(client, auth, code, "order-1", ttl_seconds=60)).json()
    second = (await take(client, auth, code, "order-2", ttl_seconds=600)).json()
    await client.post(f"{HOLDS}/{second['id']}/release", headers=auth)
    clock.advance(seconds=60)
    third = (await take(client, auth, code, "order-1")).json()  # finds its lapsed hold first

    held = await event_data(database, "promocode.held")
    released = await event_data(database, "promocode.hold_released")
    expired = await event_data(database, "promocode.hold_expired")

    assert [e["hold_id"] for e in held] == [first["id"], second["id"], third["id"]]
    assert held[0] == {
        "hold_id": first["id"],
        "code": code,
        "customer": "user@example.com",
        "order": "order-1",
        "uses_left": 1,
        "held_at": "2026-03-01T12:00:00+00:00",
        "expires_at": "2026-03-01T12:01:00+00:00",
    }
    assert [(e["hold_id"], e["uses_left"]) for e in released] == [(second["id"], 1)]
    assert [(e["hold_id"], e["order"]) for e in expired] == [(first["id"], "order-1")]


async def test_a_release_emits_the_hold_as_it_was_and_when_it_ended(client, database, clock, auth):
    await subscribe_all(database, clock)
    code = await make_promocode(database, now=clock(), usage_count=2)
    clock.advance(microseconds=250)
    held = (await take(client, auth, code, "order-1", ttl_seconds=60)).json()
    clock.advance(seconds=30)

    await client.post(f"{HOLDS}/{held['id']}/release", headers=auth)

    assert await event_data(database, "promocode.hold_released") == [
        {
            "hold_id": held["id"],
            "code": code,
            "customer": "user@example.com",
            "order": "order-1",
            "uses_left": 2,
            "held_at": "2026-03-01T12:00:00.000250+00:00",
            "expires_at": "2026-03-01T12:01:00.000250+00:00",
            "released_at": "2026-03-01T12:00:30.000250+00:00",
        }
    ]


async def test_a_confirmed_hold_emits_a_redemption_event(client, database, clock, auth):
    await subscribe_all(database, clock)
    code = await make_promocode(database, now=clock(), usage_count=2)
    held = (await take(client, auth, code)).json()

    await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)

    redeemed = await event_data(database, "promocode.redeemed")
    assert [(e["redemption_id"], e["code"], e["uses_left"]) for e in redeemed] == [
        (held["id"], code, 1)
    ]


# real concurrency


@pytest.fixture
async def warm_pool(settings: Settings, database: Database) -> None:
    """Open the app's pooled connections up front, all at once, so that the requests race
    (tests/test_concurrency.py does the same)."""
    everyone_connected = asyncio.Barrier(settings.db_pool_size)

    async def hold_one() -> None:
        async with database.engine.connect() as conn:
            await conn.execute(select(1))
            await everyone_connected.wait()

    await asyncio.wait_for(
        asyncio.gather(*(hold_one() for _ in range(settings.db_pool_size))), timeout=10
    )
    lean = database.statements
    if settings.fast_path and lean is not None:
        # The lean path's own connections too, each held a moment so that all of them open.
        pause = text("SELECT pg_sleep(0.05)")
        together = (lean.fetch(pause, {}) for _ in range(settings.fast_path_connections))
        await asyncio.wait_for(asyncio.gather(*together), timeout=10)
        assert lean.connections == settings.fast_path_connections


async def live_uses(database: Database) -> int:
    """Uses taken and not given back: holds still held, and redemptions not rolled back."""
    async with database.begin() as conn:
        held = (
            await conn.execute(
                select(func.count())
                .select_from(promocode_holds)
                .where(promocode_holds.c.status == "held")
            )
        ).scalar_one()
        redeemed = (
            await conn.execute(
                select(func.count())
                .select_from(promocode_redemptions)
                .where(promocode_redemptions.c.rolled_back_at.is_(None))
            )
        ).scalar_one()
    return int(held + redeemed)


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_a_hundred_checkouts_racing_for_three_uses_get_exactly_three_holds(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=3)

    responses = await asyncio.gather(
        *(take(client, auth, code, f"order-{n}", customer=f"c{n}@example.com") for n in range(100))
    )

    assert Counter(r.status_code for r in responses) == {201: 3, 409: 97}
    assert await uses_left(database, code) == 0
    assert await hold_statuses(database) == {"held": 3}


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_lapsed_holds_give_their_uses_back_under_load_and_no_more(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=3)
    for n, ttl in enumerate((60, 60, 600)):
        assert (await take(client, auth, code, f"old-{n}", ttl_seconds=ttl)).status_code == 201
    clock.advance(seconds=60)
    use = {"customer": "r@example.com", "products": []}

    responses = await asyncio.gather(
        *(take(client, auth, code, f"new-{n}") for n in range(50)),
        *(client.post(f"{PROMOCODES}/{code}/redeem", json=use, headers=auth) for _ in range(20)),
    )

    assert Counter(r.status_code for r in responses) == {201: 2, 409: 68}
    new_holds = sum(r.status_code == 201 for r in responses[:50])
    assert await hold_statuses(database) == {"expired": 2, "held": 1 + new_holds}
    assert await live_uses(database) == 3
    assert await uses_left(database, code) == 0


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_a_late_confirm_racing_new_holds_for_the_lapsed_use_one_wins(
    client, database, clock, auth, state
):
    state.settings.promocode_hold_late_confirm = True
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code, "order-0", ttl_seconds=60)).json()
    clock.advance(seconds=60)

    confirm, *racers = await asyncio.gather(
        client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth),
        *(take(client, auth, code, f"order-{n}") for n in range(1, 21)),
    )

    won = [confirm.status_code == 200] + [r.status_code == 201 for r in racers]
    assert sum(won) == 1
    assert confirm.status_code in {200, 410}
    assert await live_uses(database) == 1
    assert await uses_left(database, code) == 0


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_confirms_and_releases_racing_for_one_hold_one_wins(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    held = (await take(client, auth, code)).json()

    responses = await asyncio.gather(
        *(
            client.post(f"{HOLDS}/{held['id']}/{action}", headers=auth)
            for _ in range(10)
            for action in ("confirm", "release")
        )
    )

    confirms, releases = responses[0::2], responses[1::2]
    confirmed = {r.status_code for r in confirms} == {200}
    released = {r.status_code for r in releases} == {200}
    assert confirmed != released
    loser = releases if confirmed else confirms
    assert {r.status_code for r in loser} == {409}
    assert await redemption_count(database) == (1 if confirmed else 0)
    assert await uses_left(database, code) == (0 if confirmed else 1)


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_concurrent_confirms_each_make_their_own_redemption_and_event(
    client, database, clock, auth
):
    await subscribe_all(database, clock)
    codes = [await make_promocode(database, now=clock(), usage_count=30) for _ in range(2)]
    taken = [
        (await take(client, auth, codes[n % 2], f"order-{n}", customer=f"c{n}@example.com")).json()
        for n in range(20)
    ]

    responses = await asyncio.gather(
        *(client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth) for held in taken)
    )

    assert [r.status_code for r in responses] == [200] * 20
    answers = [r.json() for r in responses]
    assert [(a["id"], a["customer"]) for a in answers] == [
        (held["id"], f"c{n}@example.com") for n, held in enumerate(taken)
    ]
    assert {a["usage_count"] for a in answers} == {20}
    redeemed = await event_data(database, "promocode.redeemed")
    assert sorted((e["redemption_id"], e["code"]) for e in redeemed) == sorted(
        (held["id"], codes[n % 2]) for n, held in enumerate(taken)
    )
    assert await redemption_count(database) == 20
    assert [await uses_left(database, code) for code in codes] == [20, 20]


@pytest.mark.postgres_only
@pytest.mark.usefixtures("warm_pool")
async def test_twenty_concurrent_holds_of_one_order_take_one_use(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)

    responses = await asyncio.gather(*(take(client, auth, code) for _ in range(20)))

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await uses_left(database, code) == 2


@pytest.mark.postgres_only
@pytest.mark.parametrize("statement", ["confirm", "release"])
async def test_a_confirm_or_release_finds_its_hold_by_its_id_however_many_are_held(
    client, database, clock, auth, statement
):
    code = await make_promocode(database, now=clock(), usage_count=300)
    taken = [(await take(client, auth, code, f"order-{n}")).json() for n in range(200)]
    sql = {"confirm": holds._CONFIRM, "release": lean._RELEASE}[statement]
    explain = text(f"EXPLAIN {sql.text}").bindparams(*sql._bindparams.values())
    params = {"hold_id": taken[-1]["id"], "now": clock(), "event_time": event_time(clock())}

    async with database.begin() as conn:
        # A scan of the whole table is as good on a table this small once it has been
        # analysed (a Citus coordinator runs autovacuum): the choice tested is between indexes.
        await conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = list((await conn.execute(explain, params)).scalars())

    # By the primary key, not by a walk of the held holds' partial index, which the planner
    # judges tiny on a table never analysed: a few index entries, however many are held.
    update = next(i for i, line in enumerate(plan) if "Update on promocode_holds" in line)
    assert "Index Scan using pk_promocode_holds" in plan[update + 1], "\n".join(plan)
