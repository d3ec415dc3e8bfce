"""Scoped API keys: every route, native and compatible, checks its scope in one place.

The routes are derived from the app (as tests/test_audit.py does): each one that takes a
credential declares its scope (``promos.http.scopes.needs``), or the first test fails; each
refuses a key holding every scope but its own, in its API's error shape, naming the scope.
The routes that name a resource (a client's pool, a game, a referral program, a brand) are
exercised with a key scoped to resource A: it reaches A, and resource B answers as an
unknown resource does to an unscoped key (or, where a resource need not exist to be named,
403 naming the scope with B's id).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from promos.app import create_app
from promos.auth.scopes import KINDS, ROLE_GRANTS
from promos.codes import holds
from promos.db import Database
from promos.http.deps import CurrentPrincipal
from promos.http.native import NativeRoute
from promos.http.scopes import Need
from promos.offers.schemas import OfferIn
from promos.settings import Settings
from tests._routes import app_routes, concrete_path, iter_route_contexts
from tests.conftest import FakeClock
from tests.factories.auth import make_api_key
from tests.factories.codes import make_batch
from tests.factories.offers import make_game, make_offer, offer_fields
from tests.factories.referrals import make_program

CONSOLE = "/admin"  # the console's pages: a person's session, never an API key

_DOCS = "the API's documentation: nothing private"
_SIGN_IN = "sign-in: the credential is what it checks"
_SEED_PUBLIC = "public by design (the Promos seed's access rights)"
PUBLIC = {
    ("GET", "/"): "the home page: links only",
    ("GET", "/openapi.json"): _DOCS,
    ("GET", "/docs"): _DOCS,
    ("GET", "/docs/oauth2-redirect"): _DOCS,
    ("GET", "/redoc"): _DOCS,
    ("GET", "/healthcheck"): "the load balancer's check (the Offers seed's)",
    ("GET", "/metrics"): "Prometheus: its own bearer token (PROMOS_METRICS_TOKEN), not a key",
    ("POST", "/v1/auth/tokens"): _SIGN_IN,
    ("POST", "/signin"): _SIGN_IN,
    ("POST", "/api/signin"): _SIGN_IN,
    ("POST", "/authenticate"): "checks the token in its body (the Promos seed's)",
    ("POST", "/api/authenticate"): "checks the token in its body (the Promos seed's)",
    ("GET", "/promocodes/getbycode/{id}"): _SEED_PUBLIC,
    ("GET", "/api/promocodes/getbycode/{id}"): _SEED_PUBLIC,
    ("GET", "/special/{sku}"): _SEED_PUBLIC,
    ("GET", "/api/special/{sku}"): _SEED_PUBLIC,
    ("GET", "/upgrade-program"): _SEED_PUBLIC,
    ("GET", "/api/upgrade-program"): _SEED_PUBLIC,
    ("GET", "/discounts/api/v1.0/get_code/{user_id}/{user_secret}/{brand_id}"): (
        "a brand user's own id and secret, in its path (the discount generator's)"
    ),
}


def _app() -> FastAPI:
    # The player routes take a key only with this setting: on, so that they are checked too.
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", offers_players_need_key=True)
    return create_app(settings)


def _needs(app: FastAPI) -> dict[tuple[str, str], Need | None]:
    found: dict[tuple[str, str], Need | None] = {}
    for context in iter_route_contexts(app.routes):
        route = getattr(context, "route", context)
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and not route.path.startswith(CONSOLE):
                found[method, route.path] = getattr(route, "need", None)
    return found


APP = _app()
NEEDS = _needs(APP)
PARAMS = app_routes(APP)
SCOPED = sorted(r for r, need in NEEDS.items() if need is not None and need.kind is not None)


def test_every_route_that_takes_a_credential_declares_its_scope() -> None:
    undeclared = sorted(r for r, need in NEEDS.items() if need is None and r not in PUBLIC)
    assert undeclared == [], "declare each one's scope (promos.http.scopes.needs) or list it"


def test_every_public_route_listed_is_served() -> None:
    assert sorted(set(PUBLIC) - set(NEEDS)) == []


def _all_but(kind: str, action: str) -> list[str]:
    return [str(s) for s in ROLE_GRANTS["admin"].scopes if (s.kind, s.action) != (kind, action)]


def _error_keys(method: str, path: str) -> set[str]:
    """The fields the route's documented 403 body requires (its API's error shape)."""
    document = APP.openapi()
    operation = document["paths"].get(path, {}).get(method.lower())
    if operation is None:  # a seed's path served twice, documented once (trailing slash)
        twin = path.rstrip("/") if path.endswith("/") else path + "/"
        operation = document["paths"][twin][method.lower()]
    schema = operation["responses"]["403"]["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    return set(document["components"]["schemas"][name].get("required", []))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"offers_players_need_key": True})


@pytest.mark.parametrize(("method", "path"), SCOPED)
async def test_a_key_without_the_routes_scope_is_refused_in_its_shape_naming_it(
    method: str, path: str, client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    await _refused_without_its_scope(method, path, client, database, clock)


# The hot routes answered by lean endpoints (promos.http.fastpath), and their FastAPI twins.
HOT = sorted(APP.fast_routes.routes() if APP.fast_routes is not None else ())
twins = pytest.mark.parametrize("fast_path", [False], ids=["fastapi"])
# Those that name a resource (the promo codes' routes name none: promocodes:use is all or nothing).
HOT_LOCATED = [r for r in HOT if (need := NEEDS[r]) is not None and need.at is not None]


@twins
@pytest.mark.parametrize(("method", "path"), HOT)
async def test_the_fastapi_twin_of_a_hot_route_refuses_alike(
    method: str, path: str, client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    await _refused_without_its_scope(method, path, client, database, clock)


async def _refused_without_its_scope(
    method: str, path: str, client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    need = NEEDS[method, path]
    assert need is not None
    assert need.kind is not None
    secret = await make_api_key(
        database, now=clock(), role="admin", scopes=_all_but(need.kind, need.action)
    )
    url = concrete_path(path, PARAMS.get((method, path), {}))
    answer = await client.request(method, url, headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 403, answer.text
    assert f"{need.kind}:{need.action}" in answer.text
    assert _error_keys(method, path) <= set(answer.json())


UNDECLARED = APIRouter(route_class=NativeRoute)


@UNDECLARED.get("/v1/undeclared")
async def undeclared(_: CurrentPrincipal) -> dict[str, str]:
    """A route someone added without declaring its scope."""
    return {}


async def test_a_scoped_key_is_refused_on_a_route_that_declares_no_scope(
    app: FastAPI, client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    app.router.routes.extend(UNDECLARED.routes)
    scoped = await make_api_key(database, now=clock(), scopes=["promocodes:read"])
    unscoped = await make_api_key(database, now=clock())
    refused = await client.get("/v1/undeclared", headers={"Authorization": f"Bearer {scoped}"})
    served = await client.get("/v1/undeclared", headers={"Authorization": f"Bearer {unscoped}"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "scope_missing")
    assert served.status_code == 200


async def test_people_and_a_key_made_without_scopes_hold_every_scope_of_their_role(
    client: httpx.AsyncClient, database: Database, clock: FakeClock
) -> None:
    secret = await make_api_key(database, now=clock())
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/promocodes", headers=headers)).status_code == 200
    assert (await client.get("/v1/games", headers=headers)).status_code == 200
    assert (await client.get("/v1/audit", headers=headers)).json()["error"]["code"] == (
        "admin_required"
    )


# --- resources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One tenant's resources: a client with a batch, a game with an offer, a program, a
    brand. C is a third one that exists nowhere."""

    client: str
    batch: str
    game: str
    offer: str
    program: str
    brand: str
    hold: str  # a pool code hold of the batch

    def ids(self) -> list[str]:
        return [
            self.client,
            self.batch,
            self.game,
            self.offer,
            self.program,
            self.brand,
            self.hold,
        ]


