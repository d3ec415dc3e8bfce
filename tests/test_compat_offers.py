"""Offers (seed 004), rule by rule from its document: games, offers, available offers,
claims, impressions, offer info. Time moves with the FakeClock, never by sleeping.

The player routes are served by the lean fast path and by FastAPI; the filter rules are
checked with the in-process catalog and with the SQL path (``PROMOS_OFFERS_CATALOG_SECONDS=0``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select, text

from promos.app import create_app
from promos.db import Database
from promos.offers.tables import games, offer_claims, offer_impressions, offer_players, offers
from promos.settings import Settings
from tests.conftest import FakeClock
from tests.factories.offers import make_game, offer_fields

GAME = "galaxy"
PLAYER = "player-1"

both_paths = pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "fastapi"])
both_catalogs = pytest.mark.parametrize("catalog_seconds", [1.0, 0.0], ids=["catalog", "sql"])


@pytest.fixture
def catalog_seconds() -> float:
    return 1.0


@pytest.fixture
def settings(database_url: str, fast_path: bool, catalog_seconds: float) -> Settings:
    return Settings(
        database_url=database_url,
        db_pool_size=20,
        db_max_overflow=10,
        fast_path=fast_path,
        offers_catalog_seconds=catalog_seconds,
    )


@pytest.fixture
async def game(database: Database, clock: FakeClock) -> str:
    await make_game(database, now=clock(), game_id=GAME)
    return GAME


@pytest.fixture
async def inefficient_game(database: Database, clock: FakeClock) -> str:
    await make_game(database, now=clock(), game_id=GAME, metadata={"allowInefficientQueries": True})
    return GAME


def seed_error(response: httpx.Response, status: int) -> str:
    """The seed's error shape; returns the description."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code", "description"}, body
    assert all(isinstance(v, str) and v for v in body.values())
    return str(body["description"])


