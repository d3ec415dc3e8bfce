"""Promo codes through the native API: generation, listing, validate, redeem, rollback."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from promos.brands import service as brands
from promos.cli import main
from promos.db import Database
from promos.events import service as events
from promos.events.tables import outbox
from promos.promocodes import carts, generate, service
from promos.promocodes.generate import DEFAULT_CHARSET, Drawer, code_shape
from promos.promocodes.tables import promocode_generations, promocodes
from tests.factories.promocodes import make_promocode, make_promocodes


@pytest.fixture(params=[True, False], ids=["fast_path", "fastapi"])
def fast_path(request: pytest.FixtureRequest) -> bool:
    """Each test runs on the lean routes (promos.promocodes.fast) and on their FastAPI twins."""
    return bool(request.param)


GENERATE = "/v1/promocodes"


async def counts(database) -> tuple[int, int]:
    async with database.begin() as conn:
        codes_ = (await conn.execute(select(func.count()).select_from(promocodes))).scalar_one()
        gens = (
            await conn.execute(select(func.count()).select_from(promocode_generations))
        ).scalar_one()
    return codes_, gens


async def uses_left(database, code: str) -> int:
    async with database.begin() as conn:
        return (await service.get_promocode(conn, code)).usage_count


def use(customer: str = "user@example.com", products: list[str] | None = None) -> dict:
    return {"customer": customer, "products": products if products is not None else []}


# generation


def test_the_default_charset_has_no_look_alikes():
    assert not set("0O1IL") & set(DEFAULT_CHARSET)
    assert len(set(DEFAULT_CHARSET)) == len(DEFAULT_CHARSET)


def test_drawn_codes_follow_the_pattern():
    codes_ = Drawer(code_shape("##-##", "AB", prefix="P", postfix="Z")).draw(50)
    assert all(len(c) == 7 and c[0] == "P" and c[3] == "-" and c[-1] == "Z" for c in codes_)
    assert set("".join(c[1:3] + c[4:6] for c in codes_)) <= {"A", "B"}


def test_drawn_characters_are_spread_evenly():
    drawn = Counter("".join(Drawer(code_shape("#", "ABC")).draw(30_000)))
    assert set(drawn) == {"A", "B", "C"}
    assert all(9_000 < n < 11_000 for n in drawn.values())


def test_drawn_characters_of_a_pattern_of_several_runs_are_spread_evenly():
    codes_ = Drawer(code_shape("#-#.#", "ABC", prefix="P")).draw(10_000)
    assert all(len(c) == 6 and c[:3:2] == "P-" and c[4] == "." for c in codes_)
    for position in (1, 3, 5):
        drawn = Counter(c[position] for c in codes_)
        assert set(drawn) == {"A", "B", "C"}
        assert all(3_000 < n < 3_700 for n in drawn.values())


def test_sorted_draws_give_every_code_asked_for_in_code_order(monkeypatch):
    monkeypatch.setattr(generate, "SORTED_RUN", 50)
    runs = list(Drawer(code_shape("##-###", "ABCDEF", postfix="Z")).draw_sorted(2_000))
    codes_ = [c for run in runs for c in run]
    assert len(codes_) == 2_000
    assert codes_ == sorted(codes_)
    assert max(len(run) for run in runs) < 200  # grouped, not one run of all the codes
    assert all(len(c) == 7 and c[2] == "-" and c[-1] == "Z" for c in codes_)


def test_sorted_draws_spread_the_first_character_evenly():
    codes_ = [c for run in Drawer(code_shape("####", "ABC")).draw_sorted(30_000) for c in run]
    drawn = Counter(c[0] for c in codes_)
    assert all(9_000 < n < 11_000 for n in drawn.values())


async def test_generate_makes_count_unique_codes_of_the_pattern(client, database, auth):
    response = await client.post(
        GENERATE,
        json={"pattern": "####-####", "count": 50, "discount_percentage": 20, "usage_count": 2},
        headers=auth,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert len(set(body["codes"])) == 50
    assert all(len(c) == 9 and c[4] == "-" for c in body["codes"])
    assert all(set(c.replace("-", "")) <= set(DEFAULT_CHARSET) for c in body["codes"])
    assert body["generation"]["charset"] == DEFAULT_CHARSET
    assert body["generation"]["discount_percentage"] == "20"
    assert await counts(database) == (50, 1)


async def test_generate_keeps_amounts_exact(client, auth):
    response = await client.post(
        GENERATE, json={"pattern": "########", "discount_amount": "10.10"}, headers=auth
    )
    assert response.status_code == 201, response.text
    assert Decimal(response.json()["generation"]["discount_amount"]) == Decimal("10.10")


async def test_generate_can_use_every_code_of_a_small_space(database, clock):
    made = await make_promocodes(database, now=clock(), pattern="##", charset="ABCD", count=4)
    assert len(made.codes) == 4


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"pattern": "#", "charset": "AB", "count": 5}, "makes 2 different codes"),
        ({"pattern": "###", "charset": "AB", "count": 3}, "at most 25%"),
        ({"pattern": "SUMMER", "count": 2}, "one code only"),
        ({"pattern": "##", "charset": "AAB"}, "must not repeat"),
        ({"pattern": "## ##"}, "pattern may hold"),
        ({"pattern": "#" * 65}, "at most 64"),
        ({"pattern": "####", "discount_amount": 5}, "not both"),
        ({"pattern": "####", "discount_percentage": None}, "set discount_percentage or"),
        ({"pattern": "####", "discount_percentage": 101}, "at most 100"),
        ({"pattern": "####", "discount_percentage": "5.001"}, "2 decimal places"),
        ({"pattern": "####", "expires_in": "2026-02-28"}, "in the past"),
        ({"pattern": "####", "count": "3"}, "count"),
        ({"pattern": "####", "usage_count": 0}, "usage_count"),
        ({"pattern": "####", "usage_by": "not an email"}, "usage_by"),
        ({"pattern": "####", "discount_percentage": True}, "discount_percentage"),
    ],
)
async def test_bad_generations_are_refused_and_create_nothing(client, database, auth, body, why):
    response = await client.post(GENERATE, json={"discount_percentage": 10, **body}, headers=auth)

    assert response.status_code == 422, response.text
    assert why in response.json()["error"]["message"]
    assert await counts(database) == (0, 0)


async def test_a_generation_that_cannot_finish_leaves_nothing(client, database, clock, auth):
    # The 4 codes of ##/AB are taken one by one; a fifth generation finds none free.
    for _ in range(4):
        await make_promocode(database, now=clock(), pattern="##", charset="AB", count=1)
    response = await client.post(
        GENERATE,
        json={"pattern": "##", "charset": "AB", "count": 1, "discount_percentage": 5},
        headers=auth,
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "pattern_exhausted"
    assert await counts(database) == (4, 4)


async def test_generate_needs_a_credential(client, database):
    response = await client.post(GENERATE, json={"pattern": "####", "discount_percentage": 5})
    assert response.status_code == 401
    assert await counts(database) == (0, 0)


async def test_a_large_generation_is_stored_whole(database, clock):
    made = await make_promocodes(database, now=clock(), pattern="##########", count=20_000)
    assert len(made.codes) == 1000
    assert await counts(database) == (20_000, 1)


# reading


async def test_get_shows_a_code_with_its_generation(client, database, clock, auth):
    code = await make_promocode(
        database,
        now=clock(),
        products=("SKU12345",),
        usage_by="User@Example.com",
        expires_in=date(2026, 12, 31),
    )

    body = (await client.get(f"{GENERATE}/{code}", headers=auth)).json()

    assert body["code"] == code
    assert body["usage_count"] == 3
    assert body["products"] == ["SKU12345"]
    assert body["usage_by"] == "user@example.com"
    assert body["expires_in"] == "2026-12-31"


async def test_get_of_an_unknown_code_is_404(client, auth):
    response = await client.get(f"{GENERATE}/NOPE", headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "promocode_not_found"


async def test_list_filters_by_user_kind_expiry_and_text(client, database, clock, auth):
    now = clock()
    bound = await make_promocode(database, now=now, usage_by="a@example.com")
    amount = await make_promocode(
        database, now=now, discount_percentage=None, discount_amount=Decimal(5)
    )
    soon = await make_promocode(database, now=now, expires_in=date(2026, 3, 10))
    fixed = await make_promocode(database, now=now, pattern="SUMMER21")

    async def listed(**params) -> list[str]:
        response = await client.get(GENERATE, params=params, headers=auth)
        assert response.status_code == 200, response.text
        return [p["code"] for p in response.json()["items"]]

    assert await listed() == [bound, amount, soon, fixed]
    assert await listed(usage_by="A@example.com") == [bound]
    assert await listed(kind="amount") == [amount]
    assert await listed(kind="percentage") == [bound, soon, fixed]
    assert await listed(expires_before="2026-04-01") == [soon]
    assert await listed(q="summer") == [fixed]
    assert await listed(limit=2) == [bound, amount]


async def test_delete_removes_the_code(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    assert (await client.delete(f"{GENERATE}/{code}", headers=auth)).status_code == 204
    assert (await client.get(f"{GENERATE}/{code}", headers=auth)).status_code == 404
    assert (await client.delete(f"{GENERATE}/{code}", headers=auth)).status_code == 404


# validate


async def test_validate_accepts_a_usable_code_and_changes_nothing(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), products=("SKU1",))
    response = await client.post(
        f"{GENERATE}/{code}/validate", json=use(products=["SKU1", "SKU2"]), headers=auth
    )
    assert response.status_code == 200, response.text
    assert await uses_left(database, code) == 3


@pytest.mark.parametrize(
    ("overrides", "body", "status", "error"),
    [
        ({"expires_in": date(2026, 3, 1)}, {"at": "2026-03-02T00:00:00Z"}, 410, "expired"),
        ({"usage_by": "a@example.com"}, {"customer": "b@example.com"}, 403, "not_for_customer"),
        ({"products": ("SKU1",)}, {"products": ["SKU2"]}, 403, "not_for_products"),
    ],
)
async def test_validate_names_why_a_code_cannot_be_used(
    client, database, clock, auth, *, overrides, body, status, error
):
    code = await make_promocode(database, now=clock(), **overrides)
    response = await client.post(
        f"{GENERATE}/{code}/validate", json={**use(), **body}, headers=auth
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == f"promocode_{error}"


async def test_a_code_works_through_its_last_day(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), expires_in=date(2026, 3, 1))
    response = await client.post(
        f"{GENERATE}/{code}/validate",
        json={**use(), "at": "2026-03-01T23:59:59Z"},
        headers=auth,
    )
    assert response.status_code == 200, response.text


# redeem and rollback


async def test_redeem_takes_one_use(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    response = await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["usage_count"] == 2
    assert await uses_left(database, code) == 2


async def test_redeem_of_a_used_up_code_is_409_and_stays_at_zero(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=1)
    assert (
        await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=auth)
    ).status_code == 201
    response = await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=auth)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "promocode_used_up"
    assert await uses_left(database, code) == 0


async def test_redeem_refuses_expired_wrong_user_and_wrong_products(client, database, clock, auth):
    now = clock()
    expired = await make_promocode(database, now=now, expires_in=date(2026, 3, 1))
    bound = await make_promocode(database, now=now, usage_by="a@example.com")
    product = await make_promocode(database, now=now, products=("SKU1",))
    clock.advance(days=1)

    answers = [
        (await client.post(f"{GENERATE}/{c}/redeem", json=use(), headers=auth)).json()
        for c in (expired, bound, product)
    ]

    assert [a["error"]["code"] for a in answers] == [
        "promocode_expired",
        "promocode_not_for_customer",
        "promocode_not_for_products",
    ]
    assert [await uses_left(database, c) for c in (expired, bound, product)] == [3, 3, 3]


async def test_redeem_with_an_idempotency_key_uses_one_use(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    headers = {**auth, "Idempotency-Key": "order-1"}
    first = await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=headers)
    again = await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=headers)
    assert first.json()["id"] == again.json()["id"]
    assert await uses_left(database, code) == 2
    other = await client.post(
        f"{GENERATE}/{code}/redeem", json=use("b@example.com"), headers=headers
    )
    assert other.status_code == 409


async def test_redeems_sent_together_take_the_code_s_uses_one_after_another(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=5)

    # Sent together, the lean path takes them in one statement (lean.redeem_group).
    responses = await asyncio.gather(
        *(
            client.post(f"{GENERATE}/{code}/redeem", json=use(f"c{n}@example.com"), headers=auth)
            for n in range(3)
        )
    )

    assert [r.status_code for r in responses] == [201, 201, 201]
    assert sorted(r.json()["usage_count"] for r in responses) == [2, 3, 4]
    assert await uses_left(database, code) == 2


async def test_redeems_sent_together_are_each_judged_on_their_own(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), products=("SKU1",))

    fits, misfits = await asyncio.gather(
        client.post(f"{GENERATE}/{code}/redeem", json=use(products=["SKU1"]), headers=auth),
        client.post(f"{GENERATE}/{code}/redeem", json=use(products=["SKU2"]), headers=auth),
    )

    assert fits.status_code == 201, fits.text
    assert misfits.json()["error"]["code"] == "promocode_not_for_products"
    assert await uses_left(database, code) == 2


async def test_redeems_sent_together_record_each_its_cart_and_event(client, database, clock, auth):
    async with database.begin() as conn:
        await events.create_subscription(
            conn, url="https://hooks.example.com/p", event_types=["*"], secret="s", now=clock()
        )
    code = await make_promocode(database, now=clock(), products=("SKU1", "SKU2"))

    one, two = await asyncio.gather(
        client.post(f"{GENERATE}/{code}/redeem", json=use(products=["SKU1"]), headers=auth),
        client.post(f"{GENERATE}/{code}/redeem", json=use(products=["SKU2", "SKU1"]), headers=auth),
    )

    answers = [one.json(), two.json()]
    async with database.begin() as conn:
        payloads = (
            await conn.execute(
                select(outbox.c.payload).where(outbox.c.event_type == "promocode.redeemed")
            )
        ).scalars()
        assert sorted((e["redemption_id"], e["uses_left"]) for e in payloads) == sorted(
            (a["id"], a["usage_count"]) for a in answers
        )
        assert await carts.cart_of(conn, answers[0]["id"]) == ("SKU1",)
        assert await carts.cart_of(conn, answers[1]["id"]) == ("SKU1", "SKU2")


async def test_redeem_hold_and_confirm_answer_in_full(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    when = "2026-03-01T12:00:00Z"

    redeemed = await client.post(
        f"{GENERATE}/{code}/redeem", json=use("Ann@Example.com"), headers=auth
    )
    held = await client.post(
        f"{GENERATE}/{code}/holds",
        json={**use("Bob@Example.com"), "order": "o-1", "ttl_seconds": 60},
        headers=auth,
    )
    hold_id = held.json()["id"]
    confirmed = await client.post(f"/v1/promocode-holds/{hold_id}/confirm", headers=auth)

    assert (redeemed.status_code, held.status_code, confirmed.status_code) == (201, 201, 200)
    assert redeemed.json() == {
        "id": redeemed.json()["id"],
        "code": code,
        "customer": "ann@example.com",
        "redeemed_at": when,
        "rolled_back_at": None,
        "usage_count": 2,
    }
    assert held.json() == {
        "id": hold_id,
        "code": code,
        "customer": "bob@example.com",
        "order": "o-1",
        "status": "held",
        "created_at": when,
        "expires_at": "2026-03-01T12:01:00Z",
        "ended_at": None,
        "usage_count": 1,
    }
    assert confirmed.json() == {
        "id": hold_id,
        "code": code,
        "customer": "bob@example.com",
        "redeemed_at": when,
        "rolled_back_at": None,
        "usage_count": 1,
    }
    assert redeemed.headers["content-type"] == confirmed.headers["content-type"]


MALFORMED = [
    pytest.param("/v1/promocodes/{code}/redeem?x=1", {}, 400, "unknown_parameter", id="query"),
    pytest.param("/v1/promocodes/{code}!/redeem", {}, 422, "invalid_input", id="path"),
    pytest.param("/v1/promocodes/{code}/redeem", {"content": b"{"}, 422, "invalid_input", id="{"),
    pytest.param(
        "/v1/promocodes/{code}/redeem",
        {"json": {**use(), "extra": 1}},
        422,
        "invalid_input",
        id="extra-field",
    ),
    pytest.param(
        "/v1/promocodes/{code}/redeem",
        {"content": b'{"customer": "a@example.com", "products": []}', "ctype": "text/plain"},
        422,
        "invalid_input",
        id="content-type",
    ),
    pytest.param(
        "/v1/promocodes/{code}/holds", {"json": use(), "key": "k" * 256}, 422, "invalid_input"
    ),
    pytest.param("/v1/promocode-holds/0/confirm", {}, 404, "not_found", id="id-zero"),
    pytest.param("/v1/promocode-holds/x1/confirm", {}, 422, "invalid_input", id="id-text"),
]


@pytest.mark.parametrize(("path", "request_", "status", "error"), MALFORMED)
async def test_malformed_use_requests_are_refused_and_use_nothing(
    *, client, database, clock, auth, path, request_, status, error
):
    code = await make_promocode(database, now=clock())
    headers = dict(auth)
    if "key" in request_:
        headers["Idempotency-Key"] = request_["key"]
    if "ctype" in request_:
        headers["Content-Type"] = request_["ctype"]
    body = {k: v for k, v in request_.items() if k in {"json", "content"}}

    answer = await client.post(path.format(code=code), headers=headers, **body)

    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == error
    assert await uses_left(database, code) == 3


async def test_a_malformed_request_without_a_credential_is_refused_as_unauthenticated(
    client, database, clock
):
    code = await make_promocode(database, now=clock())
    answer = await client.post(f"{GENERATE}/{code}/redeem", content=b"{")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"]


async def test_on_postgresql_the_fast_path_takes_uses_on_its_own_connections(
    client, database, clock, auth, fast_path
):
    code = await make_promocode(database, now=clock())
    answer = await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=auth)
    assert answer.status_code == 201
    lean = database.statements
    if database.is_sqlite:
        assert lean is None
    else:
        assert lean is not None
        assert (lean.connections > 0) == fast_path


async def test_rollback_gives_the_use_back_once(client, database, clock, auth):
    code = await make_promocode(database, now=clock())
    redemption = (await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=auth)).json()

    first = await client.post(f"/v1/redemptions/{redemption['id']}/rollback", headers=auth)
    second = await client.post(f"/v1/redemptions/{redemption['id']}/rollback", headers=auth)

    assert first.status_code == 200, first.text
    assert first.json()["rolled_back_at"] is not None
    assert second.status_code == 409
    assert await uses_left(database, code) == 3
    unknown = await client.post("/v1/redemptions/999999/rollback", headers=auth)
    assert unknown.status_code == 404


# real concurrency


@pytest.mark.postgres_only
async def test_twenty_concurrent_redeems_of_three_uses_give_exactly_three(
    client, database, clock, auth
):
    code = await make_promocode(database, now=clock(), usage_count=3)

    responses = await asyncio.gather(
        *(
            client.post(f"{GENERATE}/{code}/redeem", json=use(f"c{n}@example.com"), headers=auth)
            for n in range(20)
        )
    )

    assert Counter(r.status_code for r in responses) == {201: 3, 409: 17}
    assert await uses_left(database, code) == 0


@pytest.mark.postgres_only
async def test_concurrent_rollbacks_give_the_use_back_once(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    redemption = (await client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=auth)).json()

    responses = await asyncio.gather(
        *(
            client.post(f"/v1/redemptions/{redemption['id']}/rollback", headers=auth)
            for _ in range(10)
        )
    )

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 9}
    assert await uses_left(database, code) == 3


@pytest.mark.postgres_only
async def test_concurrent_retries_with_one_key_use_one_use(client, database, clock, auth):
    code = await make_promocode(database, now=clock(), usage_count=3)
    headers = {**auth, "Idempotency-Key": "order-7"}

    responses = await asyncio.gather(
        *(client.post(f"{GENERATE}/{code}/redeem", json=use(), headers=headers) for _ in range(10))
    )

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await uses_left(database, code) == 2


# the command line


def promos_cli(database_url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(
        main, list(args), env={"PROMOS_DATABASE_URL": database_url}, input=stdin
    )


def stored(database_url: str) -> tuple[int, int]:
    async def read() -> tuple[int, int]:
        database = Database(database_url)
        try:
            return await counts(database)
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_cli_generate_stores_the_codes(database_url):
    result = promos_cli(
        database_url, "promocodes", "generate", "--pattern", "####-####", "--count", "5000",
        "--percentage", "20", "--uses", "2", "--product", "SKU1", "--expires", "2099-12-31",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5000 codes" in result.output
    assert stored(database_url) == (5000, 1)


def test_cli_generate_refuses_an_impossible_pattern_and_stores_nothing(database_url):
    result = promos_cli(
        database_url, "promocodes", "generate", "--pattern", "#", "--count", "30",
        "--percentage", "20",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "at most 25%" in result.output
    assert stored(database_url) == (0, 0)


def test_cli_creates_a_brand_user_and_prints_the_secret(database_url):
    result = promos_cli(database_url, "brand-users", "create", "--user-id", "2341")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    carried = promos_cli(
        database_url, "brand-users", "create", "--user-id", "7", "--secret-stdin",
        stdin="jhjdvbfehfbu468hGFVYUGHBIUIUYRD\n",
    )  # fmt: skip
    assert carried.exit_code == 0, carried.output

    async def check() -> None:
        database = Database(database_url)
        try:
            async with database.begin() as conn:
                await brands.verify_brand_user(conn, user_id="2341", secret=secret)
                await brands.verify_brand_user(
                    conn, user_id="7", secret="jhjdvbfehfbu468hGFVYUGHBIUIUYRD"
                )
        finally:
            await database.dispose()

    asyncio.run(check())