@dataclass(frozen=True)
class World:
    a: Side
    b: Side
    c: Side


@pytest.fixture
async def world(database: Database, clock: FakeClock) -> World:
    sides = []
    for n, game in enumerate(("alpha", "beta")):
        client_id = uuid4()
        batch = await make_batch(database, now=clock(), client_id=client_id, codes=5)
        await make_game(database, now=clock(), game_id=game)
        offer = await make_offer(database, now=clock(), gameId=game)
        program = await make_program(database, now=clock(), name=f"program {game}")
        async with database.begin() as conn:
            held = await holds.hold_code(
                conn,
                batch_id=batch.id,
                client_id=client_id,
                customer_id="holder",
                order=f"order-{game}",
                ttl=timedelta(hours=1),
                now=clock(),
            )
        sides.append(
            Side(
                str(client_id),
                str(batch.id),
                game,
                str(offer.id),
                str(program.id),
                str(900 + n),
                str(held.id),
            )
        )
    c = Side(str(uuid4()), str(uuid4()), "gamma", str(uuid4()), "99999", "999", "77777")
    return World(sides[0], sides[1], c)


Request = Callable[[Side, FakeClock], tuple[str, dict[str, Any] | None]]


def _offer(side: Side, clock: FakeClock) -> dict[str, Any]:
    return offer_fields(clock(), gameId=side.game, productId=f"com.{side.game}.{uuid4().hex}")


