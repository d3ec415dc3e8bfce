"""Promo codes, specials and upgrade programs in a real browser: generating with the live
preview, exporting and reading the CSV back, rolling a redemption back, phones, bad input."""

from __future__ import annotations

import csv
import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, SALES, SALES_PASSWORD, sign_in

PHONE = {"width": 375, "height": 740}


def _api(server: str) -> httpx.Client:
    return httpx.Client(base_url=server, auth=(ADMIN, ADMIN_PASSWORD))


def _make_code(server: str, pattern: str, **terms: object) -> str:
    with _api(server) as api:
        made = api.post(
            "/v1/promocodes",
            json={"pattern": pattern, "count": 1, "discount_percentage": 10, **terms},
        )
    assert made.status_code == 201, made.text
    code: str = made.json()["codes"][0]
    return code


def test_generating_codes_with_the_live_preview(page: Page, server: str):
    sign_in(page, SALES, SALES_PASSWORD)
    page.get_by_role("link", name="Promo codes").first.click()
    page.get_by_role("link", name="Generate codes").click()

    page.get_by_label("Pattern").fill("BRW-####")
    samples = page.locator("#preview .samples code")
    expect(samples).to_have_count(5)
    for sample in samples.all_inner_texts():
        assert re.fullmatch(r"BRW-[2-9A-HJ-KMNP-Z]{4}", sample), sample
    page.get_by_label("How many codes").fill("300000")
    expect(page.locator("#count-live-error")).to_contain_text("makes 923521 different codes")
    page.get_by_label("How many codes").fill("3")
    expect(page.locator("#count-live-error")).to_have_count(0)
    page.get_by_label("Percent off").fill("10")
    page.get_by_role("button", name="Generate").click()

    expect(page.get_by_role("status")).to_have_text("3 promo codes generated.")
    page.get_by_role("link", name="See all its codes").click()
    expect(page.get_by_role("row").filter(has_text="BRW-")).to_have_count(3)


def test_exporting_the_filtered_list_and_reading_the_csv_back(page: Page, server: str):
    kept = _make_code(server, "EXP-KEEP-###")
    _make_code(server, "EXP-DROP-###")
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto("/admin/promocodes")
    page.get_by_label("Code starts with").fill("EXP-KEEP")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row").filter(has_text="EXP-")).to_have_count(1)

    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()

    with download.value.path().open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["code"] for row in rows] == [kept]
    assert rows[0]["discount_percentage"] == "10.00"


def test_rolling_a_redemption_back(page: Page, server: str):
    code = _make_code(server, "ROLL-###", usage_count=2)
    with _api(server) as api:
        redeemed = api.post(
            f"/v1/promocodes/{code}/redeem", json={"customer": "c@example.com", "products": []}
        )
    assert redeemed.status_code == 201, redeemed.text
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto(f"/admin/promocodes/codes/{code}")
    row = page.get_by_role("row").filter(has_text="c@example.com")
    expect(row).to_contain_text("No")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Roll back").click()

    expect(page.get_by_role("status")).to_contain_text(f"{code} has 2 uses left.")
    expect(page.get_by_role("button", name="Roll back")).to_have_count(0)
    expect(page.get_by_label("Uses left")).to_have_value("2")


def test_a_codes_page_shows_its_holds_and_its_redemptions_returns(page: Page, server: str):
    code = _make_code(server, "HOLD-###", usage_count=5)
    with _api(server) as api:

        def hold(order: str) -> int:
            body = {"customer": "h@example.com", "order": order, "products": ["SKU-A", "SKU-B"]}
            held = api.post(f"/v1/promocodes/{code}/holds", json=body)
            assert held.status_code == 201, held.text
            hold_id: int = held.json()["id"]
            return hold_id

        hold("order-held")
        assert api.post(f"/v1/promocode-holds/{hold('order-gone')}/release").status_code == 200
        confirmed = hold("order-sold")
        assert api.post(f"/v1/promocode-holds/{confirmed}/confirm").status_code == 200
        returned = api.post(f"/v1/redemptions/{confirmed}/returns", json={"products": ["SKU-A"]})
        assert returned.status_code == 200, returned.text
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto(f"/admin/promocodes/codes/{code}")

    holds = page.locator("#holds tbody tr")
    expect(holds).to_have_count(3)
    expect(holds.filter(has_text="order-held")).to_contain_text("Held")
    expect(holds.filter(has_text="order-gone")).to_contain_text("Released")
    expect(holds.filter(has_text="order-sold")).to_contain_text("Confirmed")
    sold = page.get_by_role("row").filter(has_text="order-sold").filter(has_text="SKU-A").first
    expect(sold.locator("td[data-label=Cancelled]")).to_have_text("No")

    with _api(server) as api:
        api.post(f"/v1/redemptions/{confirmed}/returns", json={"products": ["SKU-B"]})
    page.reload()

    sold = page.get_by_role("row").filter(has_text="order-sold").filter(has_text="SKU-B").first
    expect(sold.locator("td[data-label=Cancelled]")).to_contain_text(
        "every product returned, use given back"
    )
    expect(sold.locator("td[data-label=Returned]")).to_contain_text("SKU-A")
    expect(page.get_by_label("Uses left")).to_have_value("4")


def test_an_impossible_pattern_is_shown_by_its_field_and_nothing_is_made(page: Page, server: str):
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto("/admin/promocodes/new")
    page.get_by_label("Pattern").fill("NO#")
    page.get_by_label("How many codes").fill("50")
    page.get_by_label("Percent off").fill("10")
    expect(page.locator("#count-live-error")).to_contain_text("makes 31 different codes")

    page.get_by_role("button", name="Generate").click()

    expect(page).to_have_url("/admin/promocodes/new")
    expect(page.get_by_label("How many codes")).to_be_focused()
    expect(page.get_by_label("How many codes")).to_have_attribute("aria-invalid", "true")
    with _api(server) as api:
        assert api.get("/v1/promocodes", params={"q": "NO"}).json()["items"] == []


def test_bad_input_in_the_special_form_comes_back_by_its_field(page: Page, server: str):
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto("/admin/specials/new")
    page.get_by_label("Product").fill("SKU-1")
    page.get_by_label("Title").fill("x" * 255)
    page.get_by_label("Percent off").fill("half")
    page.get_by_role("button", name="Create").click()

    expect(page).to_have_url("/admin/specials/new")
    expect(page.locator("#discount_percentage-error")).to_have_text("A number, e.g. 15 or 4.99.")
    expect(page.get_by_label("Percent off")).to_be_focused()
    expect(page.get_by_label("Title")).to_have_value("x" * 255)
    with _api(server) as api:
        assert api.get("/v1/specials").json()["items"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/admin/promocodes",
        "/admin/promocodes/new",
        "/admin/promocodes/codes/{code}",
        "/admin/specials",
        "/admin/specials/new",
        "/admin/upgrade-programs",
        "/admin/upgrade-programs/new",
    ],
)
def test_a_page_holds_375_px_without_sideways_scrolling(page: Page, server: str, path: str):
    code = _make_code(server, "PHONE-LONGER-CODE-########", products=["SKU-A", "SKU-B"])
    page.set_viewport_size(PHONE)
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto(path.format(code=code))

    width = page.evaluate("document.documentElement.scrollWidth")

    assert width <= PHONE["width"], f"{path} is {width} px wide"