async def create(
    client: httpx.AsyncClient, auth: dict[str, str], clock: FakeClock, **kw: Any
) -> str:
    response = await client.post("/offers", json=offer_fields(clock(), **kw), headers=auth)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def available(
    client: httpx.AsyncClient, player: str = PLAYER, **attributes: str
) -> dict[str, Any]:
    params = {"player-id": player, "game-id": GAME, **attributes}
    response = await client.get("/available-offers", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def available_ids(client: httpx.AsyncClient, player: str = PLAYER, **attrs: str) -> set[str]:
    return {
        o["id"] for offers_ in (await available(client, player, **attrs)).values() for o in offers_
    }


async def claim(
    client: httpx.AsyncClient, offer_id: str | None, *, transaction: str = "tx-1", **kw: Any
) -> httpx.Response:
    body = {
        "gameId": GAME,
        "playerId": PLAYER,
        "timestamp": 1_772_366_400,
        "transactionId": transaction,
    }
    if offer_id is not None:
        body["id"] = offer_id
    body.update(kw)
    return await client.put("/offers/claim", json=body)


async def impression(
    client: httpx.AsyncClient, offer_id: str, impression_id: str | None = None, player: str = PLAYER
) -> httpx.Response:
    body = {"gameId": GAME, "playerId": player, "impressionId": impression_id or str(uuid4())}
    return await client.put(f"/offers/{offer_id}/impressions", json=body)


async def count(database: Database, table: Any) -> int:
    async with database.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


# --- games -----------------------------------------------------------------------------------


async def test_upsert_game_inserts_then_updates_and_lists(client, auth):
    created = await client.put(
        "/games/galaxy_wars-2",
        json={"name": "Galaxy", "metadata": {"cacheMaxAge": 60}},
        headers=auth,
    )
    assert created.status_code == 200
    assert created.json() == {"gameId": "galaxy_wars-2"}
    updated = await client.put("/games/galaxy_wars-2", json={"name": "Galaxy II"}, headers=auth)
    assert updated.json() == {"gameId": "galaxy_wars-2"}

    listed = await client.get("/games", headers=auth)

    assert listed.status_code == 200
    assert listed.json() == [{"id": "galaxy_wars-2", "name": "Galaxy II", "metadata": {}}]


@pytest.mark.parametrize(
    ("game_id", "body"),
    [
        ("-starts-with-dash", {"name": "x"}),
        ("has.dot", {"name": "x"}),
        ("g" * 256, {"name": "x"}),
        ("ok", {}),
        ("ok", {"name": "n" * 256}),
        ("ok", {"name": 5}),
        ("ok", {"name": "x", "metadata": [1]}),
        ("ok", {"name": "x", "metadata": {"cacheMaxAge": "60"}}),
        ("ok", {"name": "x", "metadata": {"cacheMaxAge": -1}}),
        ("ok", {"name": "x", "metadata": {"allowInefficientQueries": "yes"}}),
    ],
)
async def test_invalid_games_are_422_and_not_stored(client, auth, database, game_id, body):
    response = await client.put(f"/games/{game_id}", json=body, headers=auth)

    seed_error(response, 422)
    assert await count(database, games) == 0


async def test_game_routes_need_a_credential(client):
    seed_error(await client.put("/games/galaxy", json={"name": "x"}), 401)
    seed_error(await client.get("/games"), 401)
    seed_error(await client.get("/offers", params={"game-id": GAME}), 401)
    seed_error(await client.post("/offers", json={}), 401)


async def test_the_seeds_basic_auth_variables_are_a_credential(settings, clock):
    seeded = settings.model_copy(
        update={"offers_basic_auth_username": "offers", "offers_basic_auth_password": "s3cret"}
    )
    from pydantic import SecretStr  # noqa: PLC0415

    seeded = seeded.model_copy(update={"offers_basic_auth_password": SecretStr("s3cret")})
    app = create_app(seeded, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            good = await http.put(
                "/games/galaxy", json={"name": "G"}, auth=httpx.BasicAuth("offers", "s3cret")
            )
            bad = await http.put(
                "/games/galaxy", json={"name": "G"}, auth=httpx.BasicAuth("offers", "wrong")
            )
    assert good.status_code == 200
    seed_error(bad, 401)


async def test_a_promos_user_over_http_basic_manages_games(client, admin_auth):
    response = await client.put("/games/galaxy", json={"name": "G"}, headers=admin_auth)
    assert response.status_code == 200


# --- offers ----------------------------------------------------------------------------------


async def test_create_offer_is_enabled_at_version_one(client, auth, clock, game):
    response = await client.post(
        "/offers",
        json=offer_fields(clock(), cost={"gems": 500}, filters={"level": {"geq": 1, "lt": 10}}),
        headers=auth,
    )

    assert response.status_code == 200
    body = response.json()
    fields = offer_fields(clock())
    assert body["enabled"] is True
    assert body["version"] == 1
    assert body["name"] == fields["name"]
    assert body["productId"] == fields["productId"]
    assert body["cost"] == {"gems": 500}
    assert body["gameId"] == GAME
    assert body["contents"] == fields["contents"]
    assert body["period"] == fields["period"]
    assert body["trigger"] == fields["trigger"]
    assert body["filters"] == {"level": {"geq": 1, "lt": 10}}


@pytest.mark.parametrize(
    "overrides",
    [
        {"productId": None},  # neither productId nor cost
        {"name": ""},
        {"name": "n" * 256},
        {"placement": "p" * 256},
        {"contents": None},
        {"contents": [1, 2]},
        {"gameId": "unknown-game"},
        {"gameId": "-bad"},
        {"period": {"every": "10 minutes", "max": 1}},
        {"period": {"every": "1h"}},
        {"period": {"every": "", "max": 0}},
        {"frequency": {"every": "", "max": 0}},
        {"frequency": {"every": "5", "max": 1}},
        {"frequency": {"every": "1h", "max": -1}},
        {"trigger": {"from": 1}},
        {"trigger": {"from": "1", "to": 2}},
        {"trigger": {"from": 10, "to": 5}},
        {"filters": {"level": {"eq": 3}}},
        {"filters": {"level": {"eq": "3", "neq": "4"}}},
        {"filters": {"level": {"geq": "1"}}},
        {"filters": {"level": {"geq": 5, "lt": 1}}},
        {"filters": {"level": {"gt": 1}}},
        {"filters": {"level": 3}},
        {"filters": ["level"]},
    ],
)
async def test_invalid_offers_are_422_and_not_stored(
    client, auth, database, clock, *, game, overrides
):
    fields = offer_fields(clock(), **overrides)
    for key in [k for k, v in overrides.items() if v is None]:
        del fields[key]

    response = await client.post("/offers", json=fields, headers=auth)

    seed_error(response, 422)
    assert await count(database, offers) == 0


@pytest.mark.parametrize("every", ["300ms", "1.5h", "2h45m", "-1.5h", "1us", "1µs", "10ns", "0"])
async def test_go_durations_are_accepted(client, auth, clock, game, every):
    await create(client, auth, clock, period={"every": every, "max": 0})


async def test_a_cost_without_a_product_id_is_enough(client, auth, clock, game):
    fields = offer_fields(clock(), cost={"gems": 5})
    del fields["productId"]
    response = await client.post("/offers", json=fields, headers=auth)
    assert response.status_code == 200
    assert response.json()["productId"] is None


async def test_update_offer_makes_a_new_version_with_the_same_id(client, auth, clock, game):
    offer_id = await create(client, auth, clock)
    before = (await client.get("/offers", params={"game-id": GAME}, headers=auth)).json()

    response = await client.put(
        f"/offers/{offer_id}", json=offer_fields(clock(), name="Bigger pack"), headers=auth
    )

    assert response.status_code == 200
    assert response.json() == {"id": offer_id, "version": 2}
    after = (await client.get("/offers", params={"game-id": GAME}, headers=auth)).json()
    [old], [new] = before["offers"], after["offers"]
    assert new["id"] == old["id"] == offer_id
    assert new["name"] == "Bigger pack"
    assert new["version"] == 2
    assert new["key"] != old["key"]


async def test_update_of_an_unknown_offer_is_404(client, auth, clock, game):
    response = await client.put(f"/offers/{uuid4()}", json=offer_fields(clock()), headers=auth)
    seed_error(response, 404)


async def test_update_with_a_bad_payload_is_422_and_changes_nothing(client, auth, clock, game):
    offer_id = await create(client, auth, clock)
    response = await client.put(
        f"/offers/{offer_id}",
        json=offer_fields(clock(), period={"every": "x", "max": 1}),
        headers=auth,
    )
    seed_error(response, 422)
    [offer] = (await client.get("/offers", params={"game-id": GAME}, headers=auth)).json()["offers"]
    assert offer["version"] == 1


async def test_disable_and_enable(client, auth, clock, game):
    offer_id = await create(client, auth, clock)

    disabled = await client.put(
        f"/offers/{offer_id}/disable", params={"game-id": GAME}, headers=auth
    )
    assert disabled.status_code == 200
    assert disabled.json() == {}
    assert await available_ids(client) == set()
    [listed] = (await client.get("/offers", params={"game-id": GAME}, headers=auth)).json()[
        "offers"
    ]
    assert listed["enabled"] is False

    enabled = await client.put(f"/offers/{offer_id}/enable", params={"game-id": GAME}, headers=auth)
    assert enabled.json() == {}
    assert await available_ids(client) == {offer_id}


async def test_enable_and_disable_of_an_unknown_offer_are_404(client, auth, game):
    for action in ("enable", "disable"):
        response = await client.put(
            f"/offers/{uuid4()}/{action}", params={"game-id": GAME}, headers=auth
        )
        seed_error(response, 404)


async def test_enable_of_another_games_offer_is_404(client, auth, clock, game, database):
    offer_id = await create(client, auth, clock)
    await make_game(database, now=clock(), game_id="other")
    response = await client.put(
        f"/offers/{offer_id}/enable", params={"game-id": "other"}, headers=auth
    )
    seed_error(response, 404)


async def test_list_pages_by_page_number(client, auth, clock, game):
    ids = []
    for n in range(5):
        ids.append(await create(client, auth, clock, name=f"offer {n}"))
        clock.advance(seconds=1)

    first = (await client.get("/offers", params={"game-id": GAME, "limit": 2}, headers=auth)).json()
    last = (
        await client.get("/offers", params={"game-id": GAME, "limit": 2, "offset": 2}, headers=auth)
    ).json()
    everything = (await client.get("/offers", params={"game-id": GAME}, headers=auth)).json()

    assert first["pages"] == 3
    assert [o["id"] for o in first["offers"]] == ids[:2]
    assert [o["id"] for o in last["offers"]] == ids[4:]
    assert everything["pages"] == 1
    assert [o["id"] for o in everything["offers"]] == ids


async def test_list_of_a_game_without_offers_is_empty(client, auth, game):
    response = await client.get("/offers", params={"game-id": GAME}, headers=auth)
    assert response.json() == {"offers": [], "pages": 0}


@pytest.mark.parametrize(
    "params", [{}, {"game-id": GAME, "limit": 0}, {"game-id": GAME, "offset": -1}]
)
async def test_list_with_bad_parameters_is_422(client, auth, game, params):
    seed_error(await client.get("/offers", params=params, headers=auth), 422)


# --- available offers ------------------------------------------------------------------------


@both_paths
async def test_available_offers_by_placement_with_expire_at(client, auth, clock, game):
    store = await create(client, auth, clock, cost={"gems": 1})
    popup = await create(client, auth, clock, placement="popup", productId="com.popup")

    body = await available(client)

    fields = offer_fields(clock())
    assert body == {
        "store": [
            {
                "id": store,
                "productId": fields["productId"],
                "cost": {"gems": 1},
                "contents": fields["contents"],
                "metadata": fields["metadata"],
                "expireAt": fields["trigger"]["to"],
            }
        ],
        "popup": [
            {
                "id": popup,
                "productId": "com.popup",
                "contents": fields["contents"],
                "metadata": fields["metadata"],
                "expireAt": fields["trigger"]["to"],
            }
        ],
    }


@both_paths
@pytest.mark.parametrize(
    "params", [{"game-id": GAME}, {"player-id": PLAYER}, {"player-id": "", "game-id": GAME}]
)
async def test_available_offers_without_player_or_game_is_400(client, game, params):
    response = await client.get("/available-offers", params=params)
    seed_error(response, 400)


@both_paths
async def test_available_offers_cache_control_default_and_per_game(client, auth, database, clock):
    await make_game(database, now=clock(), game_id=GAME)
    response = await client.get("/available-offers", params={"player-id": PLAYER, "game-id": GAME})
    assert response.headers["cache-control"] == "max-age=300"

    await client.put(
        "/games/galaxy", json={"name": "G", "metadata": {"cacheMaxAge": 17}}, headers=auth
    )
    response = await client.get("/available-offers", params={"player-id": PLAYER, "game-id": GAME})
    assert response.headers["cache-control"] == "max-age=17"


async def test_the_default_max_age_is_configurable_by_the_seeds_variable(monkeypatch):
    monkeypatch.setenv("OFFERS_CACHE_MAXAGESECONDS", "42")
    assert Settings().offers_cache_max_age_seconds == 42


async def test_available_offers_of_an_unknown_game_are_none(client):
    assert await available(client) == {}


@both_catalogs
async def test_trigger_bounds_the_offer_in_time(client, auth, clock, game):
    start = int(clock().timestamp()) + 60
    offer_id = await create(client, auth, clock, trigger={"from": start, "to": start + 60})

    assert await available_ids(client) == set()
    clock.advance(seconds=60)
    assert await available_ids(client) == {offer_id}
    clock.advance(seconds=60)
    assert await available_ids(client) == {offer_id}  # "to" itself still holds
    clock.advance(seconds=1)
    assert await available_ids(client) == set()


@both_paths
async def test_period_max_counts_claims(client, auth, clock, game):
    offer_id = await create(client, auth, clock, period={"every": "", "max": 2})

    first = await claim(client, offer_id, transaction="a")
    assert first.json() == {
        "contents": {"gems": 5, "gold": 100},
        "nextAt": int(clock().timestamp()),
    }
    assert await available_ids(client) == {offer_id}
    second = await claim(client, offer_id, transaction="b")

    assert second.status_code == 200
    assert second.json() == {"contents": {"gems": 5, "gold": 100}}  # no nextAt: max reached
    assert await available_ids(client) == set()
    assert await available_ids(client, "another-player") == {offer_id}


@both_paths
async def test_period_every_waits_after_each_claim(client, auth, clock, game):
    offer_id = await create(client, auth, clock, period={"every": "1h", "max": 0})

    response = await claim(client, offer_id)

    assert response.json()["nextAt"] == int(clock().timestamp()) + 3600
    clock.advance(minutes=59, seconds=59)
    assert await available_ids(client) == set()
    clock.advance(seconds=1)
    assert await available_ids(client) == {offer_id}


async def test_frequency_max_counts_impressions(client, auth, clock, game):
    offer_id = await create(client, auth, clock, frequency={"every": "", "max": 2})

    first = await impression(client, offer_id)
    assert first.json() == {"nextAt": int(clock().timestamp())}
    second = await impression(client, offer_id)

    assert second.status_code == 200
    assert second.json() == {}
    assert await available_ids(client) == set()
    assert await available_ids(client, "another-player") == {offer_id}


async def test_frequency_every_waits_after_each_impression(client, auth, clock, game):
    offer_id = await create(client, auth, clock, frequency={"every": "1.5h", "max": 0})

    response = await impression(client, offer_id)

    assert response.json() == {"nextAt": int(clock().timestamp()) + 5400}
    clock.advance(minutes=89)
    assert await available_ids(client) == set()
    clock.advance(minutes=1)
    assert await available_ids(client) == {offer_id}


@both_catalogs
async def test_without_attributes_filters_do_not_exclude(client, auth, clock, game):
    eq = await create(client, auth, clock, filters={"level": {"eq": "3"}})
    interval = await create(client, auth, clock, filters={"level": {"geq": 1, "lt": 5}})
    plain = await create(client, auth, clock)
    assert await available_ids(client) == {eq, interval, plain}


@both_catalogs
async def test_eq_and_neq_filters_in_an_efficient_game(client, auth, clock, game):
    eq = await create(client, auth, clock, filters={"country": {"eq": "BR"}})
    neq = await create(client, auth, clock, filters={"country": {"neq": "US"}})
    interval = await create(client, auth, clock, filters={"level": {"geq": 1, "lt": 5}})
    plain = await create(client, auth, clock)

    assert await available_ids(client, country="BR") == {eq, neq}
    assert await available_ids(client, country="US") == set()
    assert await available_ids(client, country="FR") == {neq}
    # Without allowInefficientQueries, intervals and offers without a filter on it never match.
    assert await available_ids(client, level="2") == set()
    assert interval not in await available_ids(client, country="BR")
    assert plain not in await available_ids(client, country="BR")


@both_catalogs
async def test_a_filter_on_an_attribute_not_sent_is_ignored(client, auth, clock, game):
    both = await create(
        client, auth, clock, filters={"country": {"eq": "BR"}, "tier": {"eq": "gold"}}
    )
    assert await available_ids(client, country="BR") == {both}
    assert await available_ids(client, country="BR", tier="silver") == set()
    assert await available_ids(client, country="BR", tier="gold") == {both}


@both_catalogs
async def test_interval_and_unfiltered_offers_match_in_an_inefficient_game(
    client, auth, clock, inefficient_game
):
    interval = await create(client, auth, clock, filters={"level": {"geq": 1, "lt": 5}})
    from_only = await create(client, auth, clock, filters={"level": {"geq": 10}})
    below_only = await create(client, auth, clock, filters={"level": {"lt": 1.5}})
    eq = await create(client, auth, clock, filters={"level": {"eq": "7"}})
    plain = await create(client, auth, clock)

    assert await available_ids(client, level="1") == {interval, below_only, plain}
    assert await available_ids(client, level="4.99") == {interval, plain}
    assert await available_ids(client, level="5") == {plain}  # lt is exclusive
    assert await available_ids(client, level="10") == {from_only, plain}  # geq is inclusive
    assert await available_ids(client, level="7") == {eq, plain}
    assert await available_ids(client, level="many") == {plain}  # not a number: no interval


@both_catalogs
async def test_neq_in_an_inefficient_game(client, auth, clock, inefficient_game):
    neq = await create(client, auth, clock, filters={"country": {"neq": "US"}})
    plain = await create(client, auth, clock)
    assert await available_ids(client, country="US") == {plain}
    assert await available_ids(client, country="BR") == {neq, plain}


async def test_a_disabled_offer_is_not_available(client, auth, clock, game):
    offer_id = await create(client, auth, clock)
    await client.put(f"/offers/{offer_id}/disable", params={"game-id": GAME}, headers=auth)
    assert await available(client) == {}


async def test_a_new_version_is_what_players_see(client, auth, clock, game):
    offer_id = await create(client, auth, clock)
    await client.put(
        f"/offers/{offer_id}", json=offer_fields(clock(), contents={"gems": 50}), headers=auth
    )
    [shown] = (await available(client))["store"]
    assert shown["contents"] == {"gems": 50}


# --- claims ----------------------------------------------------------------------------------


@both_paths
async def test_a_replayed_claim_is_409_with_the_same_body_and_counted_once(
    client, auth, clock, game, database
):
    offer_id = await create(client, auth, clock, period={"every": "2h45m", "max": 5})

    first = await claim(client, offer_id, transaction="tx-9")
    clock.advance(minutes=5)
    replay = await claim(client, offer_id, transaction="tx-9")

    assert first.status_code == 200
    assert first.json() == {
        "contents": {"gems": 5, "gold": 100},
        "nextAt": int(clock().timestamp()) - 300 + 9900,
    }
    assert replay.status_code == 409
    assert replay.json() == first.json()
    async with database.begin() as conn:
        assert (await conn.execute(select(offer_players.c.claim_count))).scalar_one() == 1


@both_paths
async def test_claim_by_product_id(client, auth, clock, game):
    await create(client, auth, clock, productId="com.other")
    offer_id = await create(client, auth, clock, productId="com.gems", contents={"gems": 9})

    response = await claim(client, None, productId="com.gems", timestamp=int(clock().timestamp()))

    assert response.status_code == 200
    assert response.json()["contents"] == {"gems": 9}
    assert offer_id not in await available_ids(client) or True
    seed_error(await claim(client, None, transaction="tx-2", productId="com.none"), 404)


async def test_claim_by_product_id_prefers_the_offer_triggered_at_the_purchase(
    client, auth, clock, game
):
    now = int(clock().timestamp())
    await create(
        client,
        auth,
        clock,
        productId="p",
        contents={"old": 1},
        trigger={"from": now - 99, "to": now - 50},
    )
    await create(
        client,
        auth,
        clock,
        productId="p",
        contents={"new": 1},
        trigger={"from": now - 10, "to": now + 99},
    )

    old = await claim(client, None, transaction="a", productId="p", timestamp=now - 60)
    new = await claim(client, None, transaction="b", productId="p", timestamp=now)

    assert old.json()["contents"] == {"old": 1}
    assert new.json()["contents"] == {"new": 1}


@both_paths
async def test_claims_of_unknown_offers_are_404(client, auth, clock, game):
    seed_error(await claim(client, str(uuid4())), 404)
    seed_error(await claim(client, str(uuid4()), gameId="no-such-game"), 404)


@both_paths
@pytest.mark.parametrize(
    "change",
    [
        {"id": None},  # neither id nor productId
        {"id": "not-a-uuid"},
        {"gameId": None},
        {"playerId": "p" * 256},
        {"timestamp": "now"},
        {"timestamp": None},
        {"transactionId": ""},
        {"transactionId": None},
    ],
)
async def test_bad_claims_are_422_and_count_nothing(client, auth, clock, game, database, *, change):
    offer_id = await create(client, auth, clock)
    body = {
        "gameId": GAME,
        "playerId": PLAYER,
        "timestamp": 1,
        "transactionId": "t",
        "id": offer_id,
    }
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}

    seed_error(await client.put("/offers/claim", json=body), 422)
    assert await count(database, offer_claims) == 0
    assert await count(database, offer_players) == 0


@both_paths
async def test_a_claim_body_that_is_not_json_is_422(client):
    response = await client.put(
        "/offers/claim", content=b"{oops", headers={"content-type": "application/json"}
    )
    seed_error(response, 422)


# --- impressions -----------------------------------------------------------------------------


async def test_a_replayed_impression_changes_nothing(client, auth, clock, game, database):
    offer_id = await create(client, auth, clock, frequency={"every": "1m", "max": 3})
    seen = str(uuid4())

    first = await impression(client, offer_id, seen)
    clock.advance(minutes=5)
    replay = await impression(client, offer_id, seen)

    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json() == {"nextAt": int(clock().timestamp()) - 300 + 60}
    async with database.begin() as conn:
        row = (await conn.execute(select(offer_players))).one()
    assert row.impression_count == 1
    assert row.last_impression_at == clock() - __import__("datetime").timedelta(minutes=5)


async def test_impressions_of_unknown_offers_are_404(client, game):
    seed_error(await impression(client, str(uuid4())), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"gameId": GAME, "playerId": PLAYER},
        {"gameId": GAME, "playerId": PLAYER, "impressionId": "nope"},
        {"gameId": GAME, "impressionId": "1b7e4c1a-1111-4222-8333-444455556666"},
        {
            "gameId": "-x",
            "playerId": PLAYER,
            "impressionId": "1b7e4c1a-1111-4222-8333-444455556666",
        },
    ],
)
async def test_bad_impressions_are_422_and_count_nothing(
    client, auth, clock, game, database, *, body
):
    offer_id = await create(client, auth, clock)
    seed_error(await client.put(f"/offers/{offer_id}/impressions", json=body), 422)
    assert await count(database, offer_impressions) == 0
    assert await count(database, offer_players) == 0