def _claim(side: Side, clock: FakeClock) -> dict[str, Any]:
    return {
        "gameId": side.game,
        "playerId": "p-1",
        "timestamp": int(clock().timestamp()),
        "transactionId": uuid4().hex,
        "id": side.offer,
    }


OFFER = OfferIn.model_json_schema()["examples"][0]  # a native offer's body

# (method, path) -> the URL (and JSON body) naming one side's resource.
REQUESTS: dict[tuple[str, str], Request] = {
    ("POST", "/v1/batches"): lambda s, _: ("/v1/batches", {"client_id": s.client, "name": "n"}),
    ("GET", "/v1/batches"): lambda s, _: (f"/v1/batches?client_id={s.client}", None),
    ("GET", "/v1/batches/{batch_id}"): lambda s, _: (f"/v1/batches/{s.batch}", None),
    ("GET", "/v1/batches/{batch_id}/stats"): lambda s, _: (f"/v1/batches/{s.batch}/stats", None),
    ("GET", "/v1/batches/{batch_id}/codes.csv"): lambda s, _: (
        f"/v1/batches/{s.batch}/codes.csv",
        None,
    ),
    ("POST", "/v1/batches/{batch_id}/expire"): lambda s, _: (
        f"/v1/batches/{s.batch}/expire",
        None,
    ),
    ("POST", "/v1/batches/{batch_id}/issues"): lambda s, _: (
        f"/v1/batches/{s.batch}/issues",
        {"client_id": s.client, "customer_id": "customer-1"},
    ),
    ("POST", "/v1/batches/{batch_id}/holds"): lambda s, _: (
        f"/v1/batches/{s.batch}/holds",
        {"client_id": s.client, "customer_id": "customer-1", "order": "order-1"},
    ),
    ("GET", "/v1/batches/{batch_id}/holds"): lambda s, _: (f"/v1/batches/{s.batch}/holds", None),
    ("GET", "/v1/batches/{batch_id}/hold-settings"): lambda s, _: (
        f"/v1/batches/{s.batch}/hold-settings",
        None,
    ),
    ("PUT", "/v1/batches/{batch_id}/hold-settings"): lambda s, _: (
        f"/v1/batches/{s.batch}/hold-settings",
        {"released_codes": "return"},
    ),
    ("GET", "/v1/pool-code-holds/{hold_id}"): lambda s, _: (f"/v1/pool-code-holds/{s.hold}", None),
    ("POST", "/v1/pool-code-holds/{hold_id}/confirm"): lambda s, _: (
        f"/v1/pool-code-holds/{s.hold}/confirm",
        None,
    ),
    ("POST", "/v1/pool-code-holds/{hold_id}/release"): lambda s, _: (
        f"/v1/pool-code-holds/{s.hold}/release",
        None,
    ),
    ("GET", "/v1/customers/{customer_id}/codes"): lambda s, _: (
        f"/v1/customers/customer-1/codes?client_id={s.client}",
        None,
    ),
    ("POST", "/api/v1/code/redeem"): lambda s, _: (
        "/api/v1/code/redeem",
        {"batchid": s.batch, "clientid": s.client, "customerid": str(uuid4())},
    ),
    ("POST", "/discounts/api/v1.0/generate"): lambda s, _: (
        "/discounts/api/v1.0/generate",
        {"brand_id": int(s.brand), "number_of_codes": 1},
    ),
    ("PUT", "/v1/games/{game_id}"): lambda s, _: (f"/v1/games/{s.game}", {"name": "G"}),
    ("GET", "/v1/games/{game_id}"): lambda s, _: (f"/v1/games/{s.game}", None),
    ("POST", "/v1/games/{game_id}/offers"): lambda s, _: (f"/v1/games/{s.game}/offers", OFFER),
    ("GET", "/v1/games/{game_id}/offers"): lambda s, _: (f"/v1/games/{s.game}/offers", None),
    ("POST", "/v1/games/{game_id}/offer-explanations"): lambda s, _: (
        f"/v1/games/{s.game}/offer-explanations",
        {"player_id": "player-7", "attributes": {}},
    ),
    ("GET", "/v1/games/{game_id}/offers/{offer_id}"): lambda s, _: (
        f"/v1/games/{s.game}/offers/{s.offer}",
        None,
    ),
    ("PUT", "/v1/games/{game_id}/offers/{offer_id}"): lambda s, _: (
        f"/v1/games/{s.game}/offers/{s.offer}",
        OFFER,
    ),
    ("POST", "/v1/games/{game_id}/offers/{offer_id}/enable"): lambda s, _: (
        f"/v1/games/{s.game}/offers/{s.offer}/enable",
        None,
    ),
    ("POST", "/v1/games/{game_id}/offers/{offer_id}/disable"): lambda s, _: (
        f"/v1/games/{s.game}/offers/{s.offer}/disable",
        None,
    ),
    ("PUT", "/games/{game_id}"): lambda s, _: (f"/games/{s.game}", {"name": "G"}),
    ("POST", "/offers"): lambda s, c: ("/offers", _offer(s, c)),
    ("PUT", "/offers/{offer_id}"): lambda s, c: (f"/offers/{s.offer}", _offer(s, c)),
    ("PUT", "/offers/{offer_id}/enable"): lambda s, _: (
        f"/offers/{s.offer}/enable?game-id={s.game}",
        None,
    ),
    ("PUT", "/offers/{offer_id}/disable"): lambda s, _: (
        f"/offers/{s.offer}/disable?game-id={s.game}",
        None,
    ),
    ("GET", "/offers"): lambda s, _: (f"/offers?game-id={s.game}", None),
    ("GET", "/available-offers"): lambda s, _: (
        f"/available-offers?player-id=p-1&game-id={s.game}",
        None,
    ),
    ("GET", "/offer-info"): lambda s, _: (
        f"/offer-info?player-id=p-1&game-id={s.game}&offer-id={s.offer}",
        None,
    ),
    ("PUT", "/offers/claim"): lambda s, c: ("/offers/claim", _claim(s, c)),
    ("PUT", "/offers/{offer_id}/impressions"): lambda s, _: (
        f"/offers/{s.offer}/impressions",
        {"gameId": s.game, "playerId": "p-1", "impressionId": str(uuid4())},
    ),
    ("GET", "/v1/referral-programs/{program_id}"): lambda s, _: (
        f"/v1/referral-programs/{s.program}",
        None,
    ),
    ("PATCH", "/v1/referral-programs/{program_id}"): lambda s, _: (
        f"/v1/referral-programs/{s.program}",
        {"name": "renamed"},
    ),
    ("DELETE", "/v1/referral-programs/{program_id}"): lambda s, _: (
        f"/v1/referral-programs/{s.program}",
        None,
    ),
    ("POST", "/v1/referrals"): lambda s, _: (
        "/v1/referrals",
        {"referrer": "alice", "referred": uuid4().hex, "program_id": int(s.program)},
    ),
    ("POST", "/register/"): lambda s, _: (
        "/register/",
        {
            "user_indicator": "alice",
            "user_indicated": uuid4().hex,
            "referral_program_id": int(s.program),
        },
    ),
}
for _slash in ("/program/{program_id}/", "/program/{program_id}"):
    for _method in ("GET", "PUT", "DELETE"):
        REQUESTS[_method, _slash] = lambda s, _, m=_method, p=_slash: (  # type: ignore[misc]
            p.replace("{program_id}", s.program),
            {"name": "renamed"} if m == "PUT" else None,
        )
