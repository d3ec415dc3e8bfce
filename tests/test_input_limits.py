"""Whatever a request carries, nothing reaches the database that it cannot hold, and the answer
is a 4xx in the error shape of the API that was called, never a 500.

- An id outside 1..2**63-1 in a path names nothing: 404, as for an id nobody has (the Promos
  API, which knows no 404, answers 400). In a query or a body it is invalid: 422 (or 400).
- Names, SKUs and identifiers hold no control character, direction mark or byte order mark;
  no text holds NUL or a lone surrogate, free-form JSON included.
- A body that cannot be read (not UTF-8, nested past the parser's limit) is a 400.
- A body over the limit, and a missing credential, answer in the API's shape too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from promos.app import create_app
from promos.auth.tables import api_keys, users
from promos.settings import Settings
from tests.factories.offers import make_game, offer_fields

BEYOND_64_BITS = 2**70  # 1180591620717411303424
MAX_BODY = 64 * 1024
SPECIAL = {"sku": "SKU-1", "title": "Half price", "discount_percentage": 50}


@pytest.fixture
def settings(database_url: str, fast_path: bool) -> Settings:
    return Settings(database_url=database_url, fast_path=fast_path, max_body_bytes=MAX_BODY)


# Each API's error body, as its seed (or the native API) documents it.
Shape = Callable[[httpx.Response, int], None]


def native(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body


def promos(response: httpx.Response, status: int) -> None:
    # The Promos seed knows 400 for every caller's mistake, 401 and 413 aside.
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "status"}, body
    assert body["status"] == status


def error_only(response: httpx.Response, status: int) -> None:  # referral, Ango
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str)


def envelope(response: httpx.Response, status: int) -> None:  # discount generator
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {**body, "code": str(status), "data": "", "status": "error"}, body


def offers(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code", "description"}, body
    assert body["code"].startswith("OFF-")


@dataclass(frozen=True, slots=True)
class Case:
    method: str
    path: str
    shape: Shape
    status: int
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client: httpx.AsyncClient, auth: dict[str, str]) -> Any:
        headers = {**auth, **self.headers}
        if self.content is not None:
            headers.setdefault("Content-Type", "application/json")
            return client.request(self.method, self.path, content=self.content, headers=headers)
        return client.request(self.method, self.path, json=self.json, headers=headers)


def raw(text: str) -> bytes:
    """A JSON body written by hand: JSON escapes such as a lone surrogate's go through as
    they are (httpx cannot encode a lone surrogate itself)."""
    return text.encode()


# --- ids -----------------------------------------------------------------------------------------


DOCUMENT = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:")).openapi()


def _integer_path_ids() -> list[tuple[str, str, str, str]]:
    """Every integer in a path of the document: (method, path, its name, the API's tag)."""
    return [
        (method.upper(), path, parameter["name"], operation["tags"][0])
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["schema"].get("type") == "integer"
    ]


PATH_IDS = _integer_path_ids()
# How each API says "nothing has this id".
NOT_FOUND: dict[str, tuple[Shape, int]] = {
    "Promos (compat)": (promos, 400),
    "Referral program (compat)": (error_only, 404),
    "Discount generator (compat)": (envelope, 404),
}


def test_every_api_with_an_integer_id_in_its_paths_is_covered():
    tags = {tag for *_, tag in PATH_IDS}

    assert {"Promos (compat)", "Referral program (compat)", "Discount generator (compat)"} <= tags
    assert len(PATH_IDS) >= 20


def _concrete(path: str, name: str, value: int) -> str:
    path = path.replace("{" + name + "}", str(value))
    for other, filler in (("{game_id}", "galaxy"), ("{user_hash}", "alice")):
        path = path.replace(other, filler)
    return path.replace("{user_id}", "shop-1").replace("{user_secret}", "a-secret")


@pytest.mark.parametrize("value", [BEYOND_64_BITS, 2**63, -1], ids=["2**70", "2**63", "-1"])
@pytest.mark.parametrize("route", PATH_IDS, ids=[f"{m} {p}" for m, p, *_ in PATH_IDS])
async def test_an_id_in_a_path_that_no_row_can_have_names_nothing(client, admin_auth, route, value):
    method, path, name, tag = route
    shape, status = NOT_FOUND.get(tag, (native, 404))
    # Whatever else the request holds: a path that names nothing is answered first.
    body = {} if method in {"POST", "PUT", "PATCH"} else None

    response = await client.request(
        method, _concrete(path, name, value), json=body, headers=admin_auth
    )

    shape(response, status)
    if shape is native:
        assert response.json()["error"]["code"] == "not_found"


IDS_IN_QUERIES_AND_BODIES = {
    "generation_id filter": Case(
        "GET", f"/v1/promocodes?generation_id={BEYOND_64_BITS}", native, 422
    ),
    "generation_id filter of an export": Case(
        "GET", f"/v1/redemptions.csv?generation_id={BEYOND_64_BITS}", native, 422
    ),
    "subscription_id filter": Case(
        "GET", f"/v1/webhooks/deliveries?subscription_id={BEYOND_64_BITS}", native, 422
    ),
    "a referral's program_id": Case(
        "POST",
        "/v1/referrals",
        native,
        422,
        {"referrer": "alice", "referred": "bob", "program_id": BEYOND_64_BITS},
    ),
    "/api/update id": Case(
        "PUT", "/api/update?module=specials", promos, 400, {**SPECIAL, "id": BEYOND_64_BITS}
    ),
    "upgrade_program_id": Case(
        "POST", "/promocode/upgrade-program", promos, 400, {"upgrade_program_id": BEYOND_64_BITS}
    ),
    "referral_program_id": Case(
        "POST",
        "/register/",
        error_only,
        422,
        {"user_indicator": "alice", "user_indicated": "bob", "referral_program_id": 2**64},
    ),
    "brand_id": Case(
        "POST",
        "/discounts/api/v1.0/generate",
        envelope,
        422,
        {"brand_id": BEYOND_64_BITS, "number_of_codes": 1},
    ),
}


@pytest.mark.parametrize("name", list(IDS_IN_QUERIES_AND_BODIES))
async def test_an_id_beyond_64_bits_in_a_query_or_a_body_is_invalid(client, admin_auth, name):
    case = IDS_IN_QUERIES_AND_BODIES[name]

    response = await case.send(client, admin_auth)

    case.shape(response, case.status)


# --- text --------------------------------------------------------------------------------------

NUL = "\u0000"
CURSOR_WITH_NUL = base64.urlsafe_b64encode(orjson.dumps(["a\u0000"])).decode().rstrip("=")

UNSTORABLE_TEXT = {
    "a sign-in login": Case(
        "POST", "/v1/auth/tokens", native, 422, {"login": "a" + NUL, "password": "x"}
    ),
    "a seed sign-in login": Case(
        "POST", "/signin", promos, 400, {"login": "a" + NUL, "password": "x"}
    ),
    "a seed token": Case("POST", "/authenticate", promos, 400, {"token": "pt_" + NUL}),
    "an API key's name": Case("POST", "/v1/api-keys", native, 422, {"name": "B+" + NUL + "z"}),
    "an API key's name with a lone surrogate": Case(
        "POST", "/v1/api-keys", native, 422, content=raw('{"name": "B+\\udb36z"}')
    ),
    "a password with a lone surrogate": Case(
        "POST", "/v1/auth/tokens", native, 422, content=raw('{"login": "a", "password": "\\udc00"}')
    ),
    "a special's SKU in the seed's path": Case("GET", "/special/a%00", promos, 400),
    "a special's SKU under /api": Case("GET", "/api/special/a%00", promos, 400),
    "an active special's SKU": Case("GET", "/v1/specials/active/a%00", native, 422),
    "the SKU filter": Case("GET", "/v1/specials?sku=a%00", native, 422),
    "the event type filter": Case("GET", "/v1/webhooks/deliveries?event_type=a%00", native, 422),
    "getusedby's e-mail": Case("GET", "/promocodes/getusedby?email=a%00", promos, 400),
    "a search": Case("GET", "/promocodes/get/a%00", promos, 400),
    "a code to decrement": Case("GET", "/promocodes/decrement/a%00", promos, 400),
    "a code to delete": Case("GET", "/api/promocodes/del/a%00", promos, 400),
    "a customer": Case(
        "POST",
        "/v1/promocodes/SUMMER/redeem",
        native,
        422,
        {"customer": "a" + NUL + "@example.com", "products": []},
    ),
    "a SKU in a cart": Case(
        "POST",
        "/v1/promocodes/SUMMER/validate",
        native,
        422,
        {"customer": "a@example.com", "products": ["SKU" + NUL]},
    ),
    "a user name": Case(
        "POST", "/v1/users", native, 422, {"username": "a" + NUL, "password": "a long password"}
    ),
    "a usage_by filter of an export": Case("GET", "/v1/redemptions.csv?usage_by=a%00", native, 422),
    "a description": Case("POST", "/v1/specials", native, 422, {**SPECIAL, "description": NUL}),
    "a game's name": Case("PUT", "/games/galaxy", offers, 422, {"name": "Gal" + NUL + "axy"}),
    "a game's metadata": Case(
        "PUT", "/games/galaxy", offers, 422, {"name": "Galaxy", "metadata": {"note": NUL}}
    ),
    "a game's metadata with NaN": Case(
        "PUT", "/games/galaxy", offers, 422, content=raw('{"name": "G", "metadata": {"x": NaN}}')
    ),
    "a key in a game's metadata": Case(
        "PUT", "/v1/games/galaxy", native, 422, {"name": "Galaxy", "metadata": {NUL: 1}}
    ),
    "a webhook's event type": Case(
        "POST", "/v1/webhooks", native, 422, {"url": "http://127.0.0.1:9/h", "events": [NUL]}
    ),
    "an invited e-mail": Case(
        "POST",
        "/emailindication",
        error_only,
        422,
        {"user_indicator": "alice", "emails": "bob" + NUL + "@example.com"},
    ),
    "a cursor's key": Case("GET", f"/v1/games?cursor={CURSOR_WITH_NUL}", native, 422),
    "a brand user in get_code": Case(
        "GET", "/discounts/api/v1.0/get_code/a%00/secret/1", envelope, 422
    ),
}


@pytest.mark.parametrize("name", list(UNSTORABLE_TEXT))
async def test_text_that_no_database_can_hold_is_refused(client, admin_auth, name):
    case = UNSTORABLE_TEXT[name]

    response = await case.send(client, admin_auth)

    case.shape(response, case.status)


# An offer's values: texts in its name and in its free-form objects, numbers no JSON encoder on
# the way back could write, objects nested past the limit.
def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"gems": 1}
    for _ in range(depth):
        value = {"inner": value}
    return value


