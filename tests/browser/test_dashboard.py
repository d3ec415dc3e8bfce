"""The dashboard in Chromium: on a phone, without sideways scrolling, every chart drawn."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, SALES, SALES_PASSWORD, sign_in

PHONE = {"width": 375, "height": 740}
FIGURES = 7


def test_the_dashboard_holds_375_px_with_its_charts_drawn(page: Page):
    page.set_viewport_size(PHONE)
    sign_in(page, ADMIN, ADMIN_PASSWORD)

    charts = page.get_by_role("img", name="per day")
    expect(charts).to_have_count(FIGURES)
    for n in range(FIGURES):
        box = charts.nth(n).bounding_box()
        assert box is not None
        assert box["width"] > 250, "a chart fills its card's width"
        assert box["height"] > 40
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the dashboard is {width} px wide"


def test_a_chart_s_figures_by_day_open_as_a_table(page: Page):
    page.set_viewport_size(PHONE)
    sign_in(page, ADMIN, ADMIN_PASSWORD)

    page.get_by_text("Codes issued by day").click()

    table = page.locator("#codes-issued table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(30)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the open table makes the page {width} px wide"


def test_sales_sees_the_dashboard_without_webhook_deliveries(page: Page):
    sign_in(page, SALES, SALES_PASSWORD)

    expect(page.get_by_role("heading", name="Codes issued")).to_be_visible()
    expect(page.get_by_role("img", name="per day")).to_have_count(FIGURES - 1)
    expect(page.get_by_text("webhook", exact=False)).to_have_count(0)
