"""The dashboard, the console's first page: figures of today, 7 and 30 days with a chart each,
the pools running low, and the areas below them; sales sees what sales may see."""

from __future__ import annotations

import re
from uuid import uuid4

import httpx
from fastapi import FastAPI

from promos.auth.service import User
from promos.codes.issue import issue_codes
from promos.codes.service import Batch, IssueRequest
from promos.db import Database
from promos.promocodes import service as promocodes
from tests.conftest import FakeClock
from tests.console.conftest import ADMIN_PASSWORD, browser, sign_in
from tests.factories.codes import CLIENT, make_batch
from tests.factories.events import make_callback
from tests.factories.promocodes import make_promocodes


async def issue(database: Database, batch: Batch, clock: FakeClock, count: int) -> None:
    async with database.begin() as conn:
        requests = [IssueRequest(batch.id, CLIENT, f"c-{uuid4()}") for _ in range(count)]
        await issue_codes(conn, requests, [None] * count, now=clock())


def card(html: str, key: str) -> str:
    """The figure card whose id is ``key``."""
    found = re.search(rf'<li class="card figure" id="{key}">(.*?)</li>', html, re.DOTALL)
    assert found is not None, f"no {key} card on the page"
    return found.group(1)


def totals(html: str, key: str) -> list[str]:
    """Today, 7 days and 30 days of the figure ``key``, as shown."""
    return re.findall(r"<dd>([^<]*)</dd>", card(html, key))


async def test_the_dashboard_is_the_first_page_after_sign_in(as_admin: httpx.AsyncClient) -> None:
    page = await as_admin.get("/admin")
    assert page.status_code == 200
    assert "<title>Dashboard · Promos console</title>" in page.text
    assert 'id="codes-issued"' in page.text


async def test_each_figure_shows_today_7_days_and_30_days(
    as_admin: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=5000)
    clock.advance(days=-20)
    await issue(database, batch, clock, 1000)
    clock.advance(days=15)
    await issue(database, batch, clock, 200)
    clock.advance(days=5)
    await issue(database, batch, clock, 30)
    page = await as_admin.get("/admin")
    assert totals(page.text, "codes-issued") == ["30", "230", "1,230"]


async def test_every_figure_has_a_chart_with_a_title_and_a_text_alternative(
    as_admin: httpx.AsyncClient,
) -> None:
    page = await as_admin.get("/admin")
    for key in (
        "codes-issued",
        "redemptions",
        "referral-signups",
        "referral-rewards",
        "offer-claims",
        "offer-impressions",
        "failing-deliveries",
    ):
        chart = card(page.text, key)
        assert f'aria-labelledby="{key}-chart-title {key}-chart-desc"' in chart
        assert f'<title id="{key}-chart-title">' in chart
        assert re.search(rf'<desc id="{key}-chart-desc">No [^<]+ from ', chart)
        assert chart.count("<rect ") == 30
        assert chart.count("<tr><td>") == 30  # the figures by day, as a table


