"""Bad input gets a clear 4xx, never a 500, and changes nothing.

Each test of a request that could change something checks the database afterwards: no batch,
no code, no client and no issue is left behind.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from promos.codes import service
from promos.codes.service import Batch, BatchStats
from promos.codes.tables import clients, codes
from promos.db import Database
from promos.settings import Settings
from tests.factories.codes import CLIENT, make_batch

OTHER_CLIENT = UUID("3d6f0a2b-8c1e-4f5a-9b7d-2e4c6a8b0d1f")
CUSTOMER = "50b0b41b-c665-4409-a2bb-a4fc18828dc2"
MAX_BODY = 64 * 1024
MAX_UPLOAD = 256 * 1024
TOO_BIG_FOR_INT32 = 10**10

both_paths = pytest.mark.parametrize("fast_path", [True, False], ids=["fast_path", "fastapi"])


@pytest.fixture
def settings(database_url: str, fast_path: bool) -> Settings:
    return Settings(
        database_url=database_url,
        db_pool_size=20,
        db_max_overflow=10,
        fast_path=fast_path,
        max_body_bytes=MAX_BODY,
        max_upload_bytes=MAX_UPLOAD,
    )


def assert_native_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body["error"]


def assert_ango_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str), body
    assert body["error"]
    return body["error"]


async def count(database: Database, table: Any) -> int:
    async with database.begin() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def all_batches(database: Database) -> list[Batch]:
    async with database.begin() as conn:
        return await service.list_batches(conn)


async def stats_of(database: Database, batch_id: UUID) -> BatchStats:
    async with database.begin() as conn:
        return await service.batch_stats(conn, batch_id)


async def snapshot(database: Database) -> tuple[list[Batch], int, int]:
    """Everything a code pool request could change."""
    return await all_batches(database), await count(database, codes), await count(database, clients)


async def chunks(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    """A body sent without Content-Length, in pieces."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def csv_file(text: str | bytes) -> dict[str, tuple[str, bytes, str]]:
    data = text.encode() if isinstance(text, str) else text
    return {"file": ("codes.csv", data, "text/csv")}


# Creating a batch, POST /v1/batches: refused bodies create nothing.

GOOD_BATCH: dict[str, Any] = {"client_id": str(CLIENT), "name": "Summer Sale"}

BAD_BATCHES: dict[str, Any] = {
    "missing name": {"client_id": str(CLIENT)},
    "missing client_id": {"name": "Summer Sale"},
    "name not a string": {**GOOD_BATCH, "name": 5},
    "empty name": {**GOOD_BATCH, "name": ""},
    "name too long": {**GOOD_BATCH, "name": "x" * 256},
    "name with a NUL": {**GOOD_BATCH, "name": "Summer\u0000Sale"},
    "client_id not a UUID": {**GOOD_BATCH, "client_id": "client-1"},
    "client_id a number": {**GOOD_BATCH, "client_id": 5},
    "max_per_customer 0": {**GOOD_BATCH, "rules": {"max_per_customer": 0}},
    "max_per_customer negative": {**GOOD_BATCH, "rules": {"max_per_customer": -1}},
    "max_per_customer a string": {**GOOD_BATCH, "rules": {"max_per_customer": "2"}},
    "max_per_customer a fraction": {**GOOD_BATCH, "rules": {"max_per_customer": 1.5}},
    "max_per_customer a boolean": {**GOOD_BATCH, "rules": {"max_per_customer": True}},
    "max_per_customer too large": {
        **GOOD_BATCH,
        "rules": {"max_per_customer": TOO_BIG_FOR_INT32},
    },
    "time_limit_days 0": {
        **GOOD_BATCH,
        "rules": {"max_per_customer": 1, "time_limit_days": 0},
    },
    "time_limit_days too large": {
        **GOOD_BATCH,
        "rules": {"max_per_customer": 1, "time_limit_days": TOO_BIG_FOR_INT32},
    },
    "time_limit_days without max_per_customer": {**GOOD_BATCH, "rules": {"time_limit_days": 30}},
    "unknown rule": {**GOOD_BATCH, "rules": {"max_per_customer": 1, "per_day": 3}},
    "Ango's rule names": {**GOOD_BATCH, "rules": {"maxpercustomer": 1}},
    "rules not an object": {**GOOD_BATCH, "rules": "max 2"},
    "unknown field": {**GOOD_BATCH, "owner": "marketing"},
    "a list": [GOOD_BATCH],
    "null": None,
}


