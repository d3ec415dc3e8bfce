"""Offers in the console: games, offers, the editor, versions, enable and disable, duplicate,
Preview as a player, a player's history; audited; bad input shown by its field with nothing
written."""

from __future__ import annotations

import html
import re
from uuid import uuid4

import httpx

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.offers import service
from tests.console.conftest import submit
from tests.factories.offers import make_game, make_offer

GAME = "galaxy"
NOW = 1_772_366_400  # the test clock: 2026-03-01 12:00 UTC
OFFER = {
    "name": "Gems pack",
    "placement": "store",
    "product_id": "com.galaxy.gems",
    "cost": "",
    "contents": '{"gems": 5}',
    "period_max": "3",
    "period_every": "",
    "frequency_max": "0",
    "frequency_every": "1h",
    "trigger_from": "2026-03-01 00:00",
    "trigger_to": "2026-12-31 23:59",
    "filters": '{"country": {"eq": "BR"}}',
    "metadata": "",
}
NEW_OFFER = f"/admin/games/{GAME}/offers/new"


def _errors(page: str) -> dict[str, str]:
    found = re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', page)
    return {name: html.unescape(text) for name, text in found}


def _field(page: str, name: str) -> str:
    """The text of the textarea ``name``."""
    found = re.search(rf'<textarea id="{name}"[^>]*>([^<]*)</textarea>', page)
    assert found is not None, name
    return html.unescape(found.group(1))


async def _actions(database, action):
    async with database.begin() as conn:
        return (await audit.list_entries(conn, query=AuditQuery(action=action), limit=5)).items


async def _offers(database):
    async with database.begin() as conn:
        return await service.game_offers(conn, GAME)


async def _create(client: httpx.AsyncClient, **changes: str) -> httpx.Response:
    return await submit(client, NEW_OFFER, NEW_OFFER, {**OFFER, **changes})


# --- games -----------------------------------------------------------------------------------


