"""Why not? ``POST /v1/games/{game}/offer-explanations``: what ``/available-offers`` gives a
player now, and for each offer left out the first rule that does, in words.

Then a property: on many generated games, offers, players and histories, the explanation's
shown offers are exactly ``/available-offers``' answer (with the in-process catalog and with
the SQL path), and every offer left out has a reason.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from promos.settings import Settings
from tests.conftest import FakeClock

GAME = "galaxy"
PLAYER = "player-7"
NOW = 1_772_366_400  # the test clock: 2026-03-01 12:00 UTC


def offer_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Gems pack",
        "product_id": "com.galaxy.gems",
        "contents": {"gems": 5},
        "placement": "store",
        "period": {"every": "", "max": 10},
        "frequency": {"every": "", "max": 10},
        "trigger": {"from": NOW - 3600, "to": NOW + 86400},
    }
    body.update(overrides)
    return body


async def make_game(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    metadata: dict[str, Any] | None = None,
    game: str = GAME,
) -> None:
    response = await client.put(
        f"/v1/games/{game}", json={"name": "Galaxy", "metadata": metadata or {}}, headers=auth
    )
    assert response.status_code == 200, response.text


async def make_offer(
    client: httpx.AsyncClient, auth: dict[str, str], game: str = GAME, **overrides: Any
) -> str:
    response = await client.post(
        f"/v1/games/{game}/offers", json=offer_body(**overrides), headers=auth
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def explain(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    player: str = PLAYER,
    game: str = GAME,
    **attributes: str,
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/games/{game}/offer-explanations",
        json={"player_id": player, "attributes": attributes},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def reason(client: httpx.AsyncClient, auth: dict[str, str], **attributes: str) -> str:
    """The one offer's reason (it must be left out)."""
    (offer,) = (await explain(client, auth, **attributes))["offers"]
    assert offer["shown"] is False
    assert isinstance(offer["reason"], str)
    return offer["reason"]


