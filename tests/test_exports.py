"""CSV exports of the native API: a batch's codes, promo codes (with the list route's filters)
and their redemptions, read back and compared with what the services hold."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import httpx
import pytest

from promos.codes import export as codes_export
from promos.codes import service as codes
from promos.codes.service import Rules
from promos.export import iso, words
from promos.promocodes import export as promocodes_export
from promos.promocodes.service import PromocodeFilter
from tests.conftest import FakeClock
from tests.factories.codes import CLIENT, make_batch
from tests.factories.promocodes import make_promocodes

OTHER_CLIENT = UUID("0d7cbb0e-9f3c-4a53-9d39-6d5b7f8c2a11")


def rows_of(response: httpx.Response) -> list[dict[str, str]]:
    """The CSV body as one dict per row, keyed by the header."""
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


async def issue(
    client: httpx.AsyncClient, auth: dict[str, str], batch_id: UUID, customer: str
) -> str:
    body = {"client_id": str(CLIENT), "customer_id": customer}
    response = await client.post(f"/v1/batches/{batch_id}/issues", json=body, headers=auth)
    assert response.status_code == 201, response.text
    code: str = response.json()["code"]
    return code


# --- a batch's codes ---------------------------------------------------------------------------


async def test_a_batchs_codes_come_back_with_their_client_customer_and_issue_time(
    client, auth, database, clock
):
    batch = await make_batch(database, now=clock(), codes=5, prefix="SUMMER")
    issued = await issue(client, auth, batch.id, "alice")

    rows = rows_of(await client.get(f"/v1/batches/{batch.id}/codes.csv", headers=auth))

    assert sorted(r["code"] for r in rows) == [f"SUMMER-{n}" for n in range(5)]
    assert {r["client_id"] for r in rows} == {str(CLIENT)}
    [alice] = [r for r in rows if r["customer_id"]]
    assert (alice["code"], alice["customer_id"]) == (issued, "alice")
    assert datetime.fromisoformat(alice["issued_at"]) == clock()
    assert all(r["issued_at"] == "" for r in rows if r is not alice)


async def test_the_export_header_names_the_columns(client, auth, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await client.get(f"/v1/batches/{batch.id}/codes.csv", headers=auth)

    assert response.text.splitlines()[0] == "code,client_id,customer_id,issued_at"


async def test_an_export_is_a_csv_download(client, auth, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await client.get(f"/v1/batches/{batch.id}/codes.csv", headers=auth)

    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="batch-{batch.id}-codes.csv"'
    )
    assert response.headers["cache-control"] == "no-store"


async def test_an_empty_batch_exports_only_the_header(client, auth, database, clock):
    batch = await make_batch(database, now=clock(), codes=0)

    response = await client.get(f"/v1/batches/{batch.id}/codes.csv", headers=auth)

    assert rows_of(response) == []


async def test_only_the_batchs_own_codes_are_exported(client, auth, database, clock):
    batch = await make_batch(database, now=clock(), codes=2, prefix="MINE")
    await make_batch(database, now=clock(), codes=3, prefix="OTHER")
    await make_batch(database, now=clock(), codes=3, prefix="ELSE", client_id=OTHER_CLIENT)

    rows = rows_of(await client.get(f"/v1/batches/{batch.id}/codes.csv", headers=auth))

    assert sorted(r["code"] for r in rows) == ["MINE-0", "MINE-1"]


async def test_a_code_with_a_comma_or_a_quote_reads_back_unchanged(client, auth, database, clock):
    tricky = ["A,1", 'B"2', "C 3"]
    async with database.begin() as conn:
        batch = await codes.create_batch(
            conn, client_id=CLIENT, name="tricky", rules=Rules(), now=clock()
        )
        await codes.add_codes(conn, batch, enumerate(tricky, start=2))

    rows = rows_of(await client.get(f"/v1/batches/{batch.id}/codes.csv", headers=auth))

    assert sorted(r["code"] for r in rows) == sorted(tricky)


async def test_exporting_an_unknown_batch_is_a_404(client, auth):
    response = await client.get(f"/v1/batches/{UUID(int=7)}/codes.csv", headers=auth)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "batch_not_found"


async def test_exporting_a_batch_needs_a_credential(client, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)

    response = await client.get(f"/v1/batches/{batch.id}/codes.csv")

    assert response.status_code == 401


async def test_the_chunked_reads_return_every_code_once(database, clock):
    batch = await make_batch(database, now=clock(), codes=7, prefix="CHUNK")
    await make_batch(database, now=clock(), codes=5, prefix="CHUNK", client_id=OTHER_CLIENT)

    chunks = [c async for c in codes_export.batch_codes(database, batch.id, chunk_rows=3)]

    assert [len(c) for c in chunks] == [3, 3, 1]
    assert sorted(c.code for chunk in chunks for c in chunk) == sorted(
        f"CHUNK-{n}" for n in range(7)
    )


async def test_a_batch_holding_codes_of_several_clients_exports_them_all(database, clock):
    batch = await make_batch(database, now=clock(), codes=3, prefix="FIRST")
    # Ango's uploads name a client on every row: a batch of several clients.
    async with database.begin() as conn:
        await codes.add_client_codes(
            conn,
            batch,
            ((n + 2, OTHER_CLIENT, f"SECOND-{n}") for n in range(4)),
            now=clock(),
        )

    chunks = [c async for c in codes_export.batch_codes(database, batch.id, chunk_rows=2)]

    assert [len(c) for c in chunks] == [2, 2, 2, 1]
    exported = [(c.client_id, c.code) for chunk in chunks for c in chunk]
    assert exported == sorted(
        [(CLIENT, f"FIRST-{n}") for n in range(3)]
        + [(OTHER_CLIENT, f"SECOND-{n}") for n in range(4)]
    )


async def test_a_batch_whose_size_is_a_multiple_of_the_chunk_ends_cleanly(database, clock):
    batch = await make_batch(database, now=clock(), codes=6)

    chunks = [c async for c in codes_export.batch_codes(database, batch.id, chunk_rows=3)]

    assert [len(c) for c in chunks] == [3, 3]


# --- promo codes -------------------------------------------------------------------------------


async def _list(client: httpx.AsyncClient, auth: dict[str, str], **params: str) -> list[str]:
    response = await client.get("/v1/promocodes", params={**params, "limit": 1000}, headers=auth)
    assert response.status_code == 200, response.text
    return [p["code"] for p in response.json()["items"]]


async def test_promo_codes_export_with_their_generations_terms(client, auth, database, clock):
    made = await make_promocodes(
        database,
        now=clock(),
        count=3,
        usage_count=2,
        discount_percentage=None,
        discount_amount=Decimal("10.50"),
        expires_in=date(2026, 12, 31),
        products=("SKU2", "SKU1"),
        usage_by="Ann@Example.com",
    )

    rows = rows_of(await client.get("/v1/promocodes.csv", headers=auth))

    assert [r["code"] for r in rows] == await _list(client, auth)
    assert sorted(r["code"] for r in rows) == sorted(made.codes)
    assert rows[0] == {
        "code": rows[0]["code"],
        "generation_id": str(made.generation.id),
        "uses_left": "2",
        "discount_percentage": "",
        "discount_amount": "10.50",
        "expires_in": "2026-12-31",
        "products": "SKU1 SKU2",
        "usage_by": "ann@example.com",
        "created_at": clock().isoformat(),
    }


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "amount"},
        {"kind": "percentage"},
        {"usage_by": "ann@example.com"},
        {"expires_before": "2026-06-01"},
        {"expires_after": "2026-06-01"},
        {"q": "zz"},
    ],
    ids=lambda p: next(iter(p)),
)
async def test_promo_codes_export_as_the_list_route_filters(client, auth, database, clock, params):
    await make_promocodes(database, now=clock(), count=2)
    await make_promocodes(
        database,
        now=clock(),
        count=2,
        discount_percentage=None,
        discount_amount=Decimal(5),
        usage_by="ann@example.com",
        expires_in=date(2026, 5, 1),
    )
    await make_promocodes(database, now=clock(), pattern="ZZ-####", expires_in=date(2027, 1, 1))

    rows = rows_of(await client.get("/v1/promocodes.csv", params=params, headers=auth))

    expected = await _list(client, auth, **params)
    assert expected
    assert [r["code"] for r in rows] == expected


async def test_promo_codes_export_by_generation(client, auth, database, clock):
    await make_promocodes(database, now=clock(), count=2)
    wanted = await make_promocodes(database, now=clock(), count=3)

    params = {"generation_id": str(wanted.generation.id)}
    rows = rows_of(await client.get("/v1/promocodes.csv", params=params, headers=auth))

    assert sorted(r["code"] for r in rows) == sorted(wanted.codes)


async def test_the_promo_code_chunks_follow_the_order_they_were_made(database, clock):
    made = await make_promocodes(database, now=clock(), count=5)
    filters = PromocodeFilter(generation_id=made.generation.id)

    chunks = [c async for c in promocodes_export.promocodes(database, filters, chunk_rows=2)]

    assert [len(c) for c in chunks] == [2, 2, 1]
    ids = [p.id for chunk in chunks for p in chunk]
    assert ids == sorted(ids)
    assert sorted(p.code for chunk in chunks for p in chunk) == sorted(made.codes)


async def test_exporting_promo_codes_needs_a_credential(client):
    assert (await client.get("/v1/promocodes.csv")).status_code == 401


async def test_an_unknown_discount_kind_is_a_422(client, auth):
    response = await client.get("/v1/promocodes.csv", params={"kind": "free"}, headers=auth)

    assert response.status_code == 422


# --- redemptions -------------------------------------------------------------------------------


async def redeem(
    client: httpx.AsyncClient, auth: dict[str, str], code: str, customer: str = "bob@example.com"
) -> int:
    body = {"customer": customer, "products": []}
    response = await client.post(f"/v1/promocodes/{code}/redeem", json=body, headers=auth)
    assert response.status_code == 201, response.text
    redemption_id: int = response.json()["id"]
    return redemption_id


async def test_redemptions_export_each_use_with_its_customer_and_times(
    client, auth, database, clock: FakeClock
):
    [code] = (await make_promocodes(database, now=clock(), usage_count=5)).codes
    first = await redeem(client, auth, code, customer="ann@example.com")
    clock.advance(hours=1)
    second = await redeem(client, auth, code)
    clock.advance(hours=1)
    await client.post(f"/v1/redemptions/{first}/rollback", headers=auth)

    rows = rows_of(await client.get("/v1/redemptions.csv", headers=auth))

    start = clock() - timedelta(hours=2)
    assert rows == [
        {
            "id": str(first),
            "code": code,
            "customer": "ann@example.com",
            "idempotency_key": "",
            "redeemed_at": start.isoformat(),
            "rolled_back_at": clock().isoformat(),
        },
        {
            "id": str(second),
            "code": code,
            "customer": "bob@example.com",
            "idempotency_key": "",
            "redeemed_at": (start + timedelta(hours=1)).isoformat(),
            "rolled_back_at": "",
        },
    ]


async def test_redemptions_export_of_the_filtered_codes_only(client, auth, database, clock):
    [percent] = (await make_promocodes(database, now=clock())).codes
    [amount] = (
        await make_promocodes(
            database, now=clock(), discount_percentage=None, discount_amount=Decimal(5)
        )
    ).codes
    await redeem(client, auth, percent)
    await redeem(client, auth, amount)

    params = {"kind": "amount"}
    rows = rows_of(await client.get("/v1/redemptions.csv", params=params, headers=auth))

    assert [r["code"] for r in rows] == [amount]


async def test_redemptions_export_within_since_and_until(client, auth, database, clock: FakeClock):
    [code] = (await make_promocodes(database, now=clock(), usage_count=5)).codes
    ids = []
    for _ in range(3):
        ids.append(await redeem(client, auth, code))
        clock.advance(days=1)
    since = (clock() - timedelta(days=2)).isoformat()  # the second redemption's time
    until = (clock() - timedelta(days=1)).isoformat()  # the third's: excluded

    params = {"since": since, "until": until}
    rows = rows_of(await client.get("/v1/redemptions.csv", params=params, headers=auth))

    assert [r["id"] for r in rows] == [str(ids[1])]


async def test_a_since_without_a_timezone_is_a_422(client, auth):
    response = await client.get(
        "/v1/redemptions.csv", params={"since": "2026-03-01T12:00:00"}, headers=auth
    )

    assert response.status_code == 422


async def test_the_redemption_chunks_hold_every_redemption_once(client, auth, database, clock):
    [code] = (await make_promocodes(database, now=clock(), usage_count=5)).codes
    made = [await redeem(client, auth, code) for _ in range(5)]

    chunks = [
        c async for c in promocodes_export.redemptions(database, PromocodeFilter(), chunk_rows=2)
    ]

    assert [r.id for chunk in chunks for r in chunk] == made


async def test_exporting_redemptions_needs_a_credential(client):
    assert (await client.get("/v1/redemptions.csv")).status_code == 401


def test_times_are_exported_in_iso_8601_utc_and_lists_as_words():
    assert iso(datetime(2026, 3, 1, 12, tzinfo=UTC)) == "2026-03-01T12:00:00+00:00"
    assert iso(None) is None
    assert words(("A", "B")) == "A B"