OFFER_VALUES = {
    "name": {"name": "Gems" + NUL},
    "placement": {"placement": "store" + NUL},
    "contents": {"contents": {"gems": "5" + NUL}},
    "cost": {"cost": {"currency" + NUL: "EUR"}},
    "filters": {"filters": {"country": {"eq": NUL}}},
    "contents nested 40 deep": {"contents": _nested(40)},
    "an integer beyond 64 bits in its contents": {"contents": {"gems": BEYOND_64_BITS}},
    # JSONB would give it back as 1000000000000000000000000000000, beyond 64 bits.
    "a number of 2^63 or more in its cost": {"cost": {"amount": 1e30}},
}


@pytest.mark.parametrize("name", list(OFFER_VALUES))
async def test_an_offer_whose_values_cannot_be_stored_and_sent_back_is_refused(
    client, database, clock, auth, name
):
    await make_game(database, now=clock(), game_id="galaxy")
    fields = {**offer_fields(clock()), **OFFER_VALUES[name]}

    seed = await client.post("/offers", json=fields, headers=auth)
    native_fields = {k: v for k, v in fields.items() if k not in {"gameId", "productId"}}
    native_fields["product_id"] = fields["productId"]
    own = await client.post("/v1/games/galaxy/offers", json=native_fields, headers=auth)

    offers(seed, 422)
    native(own, 422)


