"""Code pools and brands in a real browser: a batch made, a CSV uploaded with its progress
and the counts changed, a bad file refused by its field, the export read back, phone width."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, SALES, SALES_PASSWORD, sign_in

PHONE = {"width": 375, "height": 740}
CLIENT = "217be7c8-679c-4e08-bffc-db3451bdcdbf"


def _new_batch(page: Page, name: str) -> str:
    """Make a batch through the form; the URL of its page."""
    page.goto("/admin/pools/new")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Client").fill(CLIENT)
    page.get_by_label("Codes per customer").fill("1")
    page.get_by_role("button", name="Create batch").click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    return page.url


def _upload(page: Page, batch_url: str, path: Path) -> None:
    page.goto(f"{batch_url}/upload")
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()


def test_an_uploaded_csv_changes_the_counts(page: Page, tmp_path: Path):
    sign_in(page, SALES, SALES_PASSWORD)
    batch_url = _new_batch(page, "Browser upload")
    expect(page.locator("#count-total")).to_have_text("0")
    codes = tmp_path / "codes.csv"
    codes.write_text("code\n" + "".join(f"UP-{n:05}\n" for n in range(20_000)))

    _upload(page, batch_url, codes)

    expect(page.get_by_text("20,000 codes added.")).to_be_visible()
    expect(page.locator("#count-total")).to_have_text("20,000")
    expect(page.locator("#count-left")).to_have_text("20,000")


def test_a_csv_with_a_bad_row_is_refused_by_the_field_and_adds_nothing(page: Page, tmp_path: Path):
    sign_in(page, SALES, SALES_PASSWORD)
    batch_url = _new_batch(page, "Browser bad file")
    bad = tmp_path / "bad.csv"
    bad.write_text("code\nGOOD-1\n" + "X" * 300 + "\n")

    _upload(page, batch_url, bad)

    error = page.locator("#file-error")
    expect(error).to_contain_text("Nothing was added. Row 3: the code is longer than 255")
    expect(page.get_by_label("CSV file")).to_be_focused()
    page.goto(batch_url)
    expect(page.locator("#count-total")).to_have_text("0")


def test_bad_input_in_the_new_batch_form_comes_back_by_its_field(page: Page):
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto("/admin/pools/new")
    page.get_by_label("Name").fill("Sale")
    page.get_by_label("Client").fill("not-a-uuid")
    page.get_by_label("Within days").fill("30")
    page.get_by_role("button", name="Create batch").click()

    expect(page.locator("#client_id-error")).to_contain_text("A UUID")
    expect(page.locator("#time_limit_days-error")).to_contain_text("Needs a limit per customer")
    expect(page.get_by_label("Name")).to_have_value("Sale")


def test_an_exported_batch_reads_back_as_csv(page: Page, tmp_path: Path):
    sign_in(page, SALES, SALES_PASSWORD)
    batch_url = _new_batch(page, "Browser export")
    codes = tmp_path / "codes.csv"
    codes.write_text("code\nEX-1\nEX-2\nEX-3\n")
    _upload(page, batch_url, codes)
    expect(page.locator("#count-total")).to_have_text("3")

    with page.expect_download() as started:
        page.get_by_role("link", name="Export CSV").click()
    saved = tmp_path / "export.csv"
    started.value.save_as(saved)

    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert [r["code"] for r in rows] == ["EX-1", "EX-2", "EX-3"]
    assert {r["client_id"] for r in rows} == {CLIENT}


def _hold(server: str, batch_url: str, order: str) -> httpx.Response:
    batch_id = batch_url.rsplit("/", 1)[1]
    body = {"client_id": CLIENT, "customer_id": f"buyer-{order}", "order": order}
    with httpx.Client(base_url=server, auth=(ADMIN, ADMIN_PASSWORD)) as api:
        return api.post(f"/v1/batches/{batch_id}/holds", json=body)


def test_a_batch_shows_its_live_holds_soonest_to_expire_first(
    page: Page, server: str, tmp_path: Path
):
    sign_in(page, SALES, SALES_PASSWORD)
    batch_url = _new_batch(page, "Browser holds")
    codes = tmp_path / "codes.csv"
    codes.write_text("code\nHOLD-1\nHOLD-2\nHOLD-3\n")
    _upload(page, batch_url, codes)
    first = _hold(server, batch_url, "order-a").json()
    _hold(server, batch_url, "order-b")
    with httpx.Client(base_url=server, auth=(ADMIN, ADMIN_PASSWORD)) as api:
        assert api.post(f"/v1/pool-code-holds/{first['id']}/release").status_code == 200

    page.goto(batch_url)

    rows = page.locator("#live-holds tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("HOLD-2")
    expect(rows.first).to_contain_text("buyer-order-b")
    expect(rows.first).to_contain_text("order-b")
    expect(page.locator("#count-left")).to_have_text("1")  # one held, one burnt


def test_a_batch_made_to_return_ended_holds_codes_says_so_and_can_be_changed(
    page: Page, server: str
):
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto("/admin/pools/new")
    page.get_by_label("Name").fill("Browser returns")
    page.get_by_label("Client").fill(CLIENT)
    page.get_by_label("Codes of ended holds").select_option("return")
    page.get_by_role("button", name="Create batch").click()
    expect(page.get_by_role("heading", name="Browser returns")).to_be_visible()
    expect(page.get_by_label("Codes of ended holds")).to_have_value("return")

    page.get_by_label("Codes of ended holds").select_option("burn")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text("Codes of holds that end from now on are burnt.")).to_be_visible()
    expect(page.get_by_label("Codes of ended holds")).to_have_value("burn")
    batch_id = page.url.rsplit("/", 1)[1]
    with httpx.Client(base_url=server, auth=(ADMIN, ADMIN_PASSWORD)) as api:
        settings = api.get(f"/v1/batches/{batch_id}/hold-settings").json()
    assert settings["released_codes"] == "burn"


def test_a_new_brand_users_secret_is_shown_once(page: Page):
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/admin/brands/users/new")
    page.get_by_label("User id").fill("browser-shop")
    page.get_by_role("button", name="Create brand user").click()

    secret = page.locator("#secret").inner_text()
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", secret)
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_text("browser-shop")).to_be_visible()
    assert secret not in page.content()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/pools",
        "/admin/pools/new",
        "/admin/pools/customer?customer_id=nobody",
        "/admin/brands",
        "/admin/brands/users",
        "/admin/brands/users/new",
        "batch",
        "batch/upload",
        "batch/codes",
    ],
)
def test_a_pools_page_holds_375_px_without_sideways_scrolling(page: Page, path: str):
    page.set_viewport_size(PHONE)
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    if path.startswith("batch"):
        path = _new_batch(page, "Phone") + path.removeprefix("batch")
    page.goto(path)

    width = page.evaluate("document.documentElement.scrollWidth")

    assert width <= PHONE["width"], f"{path} is {width} px wide"