REQUESTS["POST", "/register"] = lambda s, c: (
    "/register",
    REQUESTS["POST", "/register/"](s, c)[1],
)

LOCATED = sorted(r for r in SCOPED if (need := NEEDS[r]) is not None and need.at is not None)
LISTED = {
    ("GET", "/v1/games"): lambda w: (w.a.game, w.b.game),
    ("GET", "/games"): lambda w: (w.a.game, w.b.game),
    ("GET", "/api/v1/batches"): lambda w: (w.a.batch, w.b.batch),
    ("GET", "/v1/referral-programs"): lambda w: (f"program {w.a.game}", f"program {w.b.game}"),
    ("GET", "/program/"): lambda w: (f"program {w.a.game}", f"program {w.b.game}"),
    ("GET", "/program"): lambda w: (f"program {w.a.game}", f"program {w.b.game}"),
}
SPANNING = sorted(
    r
    for r in SCOPED
    if (need := NEEDS[r]) is not None
    and need.kind is not None
    and KINDS[need.kind].normalize is not None
    and need.at is None
    and not need.listed
)


def test_every_route_naming_a_resource_is_exercised_here() -> None:
    assert sorted(set(LOCATED) - set(REQUESTS)) == []
    listed = sorted(r for r in SCOPED if (need := NEEDS[r]) is not None and need.listed)
    assert listed == sorted(LISTED)