HIDDEN_CHARACTERS = {
    "right-to-left override": "\u202e",
    "byte order mark": "\ufeff",
    "next line (C1)": "\u0085",
    "tab": "\t",
    "left-to-right mark": "\u200e",
    "line separator": "\u2028",
}


@pytest.mark.parametrize("hidden", HIDDEN_CHARACTERS.values(), ids=HIDDEN_CHARACTERS.keys())
async def test_a_user_name_with_a_hidden_character_is_refused(client, database, admin_auth, hidden):
    body = {"username": f"sal{hidden}ly", "password": "a long password"}

    response = await client.post("/v1/users", json=body, headers=admin_auth)

    native(response, 422)
    async with database.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(users))).scalar_one() == 1


@pytest.mark.parametrize("hidden", HIDDEN_CHARACTERS.values(), ids=HIDDEN_CHARACTERS.keys())
async def test_a_sku_with_a_hidden_character_is_refused(client, auth, hidden):
    special = await client.post(
        "/v1/specials", json={**SPECIAL, "sku": f"SKU{hidden}1"}, headers=auth
    )
    seed = await client.post(
        "/api/create?module=specials", json={**SPECIAL, "sku": f"SKU{hidden}1"}, headers=auth
    )
    program = await client.post(
        "/v1/upgrade-programs",
        json={
            "from_sku": "SKU-1",
            "to_sku": f"SKU{hidden}2",
            "title": "Go pro",
            "discount_amount": 5,
        },
        headers=auth,
    )

    native(special, 422)
    promos(seed, 400)
    native(program, 422)


