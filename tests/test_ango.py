"""Ango (seed 000), request by request from its README: redeem, batches, CSV upload, health.

Redeem is served twice, by the lean fast path and by FastAPI (``PROMOS_FAST_PATH=false``);
every redeem test runs on both.
"""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select, text

from promos.app import create_app
from promos.codes import service
from promos.codes.service import Batch, BatchStats, Rules
from promos.codes.tables import codes
from promos.db import Database
from promos.settings import Settings
from tests.factories.codes import CLIENT, add_client_codes, make_batch

REDEEM = "/api/v1/code/redeem"
BATCHES = "/api/v1/batches"
UPLOAD = "/api/v1/codes/upload"

# The ids of the seed's own curl example.
CUSTOMER = "50b0b41b-c665-4409-a2bb-a4fc18828dc2"
OTHER_CUSTOMER = "9c3f2b1e-5d4a-4e6f-8a7b-0c1d2e3f4a5b"
OTHER_CLIENT = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")
SEED_RULES = '{"maxpercustomer":2,"timelimit":30}'

both_paths = pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "fastapi"])


async def redeem(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    batch_id: UUID,
    *,
    customer: str = CUSTOMER,
    client_id: UUID = CLIENT,
) -> httpx.Response:
    body = {"batchid": str(batch_id), "clientid": str(client_id), "customerid": customer}
    return await client.post(REDEEM, json=body, headers=headers)


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    csv: str,
    *,
    batch_name: str = "Summer Sale 2023",
    rules: str | None = None,
) -> httpx.Response:
    form = {"batch_name": batch_name}
    if rules is not None:
        form["rules"] = rules
    files = {"file": ("codes.csv", csv.encode(), "text/csv")}
    return await client.post(UPLOAD, files=files, data=form, headers=headers)


def codes_csv(*codes_: str, client_id: UUID = CLIENT) -> str:
    return "client_id,code\n" + "".join(f"{client_id},{c}\n" for c in codes_)


