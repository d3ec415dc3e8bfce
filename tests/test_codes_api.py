"""The native code pool API under ``/v1``: batches, their codes, issuing, a customer's codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import httpx

from promos.codes import service
from promos.codes.service import BatchStats, Rules
from promos.db import Database
from tests._pages import all_pages
from tests.factories.codes import CLIENT, add_client_codes, make_batch

OTHER_CLIENT = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")
CUSTOMER = "customer-42"
OTHER_CUSTOMER = "customer-7"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The native error shape ``{"error": {"code", "message", "details"}}``; returns the error."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body["error"]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def stats_of(database: Database, batch_id: UUID) -> BatchStats:
    async with database.begin() as conn:
        return await service.batch_stats(conn, batch_id)


async def issue(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    batch_id: UUID,
    *,
    customer: str = CUSTOMER,
    client_id: UUID = CLIENT,
) -> httpx.Response:
    body = {"client_id": str(client_id), "customer_id": customer}
    return await client.post(f"/v1/batches/{batch_id}/issues", json=body, headers=headers)


async def upload_codes(
    client: httpx.AsyncClient, headers: dict[str, str], batch_id: UUID, csv: str
) -> httpx.Response:
    files = {"file": ("codes.csv", csv.encode(), "text/csv")}
    return await client.post(f"/v1/batches/{batch_id}/codes", files=files, headers=headers)


# Creating a batch, POST /v1/batches


async def test_create_batch_returns_the_new_batch(client, clock, auth):
    body = {
        "client_id": str(CLIENT),
        "name": "Summer Sale",
        "rules": {"max_per_customer": 2, "time_limit_days": 30},
    }

    response = await client.post("/v1/batches", json=body, headers=auth)

    assert response.status_code == 201, response.text
    created = response.json()
    UUID(created.pop("id"))
    assert parse_time(created.pop("created_at")) == clock()
    assert created == {
        "client_id": str(CLIENT),
        "clients": [str(CLIENT)],
        "name": "Summer Sale",
        "rules": {"max_per_customer": 2, "time_limit_days": 30},
        "expired": False,
    }


async def test_create_batch_without_rules_has_no_limit(client, auth):
    body = {"client_id": str(CLIENT), "name": "Summer Sale"}

    response = await client.post("/v1/batches", json=body, headers=auth)

    assert response.json()["rules"] == {"max_per_customer": None, "time_limit_days": None}


async def test_a_created_batch_holds_no_codes(client, database, auth):
    body = {"client_id": str(CLIENT), "name": "Summer Sale"}

    response = await client.post("/v1/batches", json=body, headers=auth)

    stats = await stats_of(database, UUID(response.json()["id"]))
    assert (stats.total, stats.issued, stats.left) == (0, 0, 0)


async def test_create_batch_needs_a_credential(client, database):
    body = {"client_id": str(CLIENT), "name": "Summer Sale"}

    response = await client.post("/v1/batches", json=body)

    assert_error(response, 401, "credential_required")
    async with database.begin() as conn:
        assert await service.list_batches(conn) == []


# Listing and reading batches, GET /v1/batches and /v1/batches/{id}


async def test_list_batches_lists_them_oldest_first(client, database, clock, auth):
    made = []
    for name in ("First", "Second", "Third"):
        made.append(await make_batch(database, now=clock(), name=name))
        clock.advance(minutes=1)

    response = await client.get("/v1/batches", headers=auth)

    assert response.status_code == 200, response.text
    assert [b["id"] for b in response.json()["items"]] == [str(b.id) for b in made]


async def test_list_batches_pages_by_cursor(client, database, clock, auth):
    for name in ("First", "Second", "Third", "Fourth"):
        await make_batch(database, now=clock(), name=name)
        clock.advance(minutes=1)

    pages = await all_pages(client, "/v1/batches", auth, limit=2)

    assert [[b["name"] for b in page["items"]] for page in pages] == [
        ["First", "Second"],
        ["Third", "Fourth"],
    ]
    assert [page["has_more"] for page in pages] == [True, False]


async def test_list_batches_pages_batches_made_in_one_instant_by_id(client, database, clock, auth):
    made = [await make_batch(database, now=clock(), name=f"B{n}") for n in range(5)]

    pages = await all_pages(client, "/v1/batches", auth, limit=2)

    listed = [b["id"] for page in pages for b in page["items"]]
    assert listed == sorted(str(b.id) for b in made)


async def test_list_batches_refuses_a_cursor_it_did_not_give(client, auth):
    response = await client.get("/v1/batches", params={"cursor": "not-a-cursor"}, headers=auth)

    assert response.status_code == 422, response.text
    assert "cursor" in response.json()["error"]["message"]


async def test_list_batches_filters_by_client(client, database, clock, auth):
    mine = await make_batch(database, now=clock(), client_id=CLIENT)
    await make_batch(database, now=clock(), client_id=OTHER_CLIENT)

    response = await client.get("/v1/batches", params={"client_id": str(CLIENT)}, headers=auth)

    assert [b["id"] for b in response.json()["items"]] == [str(mine.id)]


async def test_list_batches_by_client_finds_a_batch_holding_its_codes(
    client, database, clock, auth
):
    theirs = await make_batch(database, now=clock(), client_id=OTHER_CLIENT)
    shared = await make_batch(database, now=clock(), client_id=OTHER_CLIENT)
    await add_client_codes(database, shared, client_id=CLIENT, codes=1, prefix="A", now=clock())

    response = await client.get("/v1/batches", params={"client_id": str(CLIENT)}, headers=auth)

    assert [b["id"] for b in response.json()["items"]] == [str(shared.id)]
    assert theirs.id != shared.id


async def test_list_batches_shows_each_batchs_clients(client, database, clock, auth):
    only = await make_batch(database, now=clock())
    clock.advance(minutes=1)
    shared = await make_batch(database, now=clock())
    await add_client_codes(
        database, shared, client_id=OTHER_CLIENT, codes=1, prefix="B", now=clock()
    )

    response = await client.get("/v1/batches", headers=auth)

    assert [(b["id"], b["clients"]) for b in response.json()["items"]] == [
        (str(only.id), [str(CLIENT)]),
        (str(shared.id), sorted([str(CLIENT), str(OTHER_CLIENT)])),
    ]


async def test_list_batches_needs_a_credential(client):
    response = await client.get("/v1/batches")

    assert_error(response, 401, "credential_required")


async def test_get_batch_returns_the_batch(client, database, clock, auth):
    batch = await make_batch(
        database, now=clock(), name="Winter Batch", rules=Rules(max_per_customer=1)
    )

    response = await client.get(f"/v1/batches/{batch.id}", headers=auth)

    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["id"], got["client_id"], got["name"]) == (
        str(batch.id),
        str(CLIENT),
        "Winter Batch",
    )
    assert got["rules"] == {"max_per_customer": 1, "time_limit_days": None}
    assert got["expired"] is False


async def test_get_batch_lists_its_clients_and_keeps_its_own(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=1, prefix="B", now=clock()
    )

    got = (await client.get(f"/v1/batches/{batch.id}", headers=auth)).json()

    assert got["client_id"] == str(CLIENT)
    assert got["clients"] == sorted([str(CLIENT), str(OTHER_CLIENT)])


async def test_a_batch_without_codes_lists_its_own_client(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=0)

    got = (await client.get(f"/v1/batches/{batch.id}", headers=auth)).json()

    assert got["clients"] == [str(CLIENT)]


async def test_get_an_unknown_batch_is_404(client, auth):
    unknown = uuid4()

    response = await client.get(f"/v1/batches/{unknown}", headers=auth)

    error = assert_error(response, 404, "batch_not_found")
    assert str(unknown) in error["message"]


# Counting a batch's codes, GET /v1/batches/{id}/stats


async def test_stats_count_total_issued_and_left(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)
    await issue(client, auth, batch.id, customer="a")
    await issue(client, auth, batch.id, customer="b")

    response = await client.get(f"/v1/batches/{batch.id}/stats", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"batch_id": str(batch.id), "total": 5, "issued": 2, "left": 3}


async def test_stats_count_the_codes_of_every_client_of_the_batch(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=3, prefix="B", now=clock()
    )
    await issue(client, auth, batch.id, client_id=OTHER_CLIENT)

    response = await client.get(f"/v1/batches/{batch.id}/stats", headers=auth)

    assert response.json() == {"batch_id": str(batch.id), "total": 5, "issued": 1, "left": 4}


async def test_stats_of_an_unknown_batch_is_404(client, auth):
    response = await client.get(f"/v1/batches/{uuid4()}/stats", headers=auth)

    assert_error(response, 404, "batch_not_found")


# Expiring a batch, POST /v1/batches/{id}/expire


async def test_expire_marks_the_batch_expired(client, database, clock, auth):
    batch = await make_batch(database, now=clock())

    response = await client.post(f"/v1/batches/{batch.id}/expire", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["expired"] is True
    got = await client.get(f"/v1/batches/{batch.id}", headers=auth)
    assert got.json()["expired"] is True


async def test_expiring_twice_is_harmless(client, database, clock, auth):
    batch = await make_batch(database, now=clock())
    await client.post(f"/v1/batches/{batch.id}/expire", headers=auth)

    response = await client.post(f"/v1/batches/{batch.id}/expire", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["expired"] is True


async def test_expire_keeps_the_codes(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=4)

    await client.post(f"/v1/batches/{batch.id}/expire", headers=auth)

    assert (await stats_of(database, batch.id)).total == 4


async def test_issuing_from_an_expired_batch_is_410(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=4)
    await client.post(f"/v1/batches/{batch.id}/expire", headers=auth)

    response = await issue(client, auth, batch.id)

    assert_error(response, 410, "batch_expired")
    assert (await stats_of(database, batch.id)).issued == 0


async def test_expire_of_an_unknown_batch_is_404(client, auth):
    response = await client.post(f"/v1/batches/{uuid4()}/expire", headers=auth)

    assert_error(response, 404, "batch_not_found")


# Uploading codes into a batch, POST /v1/batches/{id}/codes


async def test_upload_codes_with_a_code_header_adds_them(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=0)

    response = await upload_codes(client, auth, batch.id, "code\nA-1\nA-2\nA-3\n")

    assert response.status_code == 201, response.text
    assert response.json() == {"batch_id": str(batch.id), "added": 3}
    assert (await stats_of(database, batch.id)).total == 3


async def test_upload_codes_with_a_client_id_code_header_adds_them(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=0)
    csv = f"client_id,code\n{CLIENT},A-1\n{CLIENT},A-2\n"

    response = await upload_codes(client, auth, batch.id, csv)

    assert response.status_code == 201, response.text
    assert (await stats_of(database, batch.id)).total == 2


async def test_upload_codes_of_another_client_adds_it_to_the_batchs_clients(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=1)
    csv = f"client_id,code\n{OTHER_CLIENT},B-1\n"

    response = await upload_codes(client, auth, batch.id, csv)

    assert response.status_code == 201, response.text
    got = (await client.get(f"/v1/batches/{batch.id}", headers=auth)).json()
    assert (got["client_id"], got["clients"]) == (
        str(CLIENT),
        sorted([str(CLIENT), str(OTHER_CLIENT)]),
    )
    issued = await issue(client, auth, batch.id, client_id=OTHER_CLIENT)
    assert issued.json()["code"] == "B-1"


async def test_upload_codes_with_a_code_header_gives_them_to_the_batchs_own_client(
    client, database, clock, auth
):
    batch = await make_batch(database, now=clock(), codes=0, client_id=OTHER_CLIENT)

    await upload_codes(client, auth, batch.id, "code\nA-1\n")

    issued = await issue(client, auth, batch.id, client_id=OTHER_CLIENT)
    assert issued.json()["code"] == "A-1"


async def test_upload_codes_adds_to_the_codes_already_there(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)

    await upload_codes(client, auth, batch.id, "code\nA-1\nA-2\nA-3\n")

    assert (await stats_of(database, batch.id)).total == 5


async def test_uploaded_codes_are_issued(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=0)
    await upload_codes(client, auth, batch.id, "code\nTHE-CODE\n")

    response = await issue(client, auth, batch.id)

    assert response.json()["code"] == "THE-CODE"


async def test_a_code_of_another_client_may_be_uploaded_again(client, database, clock, auth):
    await make_batch(database, now=clock(), client_id=OTHER_CLIENT, codes=1, prefix="SHARED")
    batch = await make_batch(database, now=clock(), codes=0)

    response = await upload_codes(client, auth, batch.id, "code\nSHARED-0\n")

    assert response.status_code == 201, response.text


async def test_upload_codes_into_an_unknown_batch_is_404(client, auth):
    response = await upload_codes(client, auth, uuid4(), "code\nA-1\n")

    assert_error(response, 404, "batch_not_found")


async def test_upload_codes_needs_a_credential(client, database, clock):
    batch = await make_batch(database, now=clock(), codes=0)

    response = await upload_codes(client, {}, batch.id, "code\nA-1\n")

    assert_error(response, 401, "credential_required")
    assert (await stats_of(database, batch.id)).total == 0


# Issuing a code, POST /v1/batches/{id}/issues


async def test_issue_hands_out_a_code_of_the_batch(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3, prefix="NATIVE")

    response = await issue(client, auth, batch.id)

    assert response.status_code == 201, response.text
    issued = response.json()
    assert issued["code"] in {"NATIVE-0", "NATIVE-1", "NATIVE-2"}
    assert parse_time(issued.pop("issued_at")) == clock()
    assert issued == {
        "code": issued["code"],
        "batch_id": str(batch.id),
        "client_id": str(CLIENT),
        "customer_id": CUSTOMER,
    }


async def test_issue_never_hands_out_the_same_code_twice(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=4, prefix="ONCE")

    handed_out = [(await issue(client, auth, batch.id, customer=f"c{n}")) for n in range(4)]

    assert sorted(r.json()["code"] for r in handed_out) == [f"ONCE-{n}" for n in range(4)]


async def test_issue_when_no_codes_are_left_is_409(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    await issue(client, auth, batch.id, customer=OTHER_CUSTOMER)

    response = await issue(client, auth, batch.id)

    assert_error(response, 409, "pool_exhausted")


async def test_issue_beyond_max_per_customer_is_403(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5, rules=Rules(max_per_customer=1))
    await issue(client, auth, batch.id)

    response = await issue(client, auth, batch.id)

    assert_error(response, 403, "customer_limit_reached")
    assert (await stats_of(database, batch.id)).issued == 1


async def test_issue_after_the_time_limit_has_passed(client, database, clock, auth):
    rules = Rules(max_per_customer=1, time_limit_days=7)
    batch = await make_batch(database, now=clock(), codes=5, rules=rules)
    await issue(client, auth, batch.id)
    clock.advance(days=7, seconds=1)

    response = await issue(client, auth, batch.id)

    assert response.status_code == 201, response.text


async def test_issue_for_another_client_is_422(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await issue(client, auth, batch.id, client_id=OTHER_CLIENT)

    assert_error(response, 422, "client_mismatch")
    assert (await stats_of(database, batch.id)).issued == 0


async def test_issue_takes_a_code_of_the_named_client_of_the_batch(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2, prefix="A")
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=2, prefix="B", now=clock()
    )

    response = await issue(client, auth, batch.id, client_id=OTHER_CLIENT)

    assert response.status_code == 201, response.text
    assert (response.json()["code"], response.json()["client_id"]) == ("B-0", str(OTHER_CLIENT))


async def test_issue_for_a_client_whose_codes_are_gone_is_409(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=1, prefix="B", now=clock()
    )
    await issue(client, auth, batch.id, client_id=OTHER_CLIENT, customer=OTHER_CUSTOMER)

    response = await issue(client, auth, batch.id, client_id=OTHER_CLIENT)

    assert_error(response, 409, "pool_exhausted")


async def test_expiring_a_batch_stops_issuing_for_every_client(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    await add_client_codes(
        database, batch, client_id=OTHER_CLIENT, codes=2, prefix="B", now=clock()
    )

    await client.post(f"/v1/batches/{batch.id}/expire", headers=auth)

    assert_error(await issue(client, auth, batch.id), 410, "batch_expired")
    assert_error(await issue(client, auth, batch.id, client_id=OTHER_CLIENT), 410, "batch_expired")


async def test_issue_from_an_unknown_batch_is_404(client, auth):
    response = await issue(client, auth, uuid4())

    assert_error(response, 404, "batch_not_found")


async def test_issue_needs_a_credential(client, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await issue(client, {}, batch.id)

    assert_error(response, 401, "credential_required")
    assert (await stats_of(database, batch.id)).issued == 0


async def test_an_idempotency_key_gets_the_same_code_again(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)
    retry = {**auth, "Idempotency-Key": "order-1001"}

    first = await issue(client, retry, batch.id)
    second = await issue(client, retry, batch.id)

    assert first.json()["code"] == second.json()["code"]


async def test_an_idempotency_key_burns_only_one_code(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)
    retry = {**auth, "Idempotency-Key": "order-1001"}

    for _ in range(3):
        await issue(client, retry, batch.id)

    assert (await stats_of(database, batch.id)).issued == 1


async def test_an_idempotency_key_of_another_customer_is_409(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=5)
    retry = {**auth, "Idempotency-Key": "order-1001"}
    await issue(client, retry, batch.id)

    response = await issue(client, retry, batch.id, customer=OTHER_CUSTOMER)

    assert_error(response, 409, "idempotency_key_reused")


# A customer's codes, GET /v1/customers/{id}/codes


async def test_customer_codes_lists_the_customers_codes_newest_first(client, database, clock, auth):
    winter = await make_batch(database, now=clock(), codes=2, prefix="WINTER")
    summer = await make_batch(database, now=clock(), codes=2, prefix="SUMMER")
    first = (await issue(client, auth, winter.id)).json()
    clock.advance(days=1)
    second = (await issue(client, auth, summer.id)).json()

    response = await client.get(f"/v1/customers/{CUSTOMER}/codes", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["items"] == [second, first]


async def test_customer_codes_leaves_out_other_customers_codes(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=3)
    mine = (await issue(client, auth, batch.id)).json()
    await issue(client, auth, batch.id, customer=OTHER_CUSTOMER)

    response = await client.get(f"/v1/customers/{CUSTOMER}/codes", headers=auth)

    assert [i["code"] for i in response.json()["items"]] == [mine["code"]]


async def test_customer_codes_filters_by_batch(client, database, clock, auth):
    winter = await make_batch(database, now=clock(), codes=2)
    summer = await make_batch(database, now=clock(), codes=2)
    await issue(client, auth, winter.id)
    wanted = (await issue(client, auth, summer.id)).json()

    response = await client.get(
        f"/v1/customers/{CUSTOMER}/codes", params={"batch_id": str(summer.id)}, headers=auth
    )

    assert response.json()["items"] == [wanted]


async def test_customer_codes_filters_by_client(client, database, clock, auth):
    mine = await make_batch(database, now=clock(), codes=2, client_id=CLIENT)
    theirs = await make_batch(database, now=clock(), codes=2, client_id=OTHER_CLIENT)
    await issue(client, auth, theirs.id, client_id=OTHER_CLIENT)
    wanted = (await issue(client, auth, mine.id)).json()

    response = await client.get(
        f"/v1/customers/{CUSTOMER}/codes", params={"client_id": str(CLIENT)}, headers=auth
    )

    assert response.json()["items"] == [wanted]


async def test_customer_codes_pages_by_cursor(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=4)
    issued = []
    for _ in range(4):
        issued.append((await issue(client, auth, batch.id)).json())
        clock.advance(hours=1)

    pages = await all_pages(client, f"/v1/customers/{CUSTOMER}/codes", auth, limit=2)

    assert [page["items"] for page in pages] == [[issued[3], issued[2]], [issued[1], issued[0]]]


async def test_customer_codes_of_a_customer_without_codes_is_empty(client, auth):
    response = await client.get("/v1/customers/nobody/codes", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


async def test_customer_codes_needs_a_credential(client):
    response = await client.get(f"/v1/customers/{CUSTOMER}/codes")

    assert_error(response, 401, "credential_required")