@pytest.mark.parametrize("hidden", HIDDEN_CHARACTERS.values(), ids=HIDDEN_CHARACTERS.keys())
async def test_an_api_key_name_with_a_hidden_character_is_refused(
    client, database, admin_auth, hidden
):
    response = await client.post("/v1/api-keys", json={"name": f"shop{hidden}"}, headers=admin_auth)

    native(response, 422)
    async with database.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(api_keys))).scalar_one() == 0


async def test_a_description_keeps_its_lines_and_its_direction_marks(client, auth):
    text = "Half price\nthis week only\t\u200f\u0645\u0631\u062d\u0628\u0627"

    response = await client.post(
        "/v1/specials", json={**SPECIAL, "description": text}, headers=auth
    )

    assert response.status_code == 201, response.text
    assert response.json()["description"] == text


# --- bodies that cannot be read ----------------------------------------------------------------

NOT_UTF_8 = b'{"login": "\xff"}'
# Balanced, past Python's recursion limit and orjson's, and under the body limit.
TOO_DEEP = b"[" * 30_000 + b"]" * 30_000
ROUTES_WITH_A_BODY = {
    "native sign-in": ("POST", "/v1/auth/tokens", native, 400),
    "native promo codes": ("POST", "/v1/promocodes", native, 400),
    "seed sign-in": ("POST", "/signin", promos, 400),
    "seed sign-in under /api": ("POST", "/api/signin", promos, 400),
    "seed authenticate": ("POST", "/authenticate", promos, 400),
    "seed promocodes/set": ("POST", "/promocodes/set", promos, 400),
    "seed update": ("PUT", "/api/update?module=specials", promos, 400),
    "discounts generate": ("POST", "/discounts/api/v1.0/generate", envelope, 400),
    "referral program": ("POST", "/program/", error_only, 422),
    "offers game": ("PUT", "/games/galaxy", offers, 400),
}


@pytest.mark.parametrize("body", [NOT_UTF_8, TOO_DEEP], ids=["not UTF-8", "too deep"])
@pytest.mark.parametrize("name", list(ROUTES_WITH_A_BODY))
async def test_a_body_that_cannot_be_read_is_a_400_in_the_apis_shape(client, auth, name, body):
    method, path, shape, status = ROUTES_WITH_A_BODY[name]

    response = await client.request(
        method, path, content=body, headers={**auth, "Content-Type": "application/json"}
    )

    shape(response, status)


# --- what answers before any route runs --------------------------------------------------------

SEED_BODIES = {
    "seed promocodes/set": ("POST", "/promocodes/set", promos),
    "seed sign-in": ("POST", "/api/signin", promos),
    "discounts generate": ("POST", "/discounts/api/v1.0/generate", envelope),
    "referral program": ("POST", "/program/", error_only),
    "referral program, no slash": ("POST", "/program", error_only),
    "offers claim": ("PUT", "/offers/claim", offers),
}


@pytest.mark.parametrize("name", list(SEED_BODIES))
async def test_a_body_over_the_limit_is_a_413_in_the_apis_shape(client, auth, name):
    method, path, shape = SEED_BODIES[name]
    body = b'{"pad": "' + b"x" * MAX_BODY + b'"}'

    response = await client.request(
        method, path, content=body, headers={**auth, "Content-Type": "application/json"}
    )

    shape(response, 413)


@pytest.mark.parametrize("name", list(SEED_BODIES))
async def test_a_streamed_body_over_the_limit_is_a_413_in_the_apis_shape(client, auth, name):
    method, path, shape = SEED_BODIES[name]

    async def chunks():
        yield b'{"pad": "'
        for _ in range(MAX_BODY // 4096 + 1):
            yield b"x" * 4096
        yield b'"}'

    response = await client.request(
        method, path, content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )

    shape(response, 413)


CREDENTIAL_ROUTES = {
    "seed promocodes/set": ("POST", "/promocodes/set", promos),
    "discounts generate": ("POST", "/discounts/api/v1.0/generate", envelope),
    "referral program": ("POST", "/program/", error_only),
}


@pytest.mark.parametrize("name", list(CREDENTIAL_ROUTES))
async def test_a_multipart_body_without_a_credential_is_a_401_in_the_apis_shape(client, name):
    method, path, shape = CREDENTIAL_ROUTES[name]

    response = await client.request(
        method, path, files={"file": ("codes.csv", b"code\nA1\n", "text/csv")}
    )

    shape(response, 401)