async def test_creating_a_game_shows_it_and_is_audited(as_sales, database):
    response = await submit(
        as_sales,
        "/admin/games/new",
        "/admin/games/new",
        {"game_id": GAME, "name": "Galaxy", "cache_max_age": "60", "metadata": '{"theme": "x"}'},
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/games/{GAME}"
    page = await as_sales.get(f"/admin/games/{GAME}")
    assert "Game Galaxy created." in page.text
    assert "60 s" in page.text
    async with database.begin() as conn:
        game = await service.get_game(conn, GAME)
    assert game.metadata == {"theme": "x", "cacheMaxAge": 60}
    [entry] = await _actions(database, "game.create")
    assert entry.actor_name == "sam"


async def test_a_game_id_taken_is_refused_by_its_field(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME, name="Galaxy")

    response = await submit(
        as_sales, "/admin/games/new", "/admin/games/new", {"game_id": GAME, "name": "Other"}
    )

    assert response.status_code == 422
    assert "A game with this id exists" in _errors(response.text)["game_id"]
    async with database.begin() as conn:
        assert (await service.get_game(conn, GAME)).name == "Galaxy"


async def test_a_bad_cache_max_age_is_shown_by_its_field(as_sales, database):
    response = await submit(
        as_sales,
        "/admin/games/new",
        "/admin/games/new",
        {"game_id": GAME, "name": "Galaxy", "cache_max_age": "-5"},
    )

    assert response.status_code == 422
    assert "0 to" in _errors(response.text)["cache_max_age"]
    async with database.begin() as conn:
        assert await service.find_game(conn, GAME) is None


async def test_editing_a_game_keeps_its_id_and_is_audited(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME, metadata={"cacheMaxAge": 5})
    path = f"/admin/games/{GAME}/edit"

    form = await as_sales.get(path)
    assert 'value="5"' in form.text
    response = await submit(
        as_sales, path, path, {"name": "Galaxy 2", "allow_inefficient_queries": "on"}
    )

    assert response.status_code == 303
    async with database.begin() as conn:
        game = await service.get_game(conn, GAME)
    assert (game.name, game.metadata) == ("Galaxy 2", {"allowInefficientQueries": True})
    [entry] = await _actions(database, "game.update")
    assert entry.actor_name == "sam"


async def test_the_game_page_shows_its_claims_and_impressions_per_day(
    as_sales, client, database, clock
):
    await make_game(database, now=clock(), game_id=GAME)
    offer = await make_offer(database, now=clock())
    claim = {
        "gameId": GAME,
        "playerId": "p1",
        "timestamp": NOW,
        "transactionId": "tx-1",
        "id": str(offer.id),
    }
    assert (await client.put("/offers/claim", json=claim)).status_code == 200

    page = await as_sales.get(f"/admin/games/{GAME}")

    assert page.status_code == 200
    assert "Claims per day" in page.text
    assert "2026-03-01: 1</title>" in page.text


async def test_the_games_list_links_each_game(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME, name="Galaxy")

    page = await as_sales.get("/admin/games")

    assert f'href="/admin/games/{GAME}"' in page.text


async def test_an_unknown_game_is_404(as_sales):
    assert (await as_sales.get("/admin/games/nope")).status_code == 404
    assert (await as_sales.get("/admin/games/-bad")).status_code == 404


# --- offers ----------------------------------------------------------------------------------


async def test_creating_an_offer_saves_every_field_and_is_audited(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME)

    response = await _create(as_sales, cost='{"gold": 10}', metadata='{"color": "blue"}')

    assert response.status_code == 303
    [offer] = await _offers(database)
    spec = offer.spec
    assert (spec.name, spec.placement, spec.product_id) == ("Gems pack", "store", "com.galaxy.gems")
    assert (spec.cost, spec.contents) == ({"gold": 10}, {"gems": 5})
    assert spec.metadata == {"color": "blue"}
    assert (spec.period.max, spec.period.every) == (3, "")
    assert (spec.frequency.max, spec.frequency.every) == (0, "1h")
    assert (spec.trigger_from, spec.trigger_to) == (1_772_323_200, 1_798_761_540)
    assert spec.filters["country"].value == "BR"
    assert response.headers["location"] == f"/admin/games/{GAME}/offers/{offer.id}"
    [entry] = await _actions(database, "offer.create")
    assert entry.actor_name == "sam"


async def test_an_offer_without_product_or_cost_is_refused_by_the_product_field(
    as_sales, database, clock
):
    await make_game(database, now=clock(), game_id=GAME)

    response = await _create(as_sales, product_id="", cost="")

    assert response.status_code == 422
    assert _errors(response.text) == {
        "product_id": "An offer needs a productId or a cost (or both)."
    }
    assert await _offers(database) == []


async def test_bad_fields_of_an_offer_are_each_shown_by_the_field(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME)

    response = await _create(
        as_sales, contents="{gems", period_max="many", trigger_to="soon", name=""
    )

    assert response.status_code == 422
    errors = _errors(response.text)
    assert errors["contents"].startswith("Not valid JSON")
    assert errors["period_max"] == "A whole number."
    assert errors["trigger_to"].startswith("A UTC time")
    assert errors["name"] == "Required."
    assert "{gems" in response.text  # what was typed is kept
    assert await _offers(database) == []


async def test_the_domains_checks_are_shown_by_their_field(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME)

    durations = await _create(as_sales, period_every="1 day")
    filters = await _create(as_sales, filters='{"level": {"geq": 5, "lt": 1}}')
    trigger = await _create(as_sales, trigger_from="2026-12-31 00:00", trigger_to="2026-01-01")

    assert _errors(durations.text)["period_every"].startswith("Period.every: invalid duration")
    assert "geq must be less than lt" in _errors(filters.text)["filters"]
    assert _errors(trigger.text) == {"trigger_to": "Trigger.to must not be before trigger.from."}
    assert await _offers(database) == []


async def test_the_offers_list_shows_each_status_and_filters_by_placement(
    as_sales, database, clock
):
    await make_game(database, now=clock(), game_id=GAME)
    await make_offer(database, now=clock(), name="Live one")
    await make_offer(database, now=clock(), name="Off one", enabled=False)
    await make_offer(
        database, now=clock(), name="Later one", placement="popup",
        trigger={"from": NOW + 3600, "to": NOW + 7200},
    )  # fmt: skip
    await make_offer(database, now=clock(), name="Over one", trigger={"from": 0, "to": NOW - 1})

    every = await as_sales.get(f"/admin/games/{GAME}/offers")
    popups = await as_sales.get(f"/admin/games/{GAME}/offers", params={"placement": "popup"})

    statuses = re.findall(r'>([A-Z][a-z]+ one)</a></td>\s*<td[^>]*>[^<]*</td>\s*<td[^>]*>'
                          r'<span class="badge [a-z-]+">([a-z]+)</span>', every.text)  # fmt: skip
    assert sorted(statuses) == [
        ("Later one", "scheduled"),
        ("Live one", "live"),
        ("Off one", "disabled"),
        ("Over one", "ended"),
    ]
    assert "Later one" in popups.text
    assert "Live one" not in popups.text


async def test_editing_an_offer_makes_its_next_version_and_shows_what_changed(
    as_sales, database, clock
):
    await make_game(database, now=clock(), game_id=GAME)
    await _create(as_sales)
    [offer] = await _offers(database)
    path = f"/admin/games/{GAME}/offers/{offer.id}"

    response = await submit(as_sales, path, path, {**OFFER, "name": "Bigger pack"})

    assert response.status_code == 303
    versions = await as_sales.get(response.headers["location"])
    assert "Offer Bigger pack saved as version 2." in versions.text
    assert "1 field changed." in versions.text
    changed = re.findall(
        r'<tr class="changed">\s*<td class="diff-label"[^>]*>([a-z_.]+)', versions.text
    )
    assert changed == ["name"]
    assert "Gems pack" in versions.text
    [entry] = await _actions(database, "offer.update")
    assert entry.actor_name == "sam"


async def test_any_two_versions_can_be_compared(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME)
    await _create(as_sales)
    [offer] = await _offers(database)
    path = f"/admin/games/{GAME}/offers/{offer.id}"
    await submit(as_sales, path, path, {**OFFER, "name": "Second"})
    await submit(as_sales, path, path, {**OFFER, "name": "Third", "placement": "popup"})

    page = await as_sales.get(f"{path}/versions", params={"a": 1, "b": 3})

    assert "Version 1 beside version 3" in page.text
    assert "2 fields changed." in page.text


async def test_disabling_and_enabling_an_offer_is_audited(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME)
    offer = await make_offer(database, now=clock())
    path = f"/admin/games/{GAME}/offers/{offer.id}"

    disabled = await submit(as_sales, path, f"{path}/disable")
    [after_disable] = await _offers(database)
    enabled = await submit(as_sales, path, f"{path}/enable")
    [after_enable] = await _offers(database)

    assert (disabled.status_code, enabled.status_code) == (303, 303)
    assert (after_disable.enabled, after_enable.enabled) == (False, True)
    assert len(await _actions(database, "offer.disable")) == 1
    assert len(await _actions(database, "offer.enable")) == 1


async def test_duplicating_an_offer_fills_the_new_offer_form_with_its_fields(
    as_sales, database, clock
):
    await make_game(database, now=clock(), game_id=GAME)
    await _create(as_sales)
    [offer] = await _offers(database)

    form = await as_sales.get(NEW_OFFER, params={"from": str(offer.id)})
    assert 'value="Gems pack (copy)"' in form.text
    assert "country" in _field(form.text, "filters")
    response = await _create(as_sales, name="Gems pack (copy)")

    assert response.status_code == 303
    names = sorted(o.spec.name for o in await _offers(database))
    assert names == ["Gems pack", "Gems pack (copy)"]


async def test_an_unknown_offer_is_404(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME)

    assert (await as_sales.get(f"/admin/games/{GAME}/offers/{uuid4()}")).status_code == 404
    assert (await as_sales.get(f"/admin/games/{GAME}/offers/not-a-uuid")).status_code == 404


# --- players ---------------------------------------------------------------------------------


async def test_previewing_a_player_shows_the_offers_shown_and_why_others_are_not(
    as_sales, database, clock
):
    await make_game(database, now=clock(), game_id=GAME)
    await make_offer(database, now=clock(), name="For Brazil", filters={"country": {"eq": "BR"}})
    await make_offer(database, now=clock(), name="For Germany", filters={"country": {"eq": "DE"}})

    page = await as_sales.get(
        f"/admin/games/{GAME}/preview", params={"player_id": "p1", "attributes": "country=BR"}
    )

    assert page.status_code == 200
    shown = page.text.split('id="shown"')[1].split('id="excluded"')[0]
    assert "For Brazil" in shown
    assert "For Germany" not in shown
    reasons = re.findall(r'class="reason">([^<]*)<', page.text)
    assert [html.unescape(r) for r in reasons] == ["filter: country is 'BR', the offer wants 'DE'"]


async def test_a_bad_attribute_line_is_shown_by_its_field(as_sales, database, clock):
    await make_game(database, now=clock(), game_id=GAME)

    page = await as_sales.get(
        f"/admin/games/{GAME}/preview", params={"player_id": "p1", "attributes": "country"}
    )

    assert page.status_code == 422
    assert _errors(page.text) == {"attributes": "Line 1: name=value, e.g. country=BR."}


async def test_a_players_page_shows_their_claims_and_impressions(as_sales, client, database, clock):
    await make_game(database, now=clock(), game_id=GAME)
    offer = await make_offer(database, now=clock(), name="Gems")
    claim = {
        "gameId": GAME,
        "playerId": "p/1",
        "timestamp": NOW,
        "transactionId": "tx-42",
        "id": str(offer.id),
    }
    await client.put("/offers/claim", json=claim)
    seen = {"gameId": GAME, "playerId": "p/1", "impressionId": str(uuid4())}
    await client.put(f"/offers/{offer.id}/impressions", json=seen)

    page = await as_sales.get(f"/admin/games/{GAME}/player", params={"id": "p/1"})

    assert page.status_code == 200
    assert "tx-42" in page.text
    assert seen["impressionId"] in page.text
    assert "2026-03-01 12:00:00 UTC" in page.text


async def test_the_offers_pages_are_not_served_without_sign_in(client, database, clock):
    await make_game(database, now=clock(), game_id=GAME)

    response = await client.get(f"/admin/games/{GAME}/preview")

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/sign-in")
