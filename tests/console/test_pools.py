"""Code pools in the console: batches with their counters, a new batch, codes uploaded or
typed in (all or nothing), expiry, issues per day, a customer's codes, the export; through the
API's services, audited as the signed-in person."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html import unescape
from uuid import UUID

import httpx
import pytest

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.codes import counts, holds, service
from promos.codes.service import IssueRequest, Rules
from promos.console.paging import PAGE_SIZE
from promos.db import Database
from promos.settings import Settings
from promos.state import AppState
from tests.console.conftest import csrf_token, submit
from tests.factories.codes import CLIENT, make_batch

NEW = "/admin/pools/new"


async def _entries(database: Database, action: str) -> list[audit.AuditEntry]:
    async with database.begin() as conn:
        page = await audit.list_entries(conn, query=AuditQuery(action=action), limit=10)
    return page.items


def _errors(html: str) -> dict[str, str]:
    found = re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html)
    return {name: unescape(text) for name, text in found}


def _count(html: str, name: str) -> str:
    found = re.search(rf'<dd id="count-{name}">([^<]*)</dd>', html)
    assert found is not None, html
    return found.group(1)


async def _batch_count(database: Database) -> int:
    async with database.begin() as conn:
        return len(await service.list_batches(conn))


async def _upload(
    client: httpx.AsyncClient, batch_id: UUID, content: bytes, *, filename: str = "codes.csv"
) -> httpx.Response:
    page = await client.get(f"/admin/pools/{batch_id}/upload")
    assert page.status_code == 200, page.text
    return await client.post(
        f"/admin/pools/{batch_id}/upload",
        data={"csrf_token": csrf_token(page.text)},
        files={"file": (filename, content, "text/csv")},
    )


# --- the listing ---------------------------------------------------------------------------------


async def test_the_listing_shows_each_batch_with_its_counters(as_sales, state, database, clock):
    batch = await make_batch(database, now=clock(), codes=12, name="Spring sale")
    await state.issuer.issue(IssueRequest(batch.id, CLIENT, "customer-1"))

    page = await as_sales.get("/admin/pools")

    assert page.status_code == 200
    assert "Spring sale" in page.text
    assert re.search(r'data-label="Total" class="number">12<', page.text)
    assert re.search(r'data-label="Issued" class="number">1<', page.text)
    assert re.search(r'data-label="Left" class="number">11<', page.text)


async def test_the_listing_pages_by_key_to_the_last_batch(as_sales, database, clock):
    for n in range(PAGE_SIZE + 1):
        await make_batch(database, now=clock(), codes=0, name=f"Batch {n:03}")
        clock.advance(seconds=1)

    first = await as_sales.get("/admin/pools")
    following = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert following is not None
    last = await as_sales.get(following.group(1).replace("&amp;", "&"))

    assert "Batch 049" in first.text
    assert "Batch 050" not in first.text
    assert "Batch 050" in last.text
    assert "Batch 049" not in last.text
    assert 'rel="next"' not in last.text


# --- a new batch ---------------------------------------------------------------------------------


async def test_a_new_batch_is_created_and_audited_as_the_person(as_sales, sales, database):
    response = await submit(
        as_sales,
        NEW,
        NEW,
        {
            "name": "Summer sale",
            "client_id": str(CLIENT),
            "max_per_customer": "2",
            "time_limit_days": "30",
        },
    )

    assert response.status_code == 303
    batch_id = UUID(response.headers["location"].rsplit("/", 1)[1])
    async with database.begin() as conn:
        batch = await service.get_batch(conn, batch_id)
    assert (batch.name, batch.client_id, batch.rules) == ("Summer sale", CLIENT, Rules(2, 30))
    page = await as_sales.get(response.headers["location"])
    assert "Batch Summer sale created" in page.text
    [entry] = await _entries(database, "batch.create")
    assert (entry.actor_kind, entry.actor_id) == ("user", sales.id)
    assert entry.target_id == str(batch_id)


async def test_a_new_batch_without_rules_has_none(as_sales, database):
    response = await submit(as_sales, NEW, NEW, {"name": "Open", "client_id": str(CLIENT)})

    assert response.status_code == 303
    [batch] = [b for b in await _all_batches(database) if b.name == "Open"]
    assert batch.rules == Rules()


async def _all_batches(database: Database) -> list[service.Batch]:
    async with database.begin() as conn:
        return await service.list_batches(conn)


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({}, {"name": "Required.", "client_id": "Required."}),
        ({"name": "x" * 256, "client_id": str(CLIENT)}, {"name": "At most 255 characters."}),
        ({"name": "Sale", "client_id": "client-7"}, {"client_id": "A UUID"}),
        (
            {"name": "Sale", "client_id": str(CLIENT), "max_per_customer": "two"},
            {"max_per_customer": "A whole number."},
        ),
        (
            {"name": "Sale", "client_id": str(CLIENT), "max_per_customer": "0"},
            {"max_per_customer": "At least 1."},
        ),
        (
            {"name": "Sale", "client_id": str(CLIENT), "time_limit_days": "30"},
            {"time_limit_days": "Needs a limit per customer"},
        ),
    ],
    ids=["empty", "too long", "not a uuid", "not a number", "zero", "window without limit"],
)
async def test_a_bad_new_batch_comes_back_with_the_error_by_its_field(
    as_sales, database, fields, errors
):
    response = await submit(as_sales, NEW, NEW, fields)

    assert response.status_code == 422
    found = _errors(response.text)
    assert set(found) == set(errors)
    for name, start in errors.items():
        assert found[name].startswith(start), found
    for value in fields.values():
        if len(value) < 100:
            assert f'value="{value}"' in response.text  # what was typed is kept
    assert await _batch_count(database) == 0


# --- uploads -------------------------------------------------------------------------------------


async def test_an_upload_adds_every_code_and_the_counts_show_them(as_sales, sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await _upload(as_sales, batch.id, b"code\nNEW-1\nNEW-2\nNEW-3\n")

    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/pools/{batch.id}?added=3"
    page = await as_sales.get(response.headers["location"])
    assert "3 codes added." in page.text
    assert (_count(page.text, "total"), _count(page.text, "left")) == ("5", "5")
    [entry] = await _entries(database, "batch.codes_add")
    assert (entry.actor_id, entry.after) == (sales.id, {"added": 3})


async def test_a_file_with_a_bad_row_adds_nothing_and_names_the_row(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=2)

    response = await _upload(as_sales, batch.id, b'code\nGOOD-1\n"bad"x"\nGOOD-2\n')

    assert response.status_code == 422
    error = _errors(response.text)["file"]
    assert error.startswith("Nothing was added. Row 3:"), error
    async with database.begin() as conn:
        assert (await counts.counts(conn, batch.id, now=clock())).total == 2
        assert (await service.batch_stats(conn, batch.id)).total == 2
    assert await _entries(database, "batch.codes_add") == []


async def test_a_file_repeating_a_code_of_the_batch_adds_nothing(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=2, prefix="OLD")

    response = await _upload(as_sales, batch.id, b"code\nNEW-1\nOLD-1\n")

    assert response.status_code == 422
    assert "Row 3: code 'OLD-1' already exists" in _errors(response.text)["file"]
    async with database.begin() as conn:
        assert (await service.batch_stats(conn, batch.id)).total == 2


async def test_a_file_that_is_not_text_is_refused_by_the_field(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=0)

    response = await _upload(as_sales, batch.id, b"\x89PNG\r\n\x1a\n\xff\xfe", filename="a.png")

    assert response.status_code == 422
    assert "not UTF-8 text" in _errors(response.text)["file"]


async def test_an_upload_without_a_file_asks_for_one(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=0)
    page = await as_sales.get(f"/admin/pools/{batch.id}/upload")

    response = await as_sales.post(
        f"/admin/pools/{batch.id}/upload",
        data={"csrf_token": csrf_token(page.text)},
        files={"file": ("", b"", "application/octet-stream")},
    )

    assert response.status_code == 422
    assert _errors(response.text) == {"file": "Choose a CSV file."}


@pytest.fixture
def settings(database_url: str) -> Settings:
    # A body limit below the file below, an upload limit above it.
    return Settings(database_url=database_url, max_body_bytes=1024, max_upload_bytes=64 * 1024)


async def test_an_upload_may_be_as_large_as_the_apis_uploads(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=0)
    content = b"code\n" + b"".join(f"LARGE-{n:06}\n".encode() for n in range(2000))
    assert 1024 < len(content) < 64 * 1024

    response = await _upload(as_sales, batch.id, content)

    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("?added=2000")


async def test_an_upload_larger_than_the_upload_limit_is_refused(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=0)

    response = await _upload(as_sales, batch.id, b"code\n" + b"X" * 70_000 + b"\n")

    assert response.status_code == 413
    async with database.begin() as conn:
        assert (await service.batch_stats(conn, batch.id)).total == 0


async def test_an_upload_without_a_session_is_sent_to_sign_in_unread(app, database, clock):
    batch = await make_batch(database, now=clock(), codes=0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://promos.test") as anonymous:
        response = await anonymous.post(
            f"/admin/pools/{batch.id}/upload", files={"file": ("c.csv", b"code\nA\n", "text/csv")}
        )

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/sign-in")


# --- codes typed in ------------------------------------------------------------------------------


async def test_codes_typed_in_are_added(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)
    page = f"/admin/pools/{batch.id}/codes"

    response = await submit(as_sales, page, page, {"codes": "TYPED-1\r\nTYPED-2\r\n\r\n"})

    assert response.status_code == 303
    assert response.headers["location"].endswith("?added=2")
    async with database.begin() as conn:
        assert (await service.batch_stats(conn, batch.id)).total == 3


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("", "Required."),
        ("GOOD-1\n" + "X" * 256, "Nothing was added. Line 2: the code is longer than 255"),
        ("GOOD-1\nGOOD-1", "Nothing was added. Line 2: code 'GOOD-1' appears twice"),
    ],
    ids=["empty", "too long", "twice"],
)
async def test_bad_codes_typed_in_come_back_by_the_field(as_sales, database, clock, typed, error):
    batch = await make_batch(database, now=clock(), codes=1)
    page = f"/admin/pools/{batch.id}/codes"

    response = await submit(as_sales, page, page, {"codes": typed})

    assert response.status_code == 422
    assert _errors(response.text)["codes"].startswith(error)
    async with database.begin() as conn:
        assert (await service.batch_stats(conn, batch.id)).total == 1


# --- a batch -------------------------------------------------------------------------------------


async def test_a_batch_page_shows_its_counters_and_issues_per_day(
    as_sales, state: AppState, database, clock
):
    batch = await make_batch(database, now=clock(), codes=10, rules=Rules(3, 7))
    signed_in_at = clock()
    clock.advance(days=-1)  # the day before (the session would end if the clock went on)
    await state.issuer.issue(IssueRequest(batch.id, CLIENT, "a"))
    clock.now = signed_in_at
    await state.issuer.issue(IssueRequest(batch.id, CLIENT, "b"))
    await state.issuer.issue(IssueRequest(batch.id, CLIENT, "c"))

    page = await as_sales.get(f"/admin/pools/{batch.id}")

    assert page.status_code == 200
    assert [_count(page.text, n) for n in ("total", "issued", "left")] == ["10", "3", "7"]
    assert "3 per customer in 7 days" in page.text
    assert "<title>2026-02-28: 1</title>" in page.text
    assert "<title>2026-03-01: 2</title>" in page.text
    assert len(re.findall(r'<rect class="bar', page.text)) == 30


@pytest.mark.parametrize("batch_id", ["not-a-uuid", "7d3c52a4-3a1d-4c89-9a55-0c7a0a0d2b11"])
async def test_a_batch_that_does_not_exist_is_a_404_page(as_sales, batch_id):
    response = await as_sales.get(f"/admin/pools/{batch_id}")

    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]


async def test_expiring_a_batch_stops_it_and_is_audited(as_sales, sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)
    page = f"/admin/pools/{batch.id}"

    response = await submit(as_sales, page, f"{page}/expire")

    assert response.status_code == 303
    shown = await as_sales.get(page)
    assert "Expired" in shown.text
    assert "expired." in shown.text
    async with database.begin() as conn:
        assert (await service.get_batch(conn, batch.id)).expired
    [entry] = await _entries(database, "batch.expire")
    assert entry.actor_id == sales.id


async def test_setting_a_batch_s_ended_hold_codes_is_audited(as_sales, sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)
    page = f"/admin/pools/{batch.id}"

    response = await submit(as_sales, page, f"{page}/hold-settings", {"released_codes": "return"})

    assert response.status_code == 303
    shown = await as_sales.get(page)
    assert '<option value="return" selected>' in shown.text
    async with database.begin() as conn:
        assert await holds.returns_released_codes(conn, batch.id)
    [entry] = await _entries(database, "batch.hold_settings")
    assert entry.actor_id == sales.id


async def test_a_bad_ended_hold_codes_setting_changes_nothing(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=1)
    page = f"/admin/pools/{batch.id}"

    response = await submit(as_sales, page, f"{page}/hold-settings", {"released_codes": "keep"})

    assert response.status_code == 303
    assert "Choose burnt or returned." in (await as_sales.get(page)).text
    assert await _entries(database, "batch.hold_settings") == []


async def test_a_batch_page_lists_its_live_holds(as_sales, database, clock):
    batch = await make_batch(database, now=clock(), codes=3, prefix="LIVE")
    async with database.begin() as conn:
        for order, ttl in (("order-late", 600), ("order-soon", 60)):
            await holds.hold_code(
                conn,
                batch_id=batch.id,
                client_id=CLIENT,
                customer_id=f"buyer-{order}",
                order=order,
                ttl=timedelta(seconds=ttl),
                now=clock(),
            )

    shown = await as_sales.get(f"/admin/pools/{batch.id}")

    table = shown.text[shown.text.index('id="live-holds"') :]
    assert table.index("order-soon") < table.index("order-late")
    assert "LIVE-1" in table


async def test_the_export_streams_every_code_as_csv(as_sales, state, database, clock):
    batch = await make_batch(database, now=clock(), codes=3, prefix="EXP")
    await state.issuer.issue(IssueRequest(batch.id, CLIENT, "customer-9"))

    response = await as_sales.get(f"/admin/pools/{batch.id}/codes.csv")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["code"] for r in rows] == ["EXP-0", "EXP-1", "EXP-2"]
    assert rows[0] == {
        "code": "EXP-0",
        "client_id": str(CLIENT),
        "customer_id": "customer-9",
        "issued_at": "2026-03-01T12:00:00+00:00",
    }
    assert rows[1]["customer_id"] == rows[1]["issued_at"] == ""


# --- a customer's codes --------------------------------------------------------------------------


async def test_a_customers_codes_are_looked_up(as_sales, state, database, clock):
    batch = await make_batch(database, now=clock(), codes=3, prefix="CUS")
    await state.issuer.issue(IssueRequest(batch.id, CLIENT, "customer-5"))

    page = await as_sales.get("/admin/pools/customer", params={"customer_id": "customer-5"})

    assert page.status_code == 200
    assert "<code>CUS-0</code>" in page.text
    assert str(batch.id) in page.text


async def test_a_customer_without_codes_is_said_so(as_sales):
    page = await as_sales.get("/admin/pools/customer", params={"customer_id": "nobody"})

    assert page.status_code == 200
    assert "No codes were issued to nobody." in page.text


@pytest.mark.parametrize(
    ("value", "error"),
    [("", "Required."), ("x" * 256, "At most 255 characters."), ("a b", "No spaces")],
    ids=["empty", "too long", "a space"],
)
async def test_a_bad_customer_id_comes_back_by_its_field(as_sales, value, error):
    page = await as_sales.get("/admin/pools/customer", params={"customer_id": value})

    assert page.status_code == 422
    assert _errors(page.text)["customer_id"].startswith(error)
