"""Brands in the console: each brand's stock and codes handed out (sales and admins), brand
users (admins: a new one's secret shown once), through the API's services, audited."""

from __future__ import annotations

import re
from html import unescape

import pytest

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.brands import service as brands
from promos.db import Database
from promos.state import AppState
from tests.console.conftest import submit
from tests.factories.codes import make_batch

NEW = "/admin/brands/users/new"


async def _entries(database: Database, action: str) -> list[audit.AuditEntry]:
    async with database.begin() as conn:
        page = await audit.list_entries(conn, query=AuditQuery(action=action), limit=10)
    return page.items


def _errors(html: str) -> dict[str, str]:
    found = re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html)
    return {name: unescape(text) for name, text in found}


async def test_each_brand_shows_its_stock_and_codes_handed_out(
    as_sales, state: AppState, database, clock
):
    async with database.begin() as conn:
        batch = await brands.generate_for_brand(conn, brand_id=7, count=5, now=clock())
        await brands.create_brand_user(conn, user_id="shop-1", secret=None, now=clock())
    await state.issuer.issue(brands.issue_request(batch, "shop-1"))

    page = await as_sales.get("/admin/brands")

    assert page.status_code == 200
    assert "Brand 7" in page.text
    assert re.search(r'data-label="Stock" class="number">5<', page.text)
    assert re.search(r'data-label="Handed out" class="number">1<', page.text)
    assert re.search(r'data-label="Left" class="number">4<', page.text)


async def test_a_batch_only_named_like_a_brand_is_not_a_brand(as_sales, database, clock):
    await make_batch(database, now=clock(), codes=1, name="brand 7")

    page = await as_sales.get("/admin/brands")

    assert "Brand 7" not in page.text


async def test_sales_sees_brands_but_not_brand_users(as_sales):
    assert (await as_sales.get("/admin/brands")).status_code == 200
    assert "/admin/brands/users" not in (await as_sales.get("/admin/brands")).text
    for path in ("/admin/brands/users", NEW):
        assert (await as_sales.get(path)).status_code == 403


async def test_a_new_brand_user_is_shown_its_secret_once_and_audited(as_admin, admin, database):
    response = await submit(as_admin, NEW, NEW, {"user_id": "shop-42"})

    assert response.status_code == 201
    secret = re.search(r'<code id="secret">([^<]+)</code>', response.text)
    assert secret is not None
    async with database.begin() as conn:
        await brands.verify_brand_user(conn, user_id="shop-42", secret=secret.group(1))
    listing = await as_admin.get("/admin/brands/users")
    assert "shop-42" in listing.text
    assert secret.group(1) not in listing.text
    [entry] = await _entries(database, "brand_user.create")
    assert (entry.actor_id, entry.target_id) == (admin.id, "shop-42")
    assert secret.group(1) not in str(entry.after)


@pytest.mark.parametrize(
    ("user_id", "error"),
    [("", "Required."), ("x" * 256, "At most 255 characters."), ("a b", "Letters, digits")],
    ids=["empty", "too long", "a space"],
)
async def test_a_bad_brand_user_comes_back_by_its_field(as_admin, database, user_id, error):
    response = await submit(as_admin, NEW, NEW, {"user_id": user_id})

    assert response.status_code == 422
    assert _errors(response.text)["user_id"].startswith(error)
    async with database.begin() as conn:
        assert await brands.list_brand_users(conn) == []


async def test_a_brand_user_id_that_is_taken_comes_back_by_its_field(as_admin, database, clock):
    async with database.begin() as conn:
        await brands.create_brand_user(conn, user_id="shop-1", secret=None, now=clock())

    response = await submit(as_admin, NEW, NEW, {"user_id": "shop-1"})

    assert response.status_code == 422
    assert _errors(response.text) == {"user_id": "That id is taken."}


async def test_deleting_a_brand_user_is_audited(as_admin, admin, database, clock):
    async with database.begin() as conn:
        await brands.create_brand_user(conn, user_id="shop-1", secret=None, now=clock())

    response = await submit(as_admin, "/admin/brands/users", "/admin/brands/users/shop-1/delete")

    assert response.status_code == 303
    assert "Brand user shop-1 deleted." in (await as_admin.get("/admin/brands/users")).text
    async with database.begin() as conn:
        assert await brands.list_brand_users(conn) == []
    [entry] = await _entries(database, "brand_user.delete")
    assert entry.actor_id == admin.id