def assert_ango_error(response: httpx.Response, status: int) -> str:
    """Ango's error shape, ``{"error": "<message>"}``; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    assert body["error"]
    return body["error"]


async def stats_of(database: Database, batch_id: UUID) -> BatchStats:
    async with database.begin() as conn:
        return await service.batch_stats(conn, batch_id)


async def all_batches(database: Database) -> list[Batch]:
    async with database.begin() as conn:
        return await service.list_batches(conn)


async def expire(database: Database, batch_id: UUID) -> None:
    async with database.begin() as conn:
        await service.expire_batch(conn, batch_id)


# POST /api/v1/code/redeem


@both_paths
async def test_redeem_hands_out_a_code_of_the_batch(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3, prefix="SUMMER")

    response = await redeem(client, auth, batch.id)

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"code"}
    assert body["code"] in {"SUMMER-0", "SUMMER-1", "SUMMER-2"}


@both_paths
async def test_redeem_never_hands_out_the_same_code_twice(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5, prefix="ONCE")

    handed_out = [(await redeem(client, auth, batch.id, customer=str(uuid4()))) for _ in range(5)]

    assert [r.status_code for r in handed_out] == [200] * 5
    assert sorted(r.json()["code"] for r in handed_out) == [f"ONCE-{n}" for n in range(5)]


@both_paths
async def test_redeem_marks_the_code_issued(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3)

    await redeem(client, auth, batch.id)

    stats = await stats_of(database, batch.id)
    assert (stats.total, stats.issued, stats.left) == (3, 1, 2)


@both_paths
async def test_redeem_of_an_unknown_batch_is_404(client, database, clock, auth):
    await make_batch(database, now=clock(), codes=1)
    unknown = uuid4()

    response = await redeem(client, auth, unknown)

    message = assert_ango_error(response, 404)
    assert str(unknown) in message


@both_paths
async def test_redeem_for_another_client_is_422(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await redeem(client, auth, batch.id, client_id=OTHER_CLIENT)

    assert_ango_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


@both_paths
async def test_redeem_for_a_client_with_no_codes_in_the_batch_says_so(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await redeem(client, auth, batch.id, client_id=OTHER_CLIENT)

    message = assert_ango_error(response, 422)
    assert message == f"batch {batch.id} holds no codes of client {OTHER_CLIENT}"


@both_paths
async def test_redeem_hands_out_a_code_of_the_named_client_only(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2, prefix="MINE")
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=2, prefix="THEIRS", now=clock()
    )

    theirs = [
        await redeem(client, auth, batch.id, client_id=OTHER_CLIENT, customer=str(uuid4()))
        for _ in range(2)
    ]
    mine = await redeem(client, auth, batch.id, customer=str(uuid4()))

    assert sorted(r.json()["code"] for r in theirs) == ["THEIRS-0", "THEIRS-1"]
    assert mine.json()["code"] in {"MINE-0", "MINE-1"}


@both_paths
async def test_redeem_for_a_client_whose_codes_are_gone_is_409_while_another_has_codes(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=3, prefix="MINE")
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=1, prefix="THEIRS", now=clock()
    )
    await redeem(client, auth, batch.id, client_id=OTHER_CLIENT, customer=OTHER_CUSTOMER)

    response = await redeem(client, auth, batch.id, client_id=OTHER_CLIENT)

    message = assert_ango_error(response, 409)
    assert message == f"batch {batch.id} has no codes left for client {OTHER_CLIENT}"
    assert (await redeem(client, auth, batch.id)).status_code == 200


@both_paths
async def test_maxpercustomer_counts_the_codes_of_every_client_of_the_batch(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=2, rules=Rules(max_per_customer=1))
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=2, prefix="X", now=clock()
    )
    await redeem(client, auth, batch.id)

    response = await redeem(client, auth, batch.id, client_id=OTHER_CLIENT)

    assert_ango_error(response, 403)


@both_paths
async def test_an_idempotency_key_used_for_another_client_of_the_batch_is_409(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=2)
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=2, prefix="X", now=clock()
    )
    retry = {**auth, "Idempotency-Key": "order-1"}
    await redeem(client, retry, batch.id)

    response = await redeem(client, retry, batch.id, client_id=OTHER_CLIENT)

    message = assert_ango_error(response, 409)
    assert "another client" in message


@both_paths
async def test_redeem_from_an_expired_batch_is_410(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    await expire(database, batch.id)

    response = await redeem(client, auth, batch.id)

    assert_ango_error(response, 410)
    assert (await stats_of(database, batch.id)).issued == 0


@both_paths
async def test_a_retried_redeem_of_an_unknown_batch_is_404_and_fails_no_other_redeem(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=20)
    stranger = {**auth, "Idempotency-Key": "order-1001"}
    valid = [redeem(client, auth, batch.id, customer=str(uuid4())) for _ in range(20)]
    unknown = [redeem(client, stranger, uuid4()) for _ in range(5)]

    responses = await asyncio.gather(*valid, *unknown)

    assert [r.status_code for r in responses] == [200] * 20 + [404] * 5


@both_paths
async def test_redeem_when_no_codes_are_left_is_409(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    await redeem(client, auth, batch.id, customer=OTHER_CUSTOMER)

    response = await redeem(client, auth, batch.id)

    assert_ango_error(response, 409)


@both_paths
async def test_redeem_beyond_maxpercustomer_is_403(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5, rules=Rules(max_per_customer=1))
    await redeem(client, auth, batch.id)

    response = await redeem(client, auth, batch.id)

    assert_ango_error(response, 403)
    assert (await stats_of(database, batch.id)).issued == 1


@both_paths
async def test_maxpercustomer_allows_exactly_that_many_codes(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5, rules=Rules(max_per_customer=2))

    statuses = [(await redeem(client, auth, batch.id)).status_code for _ in range(3)]

    assert statuses == [200, 200, 403]


@both_paths
async def test_maxpercustomer_counts_each_customer_apart(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5, rules=Rules(max_per_customer=1))
    await redeem(client, auth, batch.id)

    response = await redeem(client, auth, batch.id, customer=OTHER_CUSTOMER)

    assert response.status_code == 200, response.text


@both_paths
async def test_maxpercustomer_counts_each_batch_apart(client, database, clock, auth):
    rules = Rules(max_per_customer=1)
    winter = await make_batch(database, now=clock(), codes=2, name="Winter Batch", rules=rules)
    summer = await make_batch(database, now=clock(), codes=2, name="Summer Sale", rules=rules)
    await redeem(client, auth, winter.id)

    response = await redeem(client, auth, summer.id)

    assert response.status_code == 200, response.text


@both_paths
async def test_maxpercustomer_without_timelimit_never_wears_off(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5, rules=Rules(max_per_customer=1))
    await redeem(client, auth, batch.id)
    clock.advance(days=3650)

    response = await redeem(client, auth, batch.id)

    assert_ango_error(response, 403)


@both_paths
async def test_a_third_code_within_the_30_day_timelimit_is_refused(client, database, clock, auth):
    rules = Rules(max_per_customer=2, time_limit_days=30)
    batch = await make_batch(database, now=clock(), codes=5, rules=rules)
    await redeem(client, auth, batch.id)
    await redeem(client, auth, batch.id)
    clock.advance(days=29, hours=23)

    response = await redeem(client, auth, batch.id)

    assert_ango_error(response, 403)


@both_paths
async def test_a_third_code_is_handed_out_once_30_days_have_passed(client, database, clock, auth):
    rules = Rules(max_per_customer=2, time_limit_days=30)
    batch = await make_batch(database, now=clock(), codes=5, rules=rules)
    await redeem(client, auth, batch.id)
    await redeem(client, auth, batch.id)
    clock.advance(days=30, minutes=1)

    response = await redeem(client, auth, batch.id)

    assert response.status_code == 200, response.text


@both_paths
async def test_the_timelimit_window_slides_with_each_code(client, database, clock, auth):
    rules = Rules(max_per_customer=2, time_limit_days=30)
    batch = await make_batch(database, now=clock(), codes=5, rules=rules)
    await redeem(client, auth, batch.id)  # day 0
    clock.advance(days=20)
    await redeem(client, auth, batch.id)  # day 20
    clock.advance(days=11)
    await redeem(client, auth, batch.id)  # day 31: the day-0 code has left the window

    response = await redeem(client, auth, batch.id)  # day 31: days 20 and 31 count

    assert_ango_error(response, 403)


@both_paths
async def test_redeem_needs_a_credential(client, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await redeem(client, {}, batch.id)

    assert_ango_error(response, 401)
    assert "www-authenticate" in response.headers
    assert (await stats_of(database, batch.id)).issued == 0


@both_paths
async def test_redeem_with_an_unknown_api_key_is_401(client, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await redeem(client, {"Authorization": "Bearer pk_not-a-key"}, batch.id)

    assert_ango_error(response, 401)
    assert (await stats_of(database, batch.id)).issued == 0


@both_paths
async def test_redeem_accepts_http_basic_credentials(client, database, clock, admin_auth):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await redeem(client, admin_auth, batch.id)

    assert response.status_code == 200, response.text


@both_paths
async def test_an_idempotency_key_gets_the_same_code_again(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)
    retry = {**auth, "Idempotency-Key": "order-1001"}

    first = await redeem(client, retry, batch.id)
    second = await redeem(client, retry, batch.id)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


@both_paths
async def test_an_idempotency_key_burns_only_one_code(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)
    retry = {**auth, "Idempotency-Key": "order-1001"}

    for _ in range(3):
        await redeem(client, retry, batch.id)

    stats = await stats_of(database, batch.id)
    assert (stats.issued, stats.left) == (1, 4)


@both_paths
async def test_an_idempotency_key_replay_is_not_counted_by_maxpercustomer(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=5, rules=Rules(max_per_customer=1))
    retry = {**auth, "Idempotency-Key": "order-1001"}
    first = await redeem(client, retry, batch.id)

    again = await redeem(client, retry, batch.id)

    assert again.status_code == 200, again.text
    assert again.json() == first.json()


@both_paths
async def test_an_idempotency_key_replay_gets_its_code_when_no_codes_are_left(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=1)
    retry = {**auth, "Idempotency-Key": "order-1001"}
    first = await redeem(client, retry, batch.id)

    again = await redeem(client, retry, batch.id)

    assert again.status_code == 200, again.text
    assert again.json() == first.json()


@both_paths
async def test_an_idempotency_key_replay_gets_its_code_after_the_batch_expired(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=5)
    retry = {**auth, "Idempotency-Key": "order-1001"}
    first = await redeem(client, retry, batch.id)
    await expire(database, batch.id)

    again = await redeem(client, retry, batch.id)

    assert again.status_code == 200, again.text
    assert again.json() == first.json()


@both_paths
async def test_different_idempotency_keys_get_different_codes(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)

    first = await redeem(client, {**auth, "Idempotency-Key": "order-1"}, batch.id)
    second = await redeem(client, {**auth, "Idempotency-Key": "order-2"}, batch.id)

    assert first.json()["code"] != second.json()["code"]


@both_paths
async def test_an_idempotency_key_of_another_customer_is_409(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)
    retry = {**auth, "Idempotency-Key": "order-1001"}
    await redeem(client, retry, batch.id)

    response = await redeem(client, retry, batch.id, customer=OTHER_CUSTOMER)

    assert_ango_error(response, 409)
    assert (await stats_of(database, batch.id)).issued == 1


# GET /api/v1/batches


async def test_batches_lists_each_batch_with_its_rules(client, database, clock, auth):
    winter = await make_batch(
        database,
        now=clock(),
        name="Winter Batch",
        rules=Rules(max_per_customer=1, time_limit_days=30),
    )
    clock.advance(minutes=1)
    summer = await make_batch(
        database,
        now=clock(),
        name="Summer Sale",
        rules=Rules(max_per_customer=5, time_limit_days=90),
    )

    response = await client.get(BATCHES, headers=auth)

    assert response.status_code == 200, response.text
    assert sorted(response.json(), key=lambda b: b["name"]) == [
        {
            "id": str(summer.id),
            "name": "Summer Sale",
            "rules": {"maxpercustomer": 5, "timelimit": 90},
            "expired": False,
        },
        {
            "id": str(winter.id),
            "name": "Winter Batch",
            "rules": {"maxpercustomer": 1, "timelimit": 30},
            "expired": False,
        },
    ]


async def test_batches_shows_an_expired_batch_as_expired(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    await expire(database, batch.id)

    response = await client.get(BATCHES, headers=auth)

    assert [(b["id"], b["expired"]) for b in response.json()] == [(str(batch.id), True)]


async def test_batches_lists_nothing_when_there_are_no_batches(client, auth):
    response = await client.get(BATCHES, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == []


async def test_batches_needs_a_credential(client, database, clock):
    await make_batch(database, now=clock())

    response = await client.get(BATCHES)

    assert_ango_error(response, 401)


# POST /api/v1/codes/upload


async def test_upload_of_the_seed_curl_example_creates_the_batch(client, database, auth):
    csv = codes_csv("SUMMER-2023-A", "SUMMER-2023-B", "SUMMER-2023-C")

    response = await upload(client, auth, csv, batch_name="Summer Sale 2023", rules=SEED_RULES)

    assert response.status_code == 200, response.text
    assert isinstance(response.json()["message"], str)
    listed = (await client.get(BATCHES, headers=auth)).json()
    assert [{k: v for k, v in b.items() if k != "id"} for b in listed] == [
        {
            "name": "Summer Sale 2023",
            "rules": {"maxpercustomer": 2, "timelimit": 30},
            "expired": False,
        }
    ]


async def test_upload_stores_every_code_of_the_file(client, database, auth):
    await upload(client, auth, codes_csv("A-1", "A-2", "A-3"), rules=SEED_RULES)

    (batch,) = await all_batches(database)
    assert (await stats_of(database, batch.id)).total == 3


async def test_upload_gives_the_batch_to_the_client_of_the_file(client, database, auth):
    await upload(client, auth, codes_csv("A-1", client_id=OTHER_CLIENT))

    (batch,) = await all_batches(database)
    assert batch.client_id == OTHER_CLIENT


async def test_uploaded_codes_are_handed_out_by_redeem(client, database, auth):
    await upload(client, auth, codes_csv("ONLY-ONE"), rules=SEED_RULES)
    batch_id = UUID((await client.get(BATCHES, headers=auth)).json()[0]["id"])

    response = await redeem(client, auth, batch_id)

    assert response.json() == {"code": "ONLY-ONE"}


async def test_upload_rules_are_enforced_by_redeem(client, database, auth):
    await upload(client, auth, codes_csv("A-1", "A-2", "A-3"), rules=SEED_RULES)
    (batch,) = await all_batches(database)

    statuses = [(await redeem(client, auth, batch.id)).status_code for _ in range(3)]

    assert statuses == [200, 200, 403]


async def test_upload_without_rules_makes_a_batch_without_a_limit(client, database, auth):
    await upload(client, auth, codes_csv("A-1", "A-2", "A-3"))
    (batch,) = await all_batches(database)

    statuses = [(await redeem(client, auth, batch.id)).status_code for _ in range(3)]

    assert batch.rules == Rules()
    assert statuses == [200, 200, 200]


async def test_upload_accepts_a_csv_saved_by_a_spreadsheet(client, database, auth):
    csv = f"\ufeffclient_id,code\r\n{CLIENT},XL-1\r\n{CLIENT},XL-2\r\n"

    response = await upload(client, auth, csv)

    assert response.status_code == 200, response.text
    (batch,) = await all_batches(database)
    assert (await stats_of(database, batch.id)).total == 2


async def test_upload_of_rows_naming_several_clients_makes_one_batch(client, database, auth):
    csv = codes_csv("A-1", "A-2") + f"{OTHER_CLIENT},B-1\n"

    response = await upload(client, auth, csv, rules=SEED_RULES)

    assert response.status_code == 200, response.text
    assert response.json()["count"] == 3
    (batch,) = await all_batches(database)
    assert batch.client_id == CLIENT  # the client of the first row
    async with database.begin() as conn:
        assert await service.batch_clients(conn, batch.id) == sorted([CLIENT, OTHER_CLIENT])
        rows = await conn.execute(select(codes.c.client_id, codes.c.code))
        assert sorted((r.code, r.client_id) for r in rows) == [
            ("A-1", CLIENT),
            ("A-2", CLIENT),
            ("B-1", OTHER_CLIENT),
        ]


async def test_a_batch_of_several_clients_hands_each_client_its_own_codes(client, database, auth):
    csv = f"client_id,code\n{OTHER_CLIENT},B-1\n{CLIENT},A-1\n"
    await upload(client, auth, csv)
    (batch,) = await all_batches(database)

    mine = await redeem(client, auth, batch.id)
    theirs = await redeem(client, auth, batch.id, client_id=OTHER_CLIENT)

    assert (mine.json(), theirs.json()) == ({"code": "A-1"}, {"code": "B-1"})


async def test_upload_may_give_one_code_to_two_clients_of_the_batch(client, database, auth):
    csv = codes_csv("SAME") + f"{OTHER_CLIENT},SAME\n"

    response = await upload(client, auth, csv)

    assert response.status_code == 200, response.text
    assert response.json()["count"] == 2


async def test_upload_with_a_code_twice_for_one_client_of_several_names_the_row(
    client, database, auth
):
    csv = codes_csv("A-1") + f"{OTHER_CLIENT},B-1\n{OTHER_CLIENT},B-1\n"

    response = await upload(client, auth, csv)

    message = assert_ango_error(response, 409)
    assert message.startswith("row 4:")
    assert await all_batches(database) == []


async def test_batches_lists_a_batch_of_several_clients_once(client, database, auth):
    await upload(client, auth, codes_csv("A-1") + f"{OTHER_CLIENT},B-1\n")

    response = await client.get(BATCHES, headers=auth)

    assert [b["name"] for b in response.json()] == ["Summer Sale 2023"]


async def test_upload_needs_a_credential(client, database):
    response = await upload(client, {}, codes_csv("A-1"), rules=SEED_RULES)

    assert_ango_error(response, 401)
    assert await all_batches(database) == []
    async with database.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(codes))).scalar_one() == 0


# GET /healthcheck


async def test_healthcheck_says_healthy(client):
    response = await client.get("/healthcheck")

    assert response.status_code == 200, response.text
    assert response.json() == {"healthy": True}


async def test_healthcheck_is_500_when_the_database_is_down(clock):
    down = create_app(Settings(database_url="postgresql://promos@127.0.0.1:1/promos"), clock=clock)
    transport = httpx.ASGITransport(app=down)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as http:
            response = await http.get("/healthcheck")
    finally:
        await down.state.promos.database.dispose()

    assert response.status_code == 500
    body = response.json()
    assert body["healthy"] is False
    assert body["error"]


@both_paths
async def test_redeem_while_the_database_fails_is_a_503_to_retry(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    async with database.begin() as conn:
        await conn.execute(text("ALTER TABLE codes RENAME TO codes_away"))
    try:
        response = await redeem(client, auth, batch.id)
    finally:
        async with database.begin() as conn:
            await conn.execute(text("ALTER TABLE codes_away RENAME TO codes"))
    assert_ango_error(response, 503)
    assert response.headers["retry-after"] == "1"