async def test_a_chart_has_a_bar_per_day_the_busiest_day_full_height(
    as_admin: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    generated = await make_promocodes(database, now=clock(), usage_count=10)
    async with database.begin() as conn:
        for _ in range(4):
            await promocodes.redeem(
                conn, code=generated.codes[0], customer=None, skus=None, now=clock()
            )
    page = await as_admin.get("/admin")
    chart = card(page.text, "redemptions")
    assert '<rect class="bar bar-today" x="291.0" y="0.0" width="8.0" height="80.0">' in chart
    assert "<title>2026-03-01: 4</title>" in chart
    assert "4 promo code redemptions from 2026-01-31 to 2026-03-01" in chart


async def test_pools_running_low_are_listed_with_the_days_they_have_left(
    as_admin: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=100, name="Spring sale")
    await make_batch(database, now=clock(), codes=2000, name="Plenty")
    await issue(database, batch, clock, 20)
    page = await as_admin.get("/admin")
    section = page.text.split('id="low-pools-title"', 1)[1].split("</section>", 1)[0]
    assert "Spring sale" in section
    assert "Plenty" not in section  # 2,000 free codes: not below the 1,000 of the setting
    assert re.search(r'data-label="Codes left" class="number">80<', section)
    assert re.search(r'data-label="Empty in">\s*4 days', section)


async def test_without_pools_running_low_the_dashboard_says_so(as_admin: httpx.AsyncClient) -> None:
    page = await as_admin.get("/admin")
    assert "No pool has fewer than 1,000 free codes." in page.text


async def test_sales_is_not_shown_failing_webhook_deliveries(
    as_sales: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    await make_callback(database, url="http://127.0.0.1:9/credit", now=clock())
    page = await as_sales.get("/admin")
    assert page.status_code == 200
    assert 'id="codes-issued"' in page.text
    assert "webhook" not in page.text.lower()


async def test_admins_are_shown_failing_webhook_deliveries(as_admin: httpx.AsyncClient) -> None:
    page = await as_admin.get("/admin")
    assert 'id="failing-deliveries"' in page.text


async def test_the_areas_are_still_listed_below_the_dashboard(
    as_admin: httpx.AsyncClient, as_sales: httpx.AsyncClient
) -> None:
    admin_page = (await as_admin.get("/admin")).text
    area = '<h3><a href="/admin/users">Users</a></h3>'
    assert admin_page.index('id="codes-issued"') < admin_page.index(area)
    assert '<h3><a href="/admin/audit">' in admin_page
    assert area not in (await as_sales.get("/admin")).text


async def test_the_figures_are_held_for_the_setting_s_seconds_then_read_again(
    as_admin: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=10)
    assert totals((await as_admin.get("/admin")).text, "codes-issued")[0] == "0"
    await issue(database, batch, clock, 3)
    clock.advance(seconds=9)
    held = (await as_admin.get("/admin")).text
    assert totals(held, "codes-issued")[0] == "0"
    assert "Figures as of 2026-03-01 12:00:00 UTC" in held
    clock.advance(seconds=1)
    fresh = (await as_admin.get("/admin")).text
    assert totals(fresh, "codes-issued")[0] == "3"
    assert "Figures as of 2026-03-01 12:00:10 UTC" in fresh


async def test_the_dashboard_reads_nothing_before_sign_in(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as client:
        page = await client.get("/admin")
    assert page.status_code == 303
    assert page.headers["location"].startswith("/admin/sign-in")


async def test_the_days_that_are_over_are_counted_again_once_an_hour(
    as_admin: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=10)
    await as_admin.get("/admin")  # yesterday counted: none
    clock.advance(days=-1)
    await issue(database, batch, clock, 5)  # yesterday, issued after it was counted
    clock.advance(days=1, minutes=25)  # (within the console's idle time: still signed in)
    assert totals((await as_admin.get("/admin")).text, "codes-issued") == ["0", "0", "0"]
    clock.advance(minutes=25)
    assert totals((await as_admin.get("/admin")).text, "codes-issued") == ["0", "0", "0"]
    clock.advance(minutes=10)  # an hour after yesterday was counted
    assert totals((await as_admin.get("/admin")).text, "codes-issued") == ["0", "5", "5"]


async def test_at_midnight_today_s_figures_become_yesterday_s(
    app: FastAPI, admin: User, database: Database, clock: FakeClock
) -> None:
    batch = await make_batch(database, now=clock(), codes=10)
    clock.now = clock.now.replace(hour=23, minute=59, second=50)
    await issue(database, batch, clock, 3)
    async with browser(app) as client:
        await sign_in(client, admin.username, ADMIN_PASSWORD)
        assert totals((await client.get("/admin")).text, "codes-issued") == ["3", "3", "3"]
        clock.advance(seconds=10)
        page = (await client.get("/admin")).text
    assert totals(page, "codes-issued") == ["0", "3", "3"]
    assert "<title>2026-03-01: 3</title>" in card(page, "codes-issued")
    assert "<title>2026-03-02: 0</title>" in card(page, "codes-issued")