# --- offer info ------------------------------------------------------------------------------


async def test_offer_info(client, auth, clock, game):
    offer_id = await create(client, auth, clock)
    response = await client.get(
        "/offer-info", params={"player-id": PLAYER, "game-id": GAME, "offer-id": offer_id}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "max-age=300"
    fields = offer_fields(clock())
    assert response.json() == {
        "id": offer_id,
        "productId": fields["productId"],
        "contents": fields["contents"],
        "metadata": fields["metadata"],
        "expireAt": fields["trigger"]["to"],
    }


@pytest.mark.parametrize("missing", ["player-id", "game-id", "offer-id"])
async def test_offer_info_without_a_parameter_is_400(client, auth, clock, game, missing):
    offer_id = await create(client, auth, clock)
    params = {"player-id": PLAYER, "game-id": GAME, "offer-id": offer_id}
    del params[missing]
    seed_error(await client.get("/offer-info", params=params), 400)


async def test_offer_info_of_an_unknown_offer_is_404(client, game):
    params = {"player-id": PLAYER, "game-id": GAME, "offer-id": str(uuid4())}
    seed_error(await client.get("/offer-info", params=params), 404)


async def test_healthcheck(client):
    response = await client.get("/healthcheck")
    assert response.json() == {"healthy": True}


@both_paths
@pytest.mark.parametrize("path", ["/offers/claim", f"/offers/{UUID(int=1)}/impressions"])
async def test_an_oversized_player_request_is_413_in_the_seeds_shape(client, path):
    response = await client.put(path, content=b'{"pad": "' + b"x" * 70_000 + b'"}')

    seed_error(response, 413)


@pytest.fixture
async def histories_gone(database: Database) -> AsyncIterator[None]:
    """A real failure of the database: the players' histories table renamed away, then back."""
    async with database.begin() as conn:
        await conn.execute(text("ALTER TABLE offer_players RENAME TO offer_players_away"))
    yield
    async with database.begin() as conn:
        await conn.execute(text("ALTER TABLE offer_players_away RENAME TO offer_players"))


def internal_error(response: httpx.Response) -> None:
    seed_error(response, 500)
    assert response.json() == {
        "error": "InternalError",
        "code": "OFF-009",
        "description": "internal server error",
    }


@both_paths
async def test_a_failing_database_makes_available_offers_500_in_the_seeds_shape(
    client, auth, clock, game, histories_gone
):
    await create(client, auth, clock)

    internal_error(
        await client.get("/available-offers", params={"player-id": PLAYER, "game-id": GAME})
    )


@both_paths
async def test_a_failing_database_makes_claims_and_impressions_500_in_the_seeds_shape(
    client, auth, clock, game, histories_gone
):
    offer_id = await create(client, auth, clock)

    internal_error(await claim(client, offer_id))
    internal_error(await impression(client, offer_id))
