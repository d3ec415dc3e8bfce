"""Two-factor sign-in in a real browser: set it up on the account page, sign out, sign in with
the password and then the code. Codes are computed as a phone does, from the secret shown."""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, SCREENSHOTS, sign_in


def test_enrol_sign_out_and_sign_in_with_password_then_code(page: Page):
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    page.get_by_role("link", name=ADMIN).click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_role("button", name="Set up two-factor sign-in").click()

    expect(page.locator(".qr svg")).to_be_visible()
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    page.screenshot(path=str(SCREENSHOTS / "two_factor_enrol.png"), full_page=True)
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm and turn on").click()

    codes = page.get_by_test_id("recovery-codes").locator("li")
    expect(codes).to_have_count(10)
    page.get_by_role("link", name="I have kept them").click()
    expect(page.get_by_test_id("recovery-left")).to_contain_text("10")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    # The code of the next time step: the current one may be the one just used to confirm,
    # and a code is accepted once.
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time(), counter_offset=1))
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url("**/admin")
    expect(page.get_by_role("heading", name=f"Welcome, {ADMIN}")).to_be_visible()
    page.goto("/admin/users")
    row = page.get_by_role("row").filter(has_text=ADMIN)
    expect(row).to_contain_text("On")