def _scope_of(need: Need, side: Side) -> str:
    ids = {
        "pools": side.client,
        "games": side.game,
        "referrals": side.program,
        "brands": side.brand,
    }
    return f"{need.kind}:{need.action}:{ids[str(need.kind)]}"


def _as_b(text: str, world: World) -> str:
    """An answer about C's resources, told about B's: each of C's ids, as a whole token, in
    one pass (replacing one after another, C's brand 999 was found inside B's offer id that
    had replaced C's, now and then)."""
    ids = dict(zip(world.c.ids(), world.b.ids(), strict=True))
    pattern = "|".join(re.escape(c) for c in sorted(ids, key=len, reverse=True))
    return re.sub(rf"(?<![0-9A-Za-z])(?:{pattern})(?![0-9A-Za-z])", lambda m: ids[m[0]], text)


@pytest.mark.parametrize(("method", "path"), LOCATED)
async def test_a_key_scoped_to_a_reaches_a_and_b_answers_as_unknown(
    method: str,
    path: str,
    *,
    client: httpx.AsyncClient,
    database: Database,
    clock: FakeClock,
    world: World,
) -> None:
    await _a_reached_and_b_unknown(method, path, client, database, clock, world)


@twins
@pytest.mark.parametrize(("method", "path"), HOT_LOCATED)
async def test_the_fastapi_twin_of_a_hot_route_keeps_to_the_keys_resources_alike(
    method: str,
    path: str,
    *,
    client: httpx.AsyncClient,
    database: Database,
    clock: FakeClock,
    world: World,
) -> None:
    await _a_reached_and_b_unknown(method, path, client, database, clock, world)


async def _a_reached_and_b_unknown(  # noqa: PLR0917 - the tests' fixtures, passed on
    method: str,
    path: str,
    client: httpx.AsyncClient,
    database: Database,
    clock: FakeClock,
    world: World,
) -> None:
    need = NEEDS[method, path]
    assert need is not None
    assert need.at is not None
    secret = await make_api_key(database, now=clock(), scopes=[_scope_of(need, world.a)])
    scoped = {"Authorization": f"Bearer {secret}"}
    build = REQUESTS[method, path]

    async def call(side: Side, headers: dict[str, str]) -> httpx.Response:
        url, body = build(side, clock)
        return await client.request(method, url, json=body, headers=headers)

    to_b = await call(world.b, scoped)
    if need.at.unknown is None:
        # A resource that need not exist to be named (a client, a game to create): 403.
        assert to_b.status_code == 403, to_b.text
        assert _scope_of(need, world.b) in to_b.text
    else:
        unscoped = {"Authorization": f"Bearer {await make_api_key(database, now=clock())}"}
        to_c = await call(world.c, unscoped)
        assert to_b.status_code == to_c.status_code, (to_b.text, to_c.text)
        assert to_b.text == _as_b(to_c.text, world)
    to_a = await call(world.a, scoped)
    assert to_a.status_code != 403, to_a.text
    assert to_a.text != to_b.text.replace(world.b.game, world.a.game)