@pytest.mark.parametrize("body", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
async def test_a_batch_with_bad_fields_is_refused(client, database, auth, body):
    response = await client.post("/v1/batches", json=body, headers=auth)

    error = assert_native_error(response, 422)
    assert error["code"] in {"invalid_input", "invalid_rules"}
    assert await snapshot(database) == ([], 0, 0)


async def test_a_batch_of_malformed_json_is_refused(client, database, auth):
    headers = {**auth, "Content-Type": "application/json"}

    response = await client.post("/v1/batches", content=b'{"client_id": "', headers=headers)

    assert_native_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


async def test_a_batch_with_an_oversized_body_is_413(client, database, auth):
    body = {**GOOD_BATCH, "padding": "x" * MAX_BODY}

    response = await client.post("/v1/batches", json=body, headers=auth)

    assert_native_error(response, 413)
    assert await snapshot(database) == ([], 0, 0)


async def test_a_batch_with_an_oversized_body_without_length_is_413(client, database, auth):
    data = orjson.dumps({**GOOD_BATCH, "padding": "x" * MAX_BODY})
    headers = {**auth, "Content-Type": "application/json"}

    response = await client.post("/v1/batches", content=chunks(data), headers=headers)

    assert_native_error(response, 413)
    assert await snapshot(database) == ([], 0, 0)


# Only the upload routes take PROMOS_MAX_UPLOAD_BYTES; a body labelled multipart does not.

BETWEEN_THE_LIMITS = MAX_BODY + (MAX_UPLOAD - MAX_BODY) // 2


def multipart(size: int) -> tuple[bytes, str]:
    """A multipart body of about ``size`` bytes, and its Content-Type."""
    request = httpx.Request("POST", "http://x", files=csv_file("code\n" + "X" * size))
    return request.read(), request.headers["content-type"]


async def test_a_json_route_refuses_a_multipart_body_over_the_body_limit(client, database, auth):
    data, content_type = multipart(BETWEEN_THE_LIMITS)

    response = await client.post(
        "/v1/batches", content=data, headers={**auth, "Content-Type": content_type}
    )

    assert_native_error(response, 413)
    assert await snapshot(database) == ([], 0, 0)


async def test_a_json_route_refuses_a_streamed_multipart_body_over_the_body_limit(
    client, database, auth
):
    data, content_type = multipart(BETWEEN_THE_LIMITS)

    response = await client.post(
        "/v1/batches", content=chunks(data), headers={**auth, "Content-Type": content_type}
    )

    assert_native_error(response, 413)
    assert await snapshot(database) == ([], 0, 0)


async def test_an_offers_route_refuses_a_multipart_body_over_the_body_limit_in_its_shape(
    client, auth
):
    data, content_type = multipart(BETWEEN_THE_LIMITS)

    response = await client.put(
        "/games/galaxy", content=data, headers={**auth, "Content-Type": content_type}
    )

    assert response.status_code == 413, response.text
    assert set(response.json()) == {"error", "code", "description"}


async def test_a_code_file_over_the_body_limit_is_uploaded(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=0)
    rows = [f"BIG-{n:08d}" for n in range(BETWEEN_THE_LIMITS // 13)]

    response = await client.post(
        f"/v1/batches/{batch.id}/codes", files=csv_file("code\n" + "\n".join(rows)), headers=auth
    )

    assert response.status_code == 201, response.text
    assert (await stats_of(database, batch.id)).total == len(rows)


async def test_an_ango_upload_over_the_body_limit_is_taken(client, database, auth):
    codes_ = [f"BIG-{n:08d}" for n in range(BETWEEN_THE_LIMITS // 50)]

    response = await client.post(
        UPLOAD, files=csv_file(ango_csv(*codes_)), data={"batch_name": "Big"}, headers=auth
    )

    assert response.status_code == 200, response.text
    assert await count(database, codes) == len(codes_)


# Ids in paths and queries


NOT_A_UUID_ROUTES = {
    "get batch": ("GET", "/v1/batches/summer-sale"),
    "stats": ("GET", "/v1/batches/summer-sale/stats"),
    "expire": ("POST", "/v1/batches/summer-sale/expire"),
    "list by client": ("GET", "/v1/batches?client_id=acme"),
    "customer codes by batch": ("GET", "/v1/customers/c1/codes?batch_id=1"),
    "customer codes by client": ("GET", "/v1/customers/c1/codes?client_id=acme"),
}


@pytest.mark.parametrize("route", NOT_A_UUID_ROUTES.values(), ids=NOT_A_UUID_ROUTES.keys())
async def test_an_id_that_is_not_a_uuid_is_422(client, database, clock, auth, route):
    batch = await make_batch(database, now=clock())
    method, url = route

    response = await client.request(method, url, headers=auth)

    assert_native_error(response, 422)
    assert (await all_batches(database)) == [batch]


async def test_issuing_from_a_batch_id_that_is_not_a_uuid_is_422(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=1)
    body = {"client_id": str(CLIENT), "customer_id": "c1"}

    response = await client.post("/v1/batches/summer-sale/issues", json=body, headers=auth)

    assert_native_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


async def test_uploading_into_a_batch_id_that_is_not_a_uuid_is_422(client, database, auth):
    response = await client.post(
        "/v1/batches/summer-sale/codes", files=csv_file("code\nA-1\n"), headers=auth
    )

    assert_native_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


BAD_PAGES = {
    "limit 0": {"limit": 0},
    "limit over 1000": {"limit": 1001},
    "negative limit": {"limit": -1},
    "limit not a number": {"limit": "ten"},
    "empty cursor": {"cursor": ""},
    "cursor not base64": {"cursor": "%%%"},
    "cursor of another list": {"cursor": "WzFd"},  # [1]: an id, where a time and id are kept
    "cursor too long": {"cursor": "A" * 600},
}


@pytest.mark.parametrize("params", BAD_PAGES.values(), ids=BAD_PAGES.keys())
@pytest.mark.parametrize("url", ["/v1/batches", "/v1/customers/c1/codes"])
async def test_a_bad_page_is_422(client, auth, url, params):
    response = await client.get(url, params=params, headers=auth)

    assert_native_error(response, 422)


@pytest.mark.parametrize("url", ["/v1/batches", "/v1/customers/c1/codes"])
async def test_an_offset_is_no_parameter_of_a_native_list(client, database, clock, auth, url):
    await make_batch(database, now=clock())

    response = await client.get(url, params={"offset": 1}, headers=auth)

    assert_native_error(response, 400)


async def test_customer_codes_of_a_customer_id_with_a_nul_is_never_a_500(client, auth):
    response = await client.get("/v1/customers/c%001/codes", headers=auth)

    assert response.status_code in {200, 422}, response.text


# Issuing a code, POST /v1/batches/{id}/issues: refused requests issue nothing.

GOOD_ISSUE: dict[str, Any] = {"client_id": str(CLIENT), "customer_id": "customer-42"}

BAD_ISSUES: dict[str, Any] = {
    "missing customer_id": {"client_id": str(CLIENT)},
    "missing client_id": {"customer_id": "customer-42"},
    "empty customer_id": {**GOOD_ISSUE, "customer_id": ""},
    "customer_id with a space": {**GOOD_ISSUE, "customer_id": "customer 42"},
    "customer_id a number": {**GOOD_ISSUE, "customer_id": 42},
    "customer_id too long": {**GOOD_ISSUE, "customer_id": "c" * 256},
    "customer_id with a NUL": {**GOOD_ISSUE, "customer_id": "customer\u000042"},
    "client_id not a UUID": {**GOOD_ISSUE, "client_id": "acme"},
    "unknown field": {**GOOD_ISSUE, "quantity": 2},
    "a list": [GOOD_ISSUE],
    "a string": "customer-42",
}


@pytest.mark.parametrize("body", BAD_ISSUES.values(), ids=BAD_ISSUES.keys())
async def test_an_issue_with_bad_fields_is_refused(client, database, clock, auth, body):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await client.post(f"/v1/batches/{batch.id}/issues", json=body, headers=auth)

    assert_native_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


async def test_an_issue_of_malformed_json_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    headers = {**auth, "Content-Type": "application/json"}

    response = await client.post(
        f"/v1/batches/{batch.id}/issues", content=b'{"customer_id": ', headers=headers
    )

    assert_native_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "too long"])
async def test_an_issue_with_a_bad_idempotency_key_is_refused(client, database, clock, auth, key):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await client.post(
        f"/v1/batches/{batch.id}/issues",
        json=GOOD_ISSUE,
        headers={**auth, "Idempotency-Key": key},
    )

    assert_native_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


# Uploading codes into a batch, POST /v1/batches/{id}/codes: all rows or none.

C, X = CLIENT, OTHER_CLIENT  # short names keep the tables readable

# (file, the row the error names, status); the batch already holds OLD-0 and OLD-1.
BROKEN_CODE_FILES: dict[str, tuple[str, int, int]] = {
    "bad header": ("coupon\nA-1\n", 1, 422),
    "header with an extra column": ("client_id,code,value\n", 1, 422),
    "too many fields": ("code\nA-1\nA-2,5\n", 3, 422),
    "too few fields": (f"client_id,code\n{C},A-1\n{C}\n", 3, 422),
    "client_id not a UUID": (f"client_id,code\n{C},A-1\nacme,A-2\n", 3, 422),
    "empty code": (f"client_id,code\n{C},A-1\n{C},\n", 3, 422),
    "blank code": ("code\nA-1\n   \n", 3, 422),
    "code too long": ("code\nA-1\n" + "x" * 256 + "\n", 3, 422),
    "code with a NUL": ("code\nA-1\nA\x002\n", 3, 422),
    "broken quoting": ('code\nA-1\n"A-2"x\n', 3, 422),
    "a code twice for another client": (f"client_id,code\n{C},A-1\n{X},A-2\n{X},A-2\n", 4, 409),
    "a code twice in the file": ("code\nA-1\nA-2\nA-3\nA-2\n", 5, 409),
    "a code the batch already has": ("code\nA-1\nOLD-1\n", 3, 409),
}


@pytest.mark.parametrize("case", BROKEN_CODE_FILES.values(), ids=BROKEN_CODE_FILES.keys())
async def test_a_broken_code_file_adds_nothing_and_names_the_row(
    client, database, clock, auth, case
):
    text, row, status = case
    batch = await make_batch(database, now=clock(), codes=2, prefix="OLD")

    response = await client.post(
        f"/v1/batches/{batch.id}/codes", files=csv_file(text), headers=auth
    )

    error = assert_native_error(response, status)
    assert f"row {row}" in error["message"]
    assert error["details"] == {"row": row}
    assert (await stats_of(database, batch.id)).total == 2


async def test_a_code_of_another_batch_of_the_client_is_refused(client, database, clock, auth):
    await make_batch(database, now=clock(), codes=1, prefix="TAKEN")
    batch = await make_batch(database, now=clock(), codes=0)

    response = await client.post(
        f"/v1/batches/{batch.id}/codes", files=csv_file("code\nA-1\nTAKEN-0\n"), headers=auth
    )

    error = assert_native_error(response, 409)
    assert "row 3" in error["message"]
    assert (await stats_of(database, batch.id)).total == 0


async def test_a_failed_upload_finishes_reading_its_file_cleanly(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    await client.post(
        f"/v1/batches/{batch.id}/codes", files=csv_file("code\nA-1\nA-2,5\n"), headers=auth
    )

    gc.collect()  # an error in the abandoned reader's clean-up fails this test

    assert (await stats_of(database, batch.id)).total == 2


async def test_an_empty_code_file_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await client.post(f"/v1/batches/{batch.id}/codes", files=csv_file(""), headers=auth)

    assert_native_error(response, 422)
    assert (await stats_of(database, batch.id)).total == 2


async def test_a_code_file_that_is_not_utf8_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    data = "code\nA-1\ncafé\n".encode("latin-1")

    response = await client.post(
        f"/v1/batches/{batch.id}/codes", files=csv_file(data), headers=auth
    )

    error = assert_native_error(response, 422)
    assert "UTF-8" in error["message"]
    assert (await stats_of(database, batch.id)).total == 2


async def test_a_code_file_that_is_not_utf8_names_the_row(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    data = "code\nA-1\ncafé\n".encode("latin-1")

    response = await client.post(
        f"/v1/batches/{batch.id}/codes", files=csv_file(data), headers=auth
    )

    assert "row 3" in assert_native_error(response, 422)["message"]


async def test_a_code_upload_without_a_file_is_refused(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await client.post(
        f"/v1/batches/{batch.id}/codes", data={"file": "code\nA-1\n"}, headers=auth
    )

    assert_native_error(response, 422)
    assert (await stats_of(database, batch.id)).total == 2


async def test_an_oversized_code_file_is_413(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    text = "code\n" + "".join(f"BIG-{n:08d}\n" for n in range(MAX_UPLOAD // 10))

    response = await client.post(
        f"/v1/batches/{batch.id}/codes", files=csv_file(text), headers=auth
    )

    assert_native_error(response, 413)
    assert (await stats_of(database, batch.id)).total == 2


# Ango's redeem, POST /api/v1/code/redeem, on the fast path and on FastAPI.

REDEEM = "/api/v1/code/redeem"


def redeem_body(batch_id: UUID, **changes: Any) -> dict[str, Any]:
    body = {"batchid": str(batch_id), "clientid": str(CLIENT), "customerid": CUSTOMER}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


BAD_REDEEMS: dict[str, dict[str, Any]] = {
    "missing batchid": {"batchid": None},
    "missing clientid": {"clientid": None},
    "missing customerid": {"customerid": None},
    "batchid not a UUID": {"batchid": "summer-sale"},
    "batchid a number": {"batchid": 11111111},
    "clientid not a UUID": {"clientid": "acme"},
    "customerid not a UUID": {"customerid": "customer-42"},
    "customerid a number": {"customerid": 42},
}


@both_paths
@pytest.mark.parametrize("changes", BAD_REDEEMS.values(), ids=BAD_REDEEMS.keys())
async def test_a_redeem_with_bad_fields_is_refused(client, database, clock, auth, changes):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await client.post(REDEEM, json=redeem_body(batch.id, **changes), headers=auth)

    assert_ango_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


NOT_REDEEM_BODIES = {
    "malformed JSON": b'{"batchid": ',
    "empty body": b"",
    "a list": b"[]",
    "a string": b'"redeem"',
    "null": b"null",
    "trailing garbage": b"{}}",
}


@both_paths
@pytest.mark.parametrize("data", NOT_REDEEM_BODIES.values(), ids=NOT_REDEEM_BODIES.keys())
async def test_a_redeem_that_is_not_a_json_object_is_refused(client, database, clock, auth, data):
    batch = await make_batch(database, now=clock(), codes=2)
    headers = {**auth, "Content-Type": "application/json"}

    response = await client.post(REDEEM, content=data, headers=headers)

    assert_ango_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


@both_paths
@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "too long"])
async def test_a_redeem_with_a_bad_idempotency_key_is_refused(client, database, clock, auth, key):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await client.post(
        REDEEM, json=redeem_body(batch.id), headers={**auth, "Idempotency-Key": key}
    )

    assert_ango_error(response, 422)
    assert (await stats_of(database, batch.id)).issued == 0


@both_paths
async def test_a_redeem_with_an_oversized_body_is_413(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    body = {**redeem_body(batch.id), "padding": "x" * MAX_BODY}

    response = await client.post(REDEEM, json=body, headers=auth)

    assert_ango_error(response, 413)
    assert (await stats_of(database, batch.id)).issued == 0


@both_paths
async def test_a_redeem_with_an_oversized_body_without_length_is_413(client, database, clock, auth):
    batch = await make_batch(database, now=clock(), codes=2)
    data = orjson.dumps({**redeem_body(batch.id), "padding": "x" * MAX_BODY})
    headers = {**auth, "Content-Type": "application/json"}

    response = await client.post(REDEEM, content=chunks(data), headers=headers)

    assert_ango_error(response, 413)
    assert (await stats_of(database, batch.id)).issued == 0


# Ango's upload, POST /api/v1/codes/upload: a refused upload leaves no batch and no code.

UPLOAD = "/api/v1/codes/upload"


def ango_csv(*codes_: str) -> str:
    return "client_id,code\n" + "".join(f"{CLIENT},{c}\n" for c in codes_)


BAD_RULES = {
    "unknown rule": '{"maxpercustomer":2,"perday":1}',
    "maxpercustomer 0": '{"maxpercustomer":0}',
    "maxpercustomer negative": '{"maxpercustomer":-2}',
    "maxpercustomer a string": '{"maxpercustomer":"2"}',
    "maxpercustomer a fraction": '{"maxpercustomer":1.5}',
    "maxpercustomer a boolean": '{"maxpercustomer":true}',
    "maxpercustomer too large": f'{{"maxpercustomer":{TOO_BIG_FOR_INT32}}}',
    "timelimit 0": '{"maxpercustomer":2,"timelimit":0}',
    "timelimit too large": f'{{"maxpercustomer":2,"timelimit":{TOO_BIG_FOR_INT32}}}',
    "timelimit without maxpercustomer": '{"timelimit":30}',
    "not JSON": "maxpercustomer=2",
    "truncated JSON": '{"maxpercustomer":2',
    "a JSON list": "[2, 30]",
    "a JSON number": "2",
}


@pytest.mark.parametrize("rules", BAD_RULES.values(), ids=BAD_RULES.keys())
async def test_an_upload_with_bad_rules_is_refused(client, database, auth, rules):
    response = await client.post(
        UPLOAD,
        files=csv_file(ango_csv("A-1", "A-2")),
        data={"batch_name": "Summer Sale 2023", "rules": rules},
        headers=auth,
    )

    assert_ango_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


BAD_BATCH_NAMES = {
    "missing": None,
    "empty": "",
    "too long": "x" * 256,
    "with a NUL": "Summer\x00Sale",
}


@pytest.mark.parametrize("name", BAD_BATCH_NAMES.values(), ids=BAD_BATCH_NAMES.keys())
async def test_an_upload_with_a_bad_batch_name_is_refused(client, database, auth, name):
    form = {} if name is None else {"batch_name": name}

    response = await client.post(UPLOAD, files=csv_file(ango_csv("A-1")), data=form, headers=auth)

    assert_ango_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


async def test_an_upload_without_a_file_is_refused(client, database, auth):
    response = await client.post(
        UPLOAD, data={"batch_name": "Summer Sale", "file": ango_csv("A-1")}, headers=auth
    )

    assert_ango_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


# (file, the row the error names, status); a batch of the client already holds OLD-0, OLD-1.
BROKEN_ANGO_FILES: dict[str, tuple[str, int, int]] = {
    "bad header": ("client,coupon\n", 1, 422),
    "no client_id column": ("code\nA-1\n", 1, 422),
    "too many fields": (f"client_id,code\n{C},A-1\n{C},A-2,5\n", 3, 422),
    "too few fields": (f"client_id,code\n{C},A-1\nA-2\n", 3, 422),
    "client_id not a UUID": (f"client_id,code\n{C},A-1\nacme,A-2\n", 3, 422),
    "first client_id not a UUID": ("client_id,code\nacme,A-1\n", 2, 422),
    "empty code": (f"client_id,code\n{C},A-1\n{C},\n", 3, 422),
    "code too long": (f"client_id,code\n{C},A-1\n{C},{'x' * 256}\n", 3, 422),
    "code with a NUL": (f"client_id,code\n{C},A-1\n{C},A\x002\n", 3, 422),
    "broken quoting": (f'client_id,code\n{C},A-1\n{C},"A-2"x\n', 3, 422),
    "a code twice for another client": (f"client_id,code\n{C},A-1\n{X},A-1\n{X},A-1\n", 4, 409),
    "a code twice in the file": (f"client_id,code\n{C},A-1\n{C},A-2\n{C},A-1\n", 4, 409),
    "a code the client already has": (f"client_id,code\n{C},A-1\n{C},OLD-1\n", 3, 409),
}


@pytest.mark.parametrize("case", BROKEN_ANGO_FILES.values(), ids=BROKEN_ANGO_FILES.keys())
async def test_a_broken_upload_leaves_no_batch_and_names_the_row(
    client, database, clock, auth, case
):
    text, row, status = case
    await make_batch(database, now=clock(), codes=2, prefix="OLD")
    before = await snapshot(database)

    response = await client.post(
        UPLOAD, files=csv_file(text), data={"batch_name": "Summer Sale 2023"}, headers=auth
    )

    assert f"row {row}" in assert_ango_error(response, status)
    assert await snapshot(database) == before


async def test_an_empty_upload_is_refused(client, database, auth):
    response = await client.post(
        UPLOAD, files=csv_file(""), data={"batch_name": "Summer Sale 2023"}, headers=auth
    )

    assert_ango_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


async def test_an_upload_of_only_a_header_is_refused(client, database, auth):
    response = await client.post(
        UPLOAD,
        files=csv_file("client_id,code\n"),
        data={"batch_name": "Summer Sale 2023"},
        headers=auth,
    )

    assert_ango_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


async def test_an_upload_that_is_not_utf8_is_refused(client, database, auth):
    data = f"client_id,code\n{CLIENT},A-1\n{CLIENT},café\n".encode("latin-1")

    response = await client.post(
        UPLOAD, files=csv_file(data), data={"batch_name": "Summer Sale 2023"}, headers=auth
    )

    assert "UTF-8" in assert_ango_error(response, 422)
    assert await snapshot(database) == ([], 0, 0)


async def test_an_oversized_upload_is_413(client, database, auth):
    text = ango_csv(*(f"BIG-{n:08d}" for n in range(MAX_UPLOAD // 40)))

    response = await client.post(
        UPLOAD, files=csv_file(text), data={"batch_name": "Summer Sale 2023"}, headers=auth
    )

    assert_ango_error(response, 413)
    assert await snapshot(database) == ([], 0, 0)


async def test_a_batch_name_may_repeat_after_a_failed_upload(client, database, auth):
    await client.post(
        UPLOAD,
        files=csv_file(ango_csv("A-1", "A-1")),
        data={"batch_name": "Summer Sale 2023"},
        headers=auth,
    )

    response = await client.post(
        UPLOAD,
        files=csv_file(ango_csv("A-1", "A-2")),
        data={"batch_name": "Summer Sale 2023"},
        headers=auth,
    )

    assert response.status_code == 200, response.text
    (batch,) = await all_batches(database)
    assert (await stats_of(database, batch.id)).total == 2
