"""Partial returns of a promo code's redemption, by its id or by order: the products returned
are recorded; once none the code applies to is kept, the use ends as by a rollback, the code's
``reusable_after_cancel`` deciding whether it comes back.

The races run on PostgreSQL only, with real concurrency.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from promos.events import service as events
from promos.promocodes import service
from tests.factories.promocodes import make_promocode
from tests.test_promocode_holds import HOLDS, PROMOCODES, event_data, take, uses_left

CART = ["SKU-A", "SKU-B", "SKU-X"]


async def redeem(client, auth, code: str, products: list[str] | None = None) -> dict[str, Any]:
    body = {"customer": "user@example.com", "products": CART if products is None else products}
    response = await client.post(f"{PROMOCODES}/{code}/redeem", json=body, headers=auth)
    assert response.status_code == 201, response.text
    redemption: dict[str, Any] = response.json()
    return redemption


def give_back(client, auth, redemption_id: int, products: list[str], key: str | None = None) -> Any:
    headers = auth if key is None else {**auth, "Idempotency-Key": key}
    return client.post(
        f"/v1/redemptions/{redemption_id}/returns", json={"products": products}, headers=headers
    )


def give_back_order(client, auth, order: str, products: list[str], key: str | None = None) -> Any:
    headers = auth if key is None else {**auth, "Idempotency-Key": key}
    return client.post(
        f"/v1/promocode-orders/{order}/returns", json={"products": products}, headers=headers
    )


async def confirmed_hold(client, auth, code: str, order: str, products: list[str]) -> int:
    held = (await take(client, auth, code, order, products=products)).json()
    response = await client.post(f"{HOLDS}/{held['id']}/confirm", headers=auth)
    assert response.status_code == 200, response.text
    redemption_id: int = held["id"]
    return redemption_id


# by redemption


async def test_returning_some_products_keeps_the_use(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code)

    response = await give_back(client, auth, redemption["id"], ["SKU-A"])

    assert response.status_code == 200, response.text
    done = response.json()
    assert done["products"] == CART
    assert done["returned"] == ["SKU-A"]
    assert done["kept"] == ["SKU-B", "SKU-X"]
    assert done["returned_now"] == ["SKU-A"]
    assert done["use_stands"] is True
    assert done["redemption"]["rolled_back_at"] is None
    assert await uses_left(database, code) == 1


async def test_returning_every_product_gives_the_use_back(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code)
    await give_back(client, auth, redemption["id"], ["SKU-A", "SKU-X"])

    done = (await give_back(client, auth, redemption["id"], ["SKU-B"])).json()

    assert done["kept"] == []
    assert done["use_stands"] is False
    assert done["use_given_back"] is True
    assert done["redemption"]["rolled_back_at"] is not None
    assert await uses_left(database, code) == 2


async def test_the_use_ends_once_no_product_the_code_applies_to_is_kept(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=2, products=("SKU-A", "SKU-B"))
    redemption = await redeem(client, auth, code)
    kept = (await give_back(client, auth, redemption["id"], ["SKU-A"])).json()

    done = (await give_back(client, auth, redemption["id"], ["SKU-B"])).json()

    assert kept["use_stands"] is True
    assert done["kept"] == ["SKU-X"]
    assert done["use_stands"] is False
    assert await uses_left(database, code) == 2


async def test_a_return_that_ends_the_use_follows_the_codes_policy(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1, reusable_after_cancel=False)
    redemption = await redeem(client, auth, code)

    done = (await give_back(client, auth, redemption["id"], CART)).json()

    assert done["use_stands"] is False
    assert done["use_given_back"] is False
    assert await uses_left(database, code) == 0


async def test_returning_the_same_products_again_changes_nothing(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code)
    first = (await give_back(client, auth, redemption["id"], CART)).json()

    again = await give_back(client, auth, redemption["id"], ["SKU-A", "SKU-B"])

    assert again.status_code == 200, again.text
    assert again.json()["returned_now"] == []
    assert again.json()["use_given_back"] is True
    assert first["redemption"]["rolled_back_at"] == again.json()["redemption"]["rolled_back_at"]
    assert await uses_left(database, code) == 2


async def test_a_retry_with_the_same_key_changes_nothing(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code)
    await give_back(client, auth, redemption["id"], ["SKU-A"], key="r-1")

    again = await give_back(client, auth, redemption["id"], ["SKU-A"], key="r-1")
    reused = await give_back(client, auth, redemption["id"], ["SKU-B"], key="r-1")

    assert again.status_code == 200
    assert again.json()["returned"] == ["SKU-A"]
    assert again.json()["returned_now"] == []
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_returning_a_product_the_redemption_did_not_hold_is_refused(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock())
    redemption = await redeem(client, auth, code)

    response = await give_back(client, auth, redemption["id"], ["SKU-Z"])

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "product_not_in_redemption"


async def test_a_use_taken_without_products_stands_whatever_is_returned(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code, products=[])

    done = (await give_back(client, auth, redemption["id"], ["SKU-A"])).json()

    assert done["products"] == []
    assert done["returned"] == ["SKU-A"]
    assert done["use_stands"] is True
    assert await uses_left(database, code) == 1


async def test_a_rolled_back_redemption_has_nothing_more_to_return(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code)
    await client.post(f"/v1/redemptions/{redemption['id']}/rollback", headers=auth)

    response = await give_back(client, auth, redemption["id"], ["SKU-A"])

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "redemption_already_rolled_back"
    assert await uses_left(database, code) == 2


async def test_a_redemption_ended_by_a_return_cannot_be_rolled_back(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code)
    await give_back(client, auth, redemption["id"], CART)

    response = await client.post(f"/v1/redemptions/{redemption['id']}/rollback", headers=auth)

    assert response.status_code == 409
    assert await uses_left(database, code) == 2


async def test_returning_from_an_unknown_redemption_is_not_found(client, auth):
    response = await give_back(client, auth, 999_999, ["SKU-A"])

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "redemption_not_found"


async def test_a_redemptions_returns_are_read_back(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    redemption = await redeem(client, auth, code)
    await give_back(client, auth, redemption["id"], ["SKU-B"])

    response = await client.get(f"/v1/redemptions/{redemption['id']}/returns", headers=auth)

    assert response.status_code == 200
    assert response.json()["returned"] == ["SKU-B"]
    assert response.json()["kept"] == ["SKU-A", "SKU-X"]
    assert response.json()["returned_now"] == []


async def test_a_return_is_an_event(client, database, clock, auth):
    async with database.begin() as conn:
        await events.create_subscription(
            conn, url="https://hooks.example.com/p", event_types=["*"], secret="s", now=clock()
        )
    code = await make_promocode(database, now=clock(), usage_count=2)
    redemption = await redeem(client, auth, code)
    await give_back(client, auth, redemption["id"], ["SKU-A"])
    await give_back(client, auth, redemption["id"], ["SKU-A"])  # nothing new: no event
    await give_back(client, auth, redemption["id"], ["SKU-B", "SKU-X"])

    first, last = await event_data(database, "promocode.redemption_returned")
    assert (first["products"], first["kept"], first["use_ended"]) == (
        ["SKU-A"],
        ["SKU-B", "SKU-X"],
        False,
    )
    assert (last["returned"], last["use_ended"], last["use_given_back"]) == (CART, True, True)
    assert last["uses_left"] == 2


# by order


async def test_returning_products_of_an_order_returns_them_from_each_redemption(
    client, database, clock, auth
):
    first = await make_promocode(database, now=clock(), usage_count=2)
    second = await make_promocode(database, now=clock(), usage_count=2, products=("SKU-B",))
    one = await confirmed_hold(client, auth, first, "order-7", CART)
    two = await confirmed_hold(client, auth, second, "order-7", CART)

    response = await give_back_order(client, auth, "order-7", ["SKU-B", "SKU-Q"])

    assert response.status_code == 200, response.text
    done = response.json()
    assert [
        (r["redemption"]["id"], r["returned_now"], r["use_stands"]) for r in done["redemptions"]
    ] == [
        (one, ["SKU-B"], True),
        (two, ["SKU-B"], False),
    ]
    assert await uses_left(database, first) == 1
    assert await uses_left(database, second) == 2


async def test_an_orders_return_again_with_its_key_changes_nothing(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=2)
    await confirmed_hold(client, auth, code, "order-7", ["SKU-A"])
    await give_back_order(client, auth, "order-7", ["SKU-A"], key="k")

    again = await give_back_order(client, auth, "order-7", ["SKU-A"], key="k")

    assert again.status_code == 200
    assert [r["returned_now"] for r in again.json()["redemptions"]] == [[]]
    assert await uses_left(database, code) == 2


async def test_an_orders_return_of_products_it_never_held_is_refused(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    await confirmed_hold(client, auth, code, "order-7", ["SKU-A"])

    response = await give_back_order(client, auth, "order-7", ["SKU-Z"])

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "product_not_in_order"


async def test_returning_products_of_an_unknown_order_is_not_found(client, auth):
    response = await give_back_order(client, auth, "order-none", ["SKU-A"])

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "order_not_found"


# real concurrency


@pytest.mark.postgres_only
async def test_a_return_racing_a_rollback_gives_the_use_back_once(client, database, clock, auth):
    codes = [await make_promocode(database, now=clock(), usage_count=1) for _ in range(10)]
    taken = [await redeem(client, auth, code) for code in codes]

    for code, redemption in zip(codes, taken, strict=True):
        returned, rolled_back = await asyncio.gather(
            give_back(client, auth, redemption["id"], CART),
            client.post(f"/v1/redemptions/{redemption['id']}/rollback", headers=auth),
        )
        assert {returned.status_code, rolled_back.status_code} <= {200, 409}
        assert 200 in {returned.status_code, rolled_back.status_code}
        assert await uses_left(database, code) == 1


@pytest.mark.postgres_only
async def test_concurrent_returns_of_the_last_products_end_the_use_once(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=1)
    redemption = await redeem(client, auth, code)

    responses = await asyncio.gather(
        *(give_back(client, auth, redemption["id"], [sku]) for sku in CART * 3)
    )

    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["returned_now"] != [] for r in responses) == 3
    assert await uses_left(database, code) == 1
    async with database.begin() as conn:
        assert (await service.get_redemption(conn, redemption["id"])).rolled_back_at is not None