@pytest.mark.parametrize(("method", "path"), sorted(LISTED))
async def test_a_key_scoped_to_a_lists_a_and_not_b(
    method: str,
    path: str,
    *,
    client: httpx.AsyncClient,
    database: Database,
    clock: FakeClock,
    world: World,
) -> None:
    need = NEEDS[method, path]
    assert need is not None
    secret = await make_api_key(database, now=clock(), scopes=[_scope_of(need, world.a)])
    answer = await client.request(method, path, headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, answer.text
    mine, theirs = LISTED[method, path](world)
    assert mine in answer.text
    assert theirs not in answer.text


@pytest.mark.parametrize(("method", "path"), SPANNING)
async def test_a_key_scoped_to_some_resources_is_refused_where_the_route_spans_them_all(
    method: str,
    path: str,
    *,
    client: httpx.AsyncClient,
    database: Database,
    clock: FakeClock,
    world: World,
) -> None:
    need = NEEDS[method, path]
    assert need is not None
    secret = await make_api_key(database, now=clock(), scopes=[_scope_of(need, world.a)])
    url = concrete_path(path, PARAMS.get((method, path), {}))
    answer = await client.request(method, url, headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 403, answer.text
    assert f"it needs {need} without ids" in answer.text


def test_client_ids_are_compared_in_one_spelling() -> None:
    client = UUID("5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b")
    assert KINDS["pools"].normalize is not None
    assert KINDS["pools"].normalize(str(client).upper()) == str(client)


# --- making scoped keys ----------------------------------------------------------------------


async def test_an_admin_makes_a_scoped_key_through_the_api(
    client: httpx.AsyncClient, admin_auth: dict[str, str]
) -> None:
    body = {"name": "checkout", "scopes": ["promocodes:use", "pools:use:" + CLIENT_ID.upper()]}
    made = await client.post("/v1/api-keys", json=body, headers=admin_auth)

    assert made.status_code == 201, made.text
    assert made.json()["scopes"] == [f"pools:use:{CLIENT_ID}", "promocodes:use"]
    headers = {"Authorization": f"Bearer {made.json()['key']}"}
    refused = await client.get("/v1/promocodes", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "scope_missing",
        "message": "this API key lacks the scope promocodes:read",
        "details": {"missing_scope": "promocodes:read"},
    }
    listed = (await client.get("/v1/api-keys", headers=admin_auth)).json()["items"]
    assert [k["scopes"] for k in listed] == [made.json()["scopes"]]


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ([], "at least 1 item"),
        (["promocodes:issue"], "promocodes has no action 'issue'"),
        (["catalog:read:1"], "catalog scopes name no ids"),
        (["games:use:-bad"], "'-bad' is not a game id"),
        (["pools:read:not-a-uuid"], "is not a client id"),
        (["webhooks:read"], "only an admin key may hold"),
    ],
)
async def test_a_key_with_a_wrong_scope_is_not_made(
    scopes: list[str],
    message: str,
    client: httpx.AsyncClient,
    admin_auth: dict[str, str],
) -> None:
    body = {"name": "checkout", "role": "sales", "scopes": scopes}
    made = await client.post("/v1/api-keys", json=body, headers=admin_auth)

    assert made.status_code == 422
    assert message in made.text
    assert (await client.get("/v1/api-keys", headers=admin_auth)).json()["items"] == []


CLIENT_ID = "5b6f0a3e-2c1d-4e8f-9a7b-3c2d1e0f9a8b"