async def available(
    client: httpx.AsyncClient, player: str = PLAYER, game: str = GAME, **attributes: str
) -> dict[str, Any]:
    response = await client.get(
        "/available-offers", params={"player-id": player, "game-id": game, **attributes}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def claim(
    client: httpx.AsyncClient, offer_id: str, player: str = PLAYER, game: str = GAME
) -> None:
    body = {
        "gameId": game,
        "playerId": player,
        "timestamp": NOW,
        "transactionId": str(uuid4()),
        "id": offer_id,
    }
    response = await client.put("/offers/claim", json=body)
    assert response.status_code == 200, response.text


async def see(
    client: httpx.AsyncClient, offer_id: str, player: str = PLAYER, game: str = GAME
) -> None:
    body = {"gameId": game, "playerId": player, "impressionId": str(uuid4())}
    response = await client.put(f"/offers/{offer_id}/impressions", json=body)
    assert response.status_code == 200, response.text


async def test_an_offer_shown_is_in_the_answer_of_available_offers(client, auth):
    await make_game(client, auth)
    offer_id = await make_offer(client, auth)

    explained = await explain(client, auth)

    assert explained["available"] == await available(client)
    (offer,) = explained["offers"]
    assert offer["id"] == offer_id
    assert offer["shown"] is True
    assert offer["rule"] is None
    assert offer["reason"] is None


async def test_a_disabled_offer_is_left_out_as_disabled(client, auth):
    await make_game(client, auth)
    offer_id = await make_offer(client, auth)
    await client.post(f"/v1/games/{GAME}/offers/{offer_id}/disable", headers=auth)

    assert await reason(client, auth) == "disabled: the offer is switched off"


async def test_an_offer_not_yet_triggered_says_when_it_starts(client, auth):
    await make_game(client, auth)
    starts = int(datetime(2026, 12, 24, 10, 0, tzinfo=UTC).timestamp())
    await make_offer(client, auth, trigger={"from": starts, "to": starts + 86400})

    assert await reason(client, auth) == "trigger: starts 2026-12-24 10:00:00 UTC"


async def test_an_offer_whose_trigger_is_over_says_when_it_ended(client, auth):
    await make_game(client, auth)
    await make_offer(client, auth, trigger={"from": NOW - 7200, "to": NOW - 3600})

    assert await reason(client, auth) == "trigger: ended 2026-03-01 11:00:00 UTC"


async def test_an_interval_filter_names_the_attribute_and_its_bound(client, auth):
    await make_game(client, auth, {"allowInefficientQueries": True})
    await make_offer(client, auth, filters={"level": {"geq": 20, "lt": 50}})

    assert await reason(client, auth, level="12") == "filter: level 12 is below 20"
    assert await reason(client, auth, level="50") == "filter: level 50 is not below 50"


async def test_an_equality_filter_says_what_it_wants(client, auth):
    await make_game(client, auth)
    await make_offer(client, auth, filters={"country": {"eq": "BR"}})

    wanted = "filter: country is 'US', the offer wants 'BR'"

    assert await reason(client, auth, country="US") == wanted


async def test_an_attribute_no_filter_names_is_a_reason_without_inefficient_queries(client, auth):
    await make_game(client, auth)
    await make_offer(client, auth)

    assert (await reason(client, auth, platform="ios")).startswith(
        "filter: platform was sent and the offer has no filter on it"
    )


async def test_claims_up_to_the_period_maximum_leave_the_offer_out(client, auth):
    await make_game(client, auth)
    offer_id = await make_offer(client, auth, period={"every": "", "max": 3})
    for _ in range(3):
        await claim(client, offer_id)

    assert await reason(client, auth) == "period: claimed 3 of 3 times"


async def test_a_wait_between_claims_says_when_the_offer_comes_back(client, auth, clock):
    await make_game(client, auth)
    offer_id = await make_offer(client, auth, period={"every": "24h", "max": 0})
    await claim(client, offer_id)
    clock.advance(hours=1)

    assert await reason(client, auth) == (
        "period: claimed at 2026-03-01 12:00:00 UTC, once per 24h; "
        "again from 2026-03-02 12:00:00 UTC"
    )


async def test_impressions_up_to_the_frequency_maximum_leave_the_offer_out(client, auth):
    await make_game(client, auth)
    offer_id = await make_offer(client, auth, frequency={"every": "", "max": 2})
    await see(client, offer_id)
    await see(client, offer_id)

    explained = (await explain(client, auth))["offers"][0]

    assert explained["rule"] == "frequency"
    assert explained["reason"] == "frequency: seen 2 of 2 times"
    assert explained["impressions"] == 2


async def test_the_first_rule_that_fails_is_the_one_named(client, auth):
    await make_game(client, auth)
    offer_id = await make_offer(client, auth, filters={"country": {"eq": "BR"}})
    await client.post(f"/v1/games/{GAME}/offers/{offer_id}/disable", headers=auth)

    assert await reason(client, auth, country="US") == "disabled: the offer is switched off"


async def test_another_players_history_does_not_count(client, auth):
    await make_game(client, auth)
    offer_id = await make_offer(client, auth, period={"every": "", "max": 1})
    await claim(client, offer_id, player="someone-else")

    assert (await explain(client, auth))["offers"][0]["shown"] is True


async def test_an_unknown_game_is_404(client, auth):
    response = await client.post(
        "/v1/games/nope/offer-explanations", json={"player_id": PLAYER}, headers=auth
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "game_not_found"


async def test_the_explanation_needs_a_credential(client, auth):
    await make_game(client, auth)

    response = await client.post(f"/v1/games/{GAME}/offer-explanations", json={"player_id": "p"})

    assert response.status_code == 401


async def test_the_route_parameters_are_not_attributes(client, auth):
    await make_game(client, auth)

    response = await client.post(
        f"/v1/games/{GAME}/offer-explanations",
        json={"player_id": PLAYER, "attributes": {"game-id": "other"}},
        headers=auth,
    )

    assert response.status_code == 422
    assert "game-id is not an attribute" in response.text


# --- the property: the explanation agrees with /available-offers -----------------------------

both_catalogs = pytest.mark.parametrize("catalog_seconds", [1.0, 0.0], ids=["catalog", "sql"])
ROUNDS = 16
COUNTRIES = ("BR", "US", "DE")


@pytest.fixture
def catalog_seconds() -> float:
    return 1.0


@pytest.fixture
def settings(database_url: str, catalog_seconds: float) -> Settings:
    return Settings(
        database_url=database_url,
        db_pool_size=20,
        db_max_overflow=10,
        offers_catalog_seconds=catalog_seconds,
    )


def random_cap(rng: random.Random) -> dict[str, Any]:
    every = rng.choice(["", "", "30m", "2h"])
    most = rng.choice([0, 1, 2, 3]) if every else rng.choice([1, 2, 3])
    return {"every": every, "max": most}


def random_filters(rng: random.Random) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if rng.random() < 0.5:
        filters["country"] = {rng.choice(["eq", "neq"]): rng.choice(COUNTRIES)}
    if rng.random() < 0.5:
        low = rng.randrange(0, 30)
        filters["level"] = rng.choice(
            [{"geq": low}, {"lt": low + 1}, {"geq": low, "lt": low + rng.randrange(1, 20)}]
        )
    return filters


def random_attributes(rng: random.Random) -> dict[str, str]:
    attributes = {}
    if rng.random() < 0.6:
        attributes["country"] = rng.choice(COUNTRIES)
    if rng.random() < 0.6:
        attributes["level"] = rng.choice([str(rng.randrange(0, 50)), "x"])
    if rng.random() < 0.15:
        attributes["platform"] = "ios"
    return attributes


async def random_offer(
    client: httpx.AsyncClient, auth: dict[str, str], rng: random.Random, game: str, now: int
) -> str:
    start = now + rng.choice([-7200, -60, 0, 600, 5400])
    offer_id = await make_offer(
        client,
        auth,
        game,
        placement=rng.choice(["store", "popup"]),
        period=random_cap(rng),
        frequency=random_cap(rng),
        trigger={"from": start, "to": start + rng.choice([0, 1800, 86400, 3 * 86400])},
        filters=random_filters(rng),
    )
    if rng.random() < 0.15:
        await client.post(f"/v1/games/{game}/offers/{offer_id}/disable", headers=auth)
    return offer_id


@both_catalogs
async def test_the_explanation_shows_exactly_what_available_offers_answers(
    client: httpx.AsyncClient, auth: dict[str, str], clock: FakeClock
) -> None:
    rng = random.Random(15)  # seeded: a failure is the same failure when run again
    for round_ in range(ROUNDS):
        game = f"game-{round_}"
        now = int(clock().timestamp())
        await make_game(client, auth, {"allowInefficientQueries": rng.random() < 0.5}, game)
        offer_ids = [
            await random_offer(client, auth, rng, game, now) for _ in range(rng.randrange(3, 7))
        ]
        players = [f"p{n}" for n in range(3)]
        for _ in range(rng.randrange(0, 16)):  # histories, spread over time
            action = rng.choice([claim, claim, see])
            await action(client, rng.choice(offer_ids), rng.choice(players), game)
            clock.advance(minutes=rng.choice([0, 5, 20, 45]))
        for player in players:
            for _ in range(3):
                attributes = random_attributes(rng)
                explained = await explain(client, auth, player, game, **attributes)
                answer = await available(client, player, game, **attributes)
                context = f"round {round_}, {player}, {attributes}, {explained}"
                assert explained["available"] == answer, context
                shown = {o["id"] for o in explained["offers"] if o["shown"]}
                assert shown == {o["id"] for os in answer.values() for o in os}
                assert sorted(o["id"] for o in explained["offers"]) == sorted(offer_ids)
                for offer in explained["offers"]:
                    assert offer["shown"] or (offer["rule"] and offer["reason"]), context
        clock.advance(days=1)
