"""Referrals in Chromium: a program made through the form, a referral registered and paid
through the API, and the program's funnel moving."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import SALES, SALES_PASSWORD, sign_in


def _api(server: str) -> httpx.Client:
    """The API as a service calls it, with a sales user's token."""
    token = httpx.post(
        f"{server}/v1/auth/tokens", json={"login": SALES, "password": SALES_PASSWORD}, timeout=10
    )
    assert token.status_code == 201, token.text
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    return httpx.Client(base_url=server, headers=headers, timeout=10)


def test_a_referral_registered_and_paid_through_the_api_moves_the_funnel(page: Page, server: str):
    sign_in(page, SALES, SALES_PASSWORD)
    page.get_by_role("link", name="Referrals").first.click()
    page.get_by_role("link", name="New program").click()
    page.get_by_label("Name").fill("Friends")
    page.get_by_label("Credit at sign-up").fill("10")
    page.get_by_label("Target and reward").fill("50")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_text("Program Friends created.")).to_be_visible()
    program_id = int(re.sub(r".*/programs/(\d+).*", r"\1", page.url))
    today = page.locator("#funnel-totals tbody tr").first
    expect(today.locator("td")).to_have_text(["0", "0", "0", "0.00", "0.00"])

    with _api(server) as api:
        referral = {"referrer": "alice", "referred": "bob", "program_id": program_id}
        assert api.post("/v1/referrals", json=referral).status_code == 201
        paid = api.put("/v1/referral-users/bob/payments", json={"total_amount_paid": 50})
        assert paid.json()["acquired_credit"] == 50
    page.reload()

    expect(today.locator("td")).to_have_text(["1", "1", "1", "10.00", "50.00"])
    page.get_by_role("link", name="A user's statement").click()
    page.get_by_label("User hash").fill("bob")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#statement")).to_contain_text("Referred by")
    expect(page.locator("#statement")).to_contain_text("alice")


def test_a_programs_reward_hold_is_set_in_its_form(page: Page, server: str):
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto("/admin/referrals/new")
    page.get_by_label("Name").fill("Held")
    page.get_by_label("Credit at sign-up").fill("0")
    page.get_by_label("Target and reward").fill("20")
    page.get_by_label("Reward hold (days)").fill("14")
    page.get_by_role("button", name="Create").click()

    expect(page.get_by_text("Program Held created.")).to_be_visible()
    expect(page.locator("dl.terms")).to_contain_text("14 days pending, then granted")
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Reward hold (days)")).to_have_value("14")


def test_a_statement_shows_pending_rewards_apart_from_granted_and_reversed(page: Page, server: str):
    with _api(server) as api:
        programs = {}
        for name, days in (("At once", 0), ("Thirty days", 30)):
            made = api.post(
                "/v1/referral-programs",
                json={
                    "name": name,
                    "credit_value": 0,
                    "target_value": 40,
                    "reward_hold_days": days,
                },
            )
            assert made.status_code == 201, made.text
            programs[days] = made.json()["id"]
        for referred, days in (("rita", 0), ("remy", 0), ("pete", 30)):
            body = {"referrer": "rob", "referred": referred, "program_id": programs[days]}
            assert api.post("/v1/referrals", json=body).status_code == 201
            paid = api.put(
                f"/v1/referral-users/{referred}/payments", json={"total_amount_paid": 40}
            )
            assert paid.status_code == 200, paid.text
        refunded = api.post("/v1/referrals/payments/remy/refunds", json={"amount": 40})
        assert refunded.status_code == 200, refunded.text
    sign_in(page, SALES, SALES_PASSWORD)

    page.goto("/admin/referrals/users?user_hash=rob")

    expect(page.locator("#pending-credit")).to_contain_text("40.00")
    expect(page.locator("#acquired-credit")).to_contain_text("40.00")
    referred = page.locator("#referred tbody tr")
    expect(referred.filter(has_text="pete").locator("td[data-label=Reward]")).to_contain_text(
        "Pending until"
    )
    expect(referred.filter(has_text="rita").locator("td[data-label=Reward]")).to_contain_text(
        "Granted"
    )
    expect(referred.filter(has_text="remy").locator("td[data-label=Reward]")).to_contain_text(
        "Reversed"
    )


PHONE = {"width": 375, "height": 740}


def test_the_referral_pages_hold_375_px_without_sideways_scrolling(page: Page, server: str):
    with _api(server) as api:
        made = api.post(
            "/v1/referral-programs",
            json={
                "name": "A program with a rather long name",
                "credit_value": 5,
                "target_value": 9,
            },
        )
        program_id = made.json()["id"]
        api.post(
            "/v1/referrals", json={"referrer": "ann", "referred": "ben", "program_id": program_id}
        )
        api.post("/emailindication", json={"user_indicator": "ann", "emails": "ben@example.com"})
    page.set_viewport_size(PHONE)
    sign_in(page, SALES, SALES_PASSWORD)

    for path in (
        "/admin/referrals",
        "/admin/referrals/new",
        f"/admin/referrals/programs/{program_id}",
        f"/admin/referrals/programs/{program_id}/edit",
        "/admin/referrals/users?user_hash=ann",
        "/admin/referrals/credits?user_hash=ann",
        "/admin/referrals/invitations",
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide"
