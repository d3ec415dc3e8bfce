"""Every native list pages one way: limit and cursor in; items, has_more, next_cursor out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests._pages import all_pages

Make = Callable[[httpx.AsyncClient, dict[str, str], int], Awaitable[Any]]


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


async def _special(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    body = {"sku": f"SKU-{n}", "title": f"Special {n}", "discount_percentage": 10}
    return await _ok(await client.post("/v1/specials", json=body, headers=auth))


async def _upgrade(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    body = {"from_sku": f"A-{n}", "to_sku": f"B-{n}", "title": f"Up {n}", "discount_amount": 1}
    return await _ok(await client.post("/v1/upgrade-programs", json=body, headers=auth))


async def _program(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    body = {"name": f"Program {n}", "credit_value": 1, "target_value": 10}
    return await _ok(await client.post("/v1/referral-programs", json=body, headers=auth))


async def _user(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    body = {"username": f"user-{n}", "password": "a long password"}
    return await _ok(await client.post("/v1/users", json=body, headers=auth))


async def _api_key(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    return await _ok(await client.post("/v1/api-keys", json={"name": f"k{n}"}, headers=auth))


async def _webhook(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    body = {"url": f"https://hooks.example.com/{n}", "events": ["*"], "secret": "s" * 20}
    return await _ok(await client.post("/v1/webhooks", json=body, headers=auth))


async def _game(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    return await _ok(await client.put(f"/v1/games/game-{n}", json={"name": "G"}, headers=auth))


async def _offer(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    await client.put("/v1/games/paged", json={"name": "Paged"}, headers=auth)
    body = {
        "name": f"Offer {n}",
        "product_id": f"offer-{n}",
        "contents": {"gems": n},
        "placement": "store",
        "period": {"every": "1h", "max": 1},
        "frequency": {"every": "", "max": 1},
        "trigger": {"from": 0, "to": 10},
    }
    return await _ok(await client.post("/v1/games/paged/offers", json=body, headers=auth))


async def _promocode(client: httpx.AsyncClient, auth: dict[str, str], n: int) -> Any:
    body = {"pattern": f"PAGE{n}", "discount_percentage": 5}
    return await _ok(await client.post("/v1/promocodes", json=body, headers=auth))


# (list URL, how to make one item, how many the list holds before any is made)
LISTS: dict[str, tuple[Make, int]] = {
    "/v1/specials": (_special, 0),
    "/v1/upgrade-programs": (_upgrade, 0),
    "/v1/upgrade-programs/active": (_upgrade, 0),
    "/v1/referral-programs": (_program, 0),
    "/v1/users": (_user, 1),  # the admin
    "/v1/api-keys": (_api_key, 0),
    "/v1/webhooks": (_webhook, 0),
    "/v1/games": (_game, 0),
    "/v1/games/paged/offers": (_offer, 0),
    "/v1/promocodes": (_promocode, 0),
}


@pytest.mark.parametrize("url", LISTS)
async def test_a_native_list_pages_through_every_item_once(client, admin_auth, url):
    make, before = LISTS[url]
    for n in range(5):
        await make(client, admin_auth, n)

    pages = await all_pages(client, url, admin_auth, limit=2)

    items = [item for page in pages for item in page["items"]]
    keys = [item.get("id", item.get("code")) for item in items]
    assert len(keys) == len(set(keys)) == before + 5
    assert [len(page["items"]) for page in pages][:-1] == [2] * (len(pages) - 1)
    assert [page["has_more"] for page in pages] == [True] * (len(pages) - 1) + [False]


async def test_an_item_added_after_a_page_was_read_shows_on_a_later_page(client, admin_auth):
    for n in range(3):
        await _special(client, admin_auth, n)
    first = (await client.get("/v1/specials", params={"limit": 2}, headers=admin_auth)).json()

    await _special(client, admin_auth, 3)
    rest = await all_pages(client, "/v1/specials", admin_auth, limit=2, cursor=first["next_cursor"])

    skus = [s["sku"] for page in [first, *rest] for s in page["items"]]
    assert skus == ["SKU-0", "SKU-1", "SKU-2", "SKU-3"]


async def test_a_list_of_one_page_says_there_is_no_more(client, admin_auth):
    await _special(client, admin_auth, 0)

    page = (await client.get("/v1/specials", headers=admin_auth)).json()

    assert page["has_more"] is False
    assert page["next_cursor"] is None


async def test_a_cursor_of_one_list_is_refused_by_another(client, admin_auth):
    for n in range(3):
        await _offer(client, admin_auth, n)
    offers = (
        await client.get("/v1/games/paged/offers", params={"limit": 1}, headers=admin_auth)
    ).json()

    response = await client.get(
        "/v1/specials", params={"cursor": offers["next_cursor"]}, headers=admin_auth
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_input"
