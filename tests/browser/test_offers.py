"""Offers in a real browser: a game and an offer made through the forms, a player previewed
with the reason for each offer left out; an offer edited and its versions side by side; the
offer pages on a phone."""

from __future__ import annotations

import time
from uuid import uuid4

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN, ADMIN_PASSWORD, SALES, SALES_PASSWORD, sign_in

PHONE = {"width": 375, "height": 740}
LATER = "2099-01-01 00:00"


def _api(server: str) -> httpx.Client:
    return httpx.Client(base_url=server, auth=(ADMIN, ADMIN_PASSWORD))


def _game_with_offer(server: str, **offer: object) -> tuple[str, str]:
    """A game (a fresh id: the module's tests share one server) and an offer of it."""
    game = f"g-{uuid4().hex[:8]}"
    now = int(time.time())
    body = {
        "name": "Gems pack",
        "product_id": "gems",
        "contents": {"gems": 5},
        "placement": "store",
        "period": {"every": "", "max": 5},
        "frequency": {"every": "1h", "max": 0},
        "trigger": {"from": now - 3600, "to": now + 86400},
    } | offer
    with _api(server) as api:
        assert api.put(f"/v1/games/{game}", json={"name": "Galaxy"}).status_code == 200
        made = api.post(f"/v1/games/{game}/offers", json=body)
    assert made.status_code == 201, made.text
    return game, str(made.json()["id"])


def _claim(server: str, game: str, offer_id: str, player: str) -> None:
    body = {
        "gameId": game,
        "playerId": player,
        "timestamp": int(time.time()),
        "transactionId": str(uuid4()),
        "id": offer_id,
    }
    assert httpx.put(f"{server}/offers/claim", json=body).status_code == 200


def test_a_game_and_an_offer_made_then_a_player_previewed_with_the_reasons(page: Page, server: str):
    game = f"g-{uuid4().hex[:8]}"
    sign_in(page, SALES, SALES_PASSWORD)
    page.get_by_role("link", name="Offers").first.click()
    page.get_by_role("link", name="New game").click()
    page.get_by_label("Id", exact=True).fill(game)
    page.get_by_label("Name").fill("Galaxy Wars")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_have_text("Game Galaxy Wars created.")

    for name, starts, most in (("Brazil pack", None, "1"), ("Winter pack", LATER, "1")):
        page.goto(f"/admin/games/{game}/offers/new")
        page.get_by_label("Name").fill(name)
        page.get_by_label("Placement").fill("store")
        page.get_by_label("Product id").fill("gems")
        page.get_by_label("Contents (JSON)").fill('{"gems": 5}')
        page.locator("#period_max").fill(most)
        if starts:
            page.get_by_label("From").fill(starts)
        page.get_by_label("To", exact=True).fill("2099-12-31 00:00")
        page.get_by_label("Filters (JSON)").fill('{"country": {"eq": "BR"}}')
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("status")).to_contain_text(f"Offer {name} created")
    offer_id = page.url.rsplit("/", 1)[1]
    with _api(server) as api:
        first = api.get(f"/v1/games/{game}/offers").json()["items"][0]["id"]
    assert first != offer_id
    _claim(server, game, first, "player-7")

    page.goto(f"/admin/games/{game}")
    page.get_by_role("link", name="Preview as a player").click()
    page.get_by_label("Player id").fill("player-7")
    page.get_by_label("Attributes").fill("country=BR")
    page.get_by_role("button", name="Preview").click()

    reasons = page.locator("#excluded td.reason")
    expect(reasons).to_have_count(2)
    expect(page.locator("#excluded tr").filter(has_text="Brazil pack")).to_contain_text(
        "period: claimed 1 of 1 times"
    )
    expect(page.locator("#excluded tr").filter(has_text="Winter pack")).to_contain_text(
        "trigger: starts 2099-01-01 00:00:00 UTC"
    )

    page.get_by_label("Player id").fill("player-8")
    page.get_by_label("Attributes").fill("country=US")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#excluded tr").filter(has_text="Brazil pack")).to_contain_text(
        "filter: country is 'US', the offer wants 'BR'"
    )


def test_an_offer_edited_shows_its_versions_side_by_side(page: Page, server: str):
    game, offer_id = _game_with_offer(server)
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto(f"/admin/games/{game}/offers/{offer_id}")

    page.get_by_label("Name").fill("Bigger gems pack")
    page.get_by_label("Contents (JSON)").fill('{"gems": 50}')
    page.get_by_role("button", name="Save as version 2").click()

    expect(page.get_by_role("status")).to_have_text("Offer Bigger gems pack saved as version 2.")
    expect(page.locator("#changed-count")).to_have_text("2 fields changed.")
    name_row = page.locator("tr.changed").filter(has_text="name")
    expect(name_row.locator("td.was")).to_have_text("Gems pack")
    expect(name_row.locator("td.now")).to_have_text("Bigger gems pack")
    expect(page.locator("tr.changed").filter(has_text="contents.gems")).to_contain_text("50")


def test_bad_input_in_the_offer_editor_is_shown_by_its_field(page: Page, server: str):
    game, offer_id = _game_with_offer(server)
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto(f"/admin/games/{game}/offers/{offer_id}")

    page.get_by_label("Contents (JSON)").fill("{gems")
    page.get_by_role("button", name="Save as version 2").click()

    expect(page.locator("#contents-error")).to_contain_text("Not valid JSON")
    expect(page.get_by_label("Contents (JSON)")).to_have_value("{gems")


@pytest.mark.parametrize("where", ["games", "offers", "editor", "preview"])
def test_an_offers_page_holds_375_px_without_sideways_scrolling(
    page: Page, server: str, where: str
):
    game, offer_id = _game_with_offer(server, filters={"country": {"eq": "BR"}})
    path = {
        "games": "/admin/games",
        "offers": f"/admin/games/{game}/offers",
        "editor": f"/admin/games/{game}/offers/{offer_id}",
        "preview": f"/admin/games/{game}/preview?player_id=p1&attributes=country%3DUS",
    }[where]
    page.set_viewport_size(PHONE)
    sign_in(page, SALES, SALES_PASSWORD)
    page.goto(path)

    width = page.evaluate("document.documentElement.scrollWidth")

    assert width <= PHONE["width"], f"{path} is {width} px wide"
