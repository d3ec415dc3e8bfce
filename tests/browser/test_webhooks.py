"""Webhooks in Chromium: a subscription to a local receiver answering 500, its failed
delivery found in the log from the dashboard, and replayed to success."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests._receiver import ALLOWED_HOSTS, Receiver
from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, sign_in

# One attempt per delivery (a failure is final at once), sent within a fifth of a second.
SERVER_SETTINGS = {
    "PROMOS_WEBHOOK_ALLOWED_HOSTS": ALLOWED_HOSTS,
    "PROMOS_WEBHOOK_MAX_ATTEMPTS": "1",
    "PROMOS_WEBHOOK_POLL_SECONDS": "0.2",
}
WAIT_SECONDS = 15.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The test receiver, served by an event loop of its own in a thread (Playwright's sync
    API holds this thread's)."""
    receiving = Receiver()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(receiving.start(), loop).result(10)
    try:
        yield receiving
    finally:
        asyncio.run_coroutine_threadsafe(receiving.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def _until_shown(page: Page, text: str) -> Iterator[None]:
    """Reload the page until ``text`` shows (the dispatcher works in the background)."""
    yield
    deadline = time.monotonic() + WAIT_SECONDS
    while not page.get_by_text(text, exact=True).count():  # bounded by the deadline
        assert time.monotonic() < deadline, f"{text!r} did not show on {page.url}"
        page.wait_for_timeout(200)
        page.reload()


def test_a_failed_delivery_is_found_in_the_log_and_replayed_to_success(
    page: Page, receiver: Receiver
):
    receiver.status, receiver.reply = 500, b"receiver broken"
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    page.get_by_role("link", name="Webhooks").first.click()
    page.get_by_role("link", name="New subscription").click()
    page.get_by_label("URL").fill(f"{receiver.url}/hooks")
    page.get_by_label("Every event").check()
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#secret")).to_contain_text("whsec_")
    page.get_by_role("link", name="Done").click()

    with _until_shown(page, "Failed"):
        page.get_by_role("button", name="Send a test event").click()
    expect(page.locator("#attempts")).to_contain_text("HTTP 500")
    expect(page.locator("#attempts")).to_contain_text("receiver broken")

    page.goto("/admin")
    page.get_by_role("link", name="Failing webhook deliveries").click()
    expect(page.locator("#deliveries tbody tr")).to_have_count(1)
    expect(page.locator("#deliveries")).to_contain_text("webhook.test")
    receiver.status, receiver.reply = 200, b"thanks"
    page.locator("#deliveries tbody tr").first.get_by_role("checkbox").check()
    page.get_by_role("button", name="Replay the ticked deliveries").click()
    expect(page.get_by_text("1 delivery replayed: due now.")).to_be_visible()

    page.goto("/admin/webhooks/deliveries?status=delivered")
    # Reload until the replayed delivery is listed: "Delivered" alone also names the filter,
    # shown before the dispatcher has delivered it (a flaky failure in CI).
    delivered = page.locator("#deliveries a", has_text="Delivery")
    deadline = time.monotonic() + WAIT_SECONDS
    while not delivered.count():  # bounded by the deadline
        assert time.monotonic() < deadline, f"no delivered delivery listed on {page.url}"
        page.wait_for_timeout(200)
        page.reload()
    delivered.first.click()
    expect(page.locator("#attempts")).to_contain_text("HTTP 200")
    expect(page.locator("#attempts")).to_contain_text("thanks")
    assert len(receiver.requests) == 2


PHONE = {"width": 375, "height": 740}


def test_the_webhook_pages_hold_375_px_without_sideways_scrolling(
    page: Page, server: str, receiver: Receiver
):
    token = httpx.post(
        f"{server}/v1/auth/tokens", json={"login": ADMIN, "password": ADMIN_PASSWORD}, timeout=10
    ).json()["token"]
    with httpx.Client(
        base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as api:
        hook = {"url": f"{receiver.url}/a/rather/long/path/for/a/webhook", "events": ["*"]}
        subscription = api.post("/v1/webhooks", json=hook).json()["id"]
        delivery = api.post(f"/v1/webhooks/{subscription}/test").json()["id"]
    page.set_viewport_size(PHONE)
    sign_in(page, ADMIN, ADMIN_PASSWORD)

    for path in (
        "/admin/webhooks",
        "/admin/webhooks/new",
        f"/admin/webhooks/{subscription}",
        "/admin/webhooks/deliveries",
        f"/admin/webhooks/deliveries/{delivery}",
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide"
