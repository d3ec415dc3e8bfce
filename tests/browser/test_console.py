"""The console in a real browser: what a person does, with what they see saved as screenshots."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    ADMIN,
    ADMIN_PASSWORD,
    SALES,
    SALES_PASSWORD,
    SCREENSHOTS,
    sign_in,
)

PHONE = {"width": 375, "height": 740}


def test_signing_in_and_out(page: Page):
    page.goto("/admin")
    expect(page).to_have_url("/admin/sign-in?next=/admin")

    sign_in(page, ADMIN, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name=f"Welcome, {ADMIN}")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.goto("/admin/users")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_wrong_password_is_refused_with_one_message(page: Page):
    page.goto("/admin/sign-in")
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(page.get_by_label("User name")).to_have_value(ADMIN)


def test_an_api_key_is_shown_once_and_can_be_revoked(page: Page, server: str):
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    page.get_by_role("link", name="API keys").first.click()
    page.get_by_role("link", name="New API key").click()
    page.get_by_label("Name").fill("checkout service")
    page.get_by_role("button", name="Create key").click()

    secret = page.locator("#secret").inner_text().strip()
    assert secret.startswith("pk_")
    page.screenshot(path=str(SCREENSHOTS / "api_key_created.png"), full_page=True)
    with httpx.Client(base_url=server) as api:
        assert (
            api.get("/v1/auth/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        )

    page.get_by_role("link", name="Done").click()
    row = page.get_by_role("row").filter(has_text="checkout service")
    expect(row).to_contain_text("Active")
    assert secret not in page.content()
    assert secret[:10] in page.content()  # its first characters tell it apart

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("API key checkout service revoked.")
    expect(page.get_by_role("row").filter(has_text="checkout service")).to_contain_text("Revoked")
    with httpx.Client(base_url=server) as api:
        assert (
            api.get("/v1/auth/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
        )

    page.get_by_role("link", name="Audit log").first.click()
    revoked = page.get_by_role("row").filter(has_text="api_key.revoke")
    expect(revoked).to_contain_text(ADMIN)
    revoked.get_by_text("1 changed").click()  # opens the diff
    change = revoked.get_by_role("row").filter(has_text="revoked")
    expect(change.locator("td.was")).to_have_text("false")
    expect(change.locator("td.now")).to_have_text("true")


def test_a_sales_person_is_refused_the_admin_pages(page: Page):
    sign_in(page, SALES, SALES_PASSWORD)

    nav = page.get_by_role("navigation", name="Console")
    for area in ("Users", "API keys", "Audit log"):
        expect(nav.get_by_role("link", name=area)).to_have_count(0)
    expect(nav.get_by_role("link", name="Promo codes")).to_be_visible()
    for path in ("/admin/users", "/admin/api-keys", "/admin/audit"):
        response = page.goto(path)
        assert response is not None
        assert response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_a_post_without_the_csrf_token_is_refused(page: Page):
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    # What a forged form looks like: everything but this session's token.
    page.locator("form[action='/admin/sign-out'] input[name=csrf_token]").evaluate(
        "input => input.remove()"
    )

    page.get_by_role("button", name="Sign out").click()

    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.get_by_text("nothing was done")).to_be_visible()
    page.goto("/admin")
    expect(page.get_by_role("heading", name=f"Welcome, {ADMIN}")).to_be_visible()


def test_bad_input_comes_back_on_the_same_page_with_the_error_by_its_field(page: Page):
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/admin/users/new")
    page.get_by_label("User name").fill("two words")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create user").click()

    expect(page).to_have_url("/admin/users/new")
    name = page.get_by_label("User name")
    expect(name).to_have_value("two words")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_be_focused()
    expect(page.locator("#username-error")).to_have_text(
        "No spaces or colons (HTTP Basic needs that)."
    )
    expect(page.get_by_label("Password")).to_have_attribute(
        "aria-describedby", "password-hint password-error"
    )
    expect(page.locator("#password-error")).to_have_text("At least 8 characters.")


def test_the_sign_in_form_works_from_the_keyboard(page: Page):
    page.goto("/admin/sign-in")

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_label("User name")).to_be_focused()
    page.keyboard.type(ADMIN)
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")

    page.wait_for_url("**/admin")
    expect(page.get_by_role("heading", name=f"Welcome, {ADMIN}")).to_be_visible()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/sign-in",
        "/admin",
        "/admin/users",
        "/admin/users/new",
        "/admin/api-keys",
        "/admin/api-keys/new",
        "/admin/audit",
    ],
)
def test_a_page_holds_375_px_without_sideways_scrolling(page: Page, path: str):
    page.set_viewport_size(PHONE)
    if path != "/admin/sign-in":
        sign_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto(path)

    width = page.evaluate("document.documentElement.scrollWidth")

    assert width <= PHONE["width"], f"{path} is {width} px wide"
