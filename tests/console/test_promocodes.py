"""Promo codes in the console: generate (preview, capacity check, background job), list with
filters, a code's page (edit, delete, roll a redemption back), exports; audited."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.promocodes import holds, jobs, returns, service
from tests.console.conftest import csrf_token, submit
from tests.factories.promocodes import make_promocode, make_promocodes

GENERATE = {
    "pattern": "SPRING-####",
    "charset": "",
    "prefix": "",
    "postfix": "",
    "count": "25",
    "discount_percentage": "15",
    "discount_amount": "",
    "usage_count": "2",
    "expires_in": "2026-08-31",
    "products": "SKU-1, SKU-2",
    "usage_by": "",
    "action": "generate",
}


def _errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html))


async def _count(database) -> int:
    async with database.begin() as conn:
        return len(await service.list_promocodes(conn, limit=10_000))


async def _actions(database, action):
    async with database.begin() as conn:
        page = await audit.list_entries(conn, query=AuditQuery(action=action), limit=10)
    return page.items


# --- generating --------------------------------------------------------------------------


async def test_generating_runs_in_the_background_and_its_page_shows_the_outcome(
    as_sales, state, database
):
    response = await submit(as_sales, "/admin/promocodes/new", "/admin/promocodes/new", GENERATE)

    assert response.status_code == 303
    job_path = response.headers["location"]
    job_id = int(job_path.rsplit("/", 1)[1])
    await state.generations.wait(job_id)
    page = await as_sales.get(job_path)
    assert "25 promo codes generated." in page.text
    assert page.text.count('href="/admin/promocodes/codes/SPRING-') == 10
    progress = (await as_sales.get(f"{job_path}/progress")).json()
    assert progress == {"status": "done", "done": 25, "count": 25, "percent": 100}
    async with database.begin() as conn:
        codes = await service.list_promocodes(conn)
    assert len(codes) == 25
    assert codes[0].products == ("SKU-1", "SKU-2")
    assert codes[0].usage_count == 2
    [entry] = await _actions(database, "promocode_generation.create")
    assert entry.actor_name == "sam"


async def test_a_running_job_page_refreshes_itself_without_javascript(as_admin, database, clock):
    async with database.begin() as conn:
        job_id = await jobs.create_job(
            conn, summary="10 codes X#", count=10, created_by="user:1 (ada)", now=clock()
        )

    page = await as_admin.get(f"/admin/promocodes/jobs/{job_id}")

    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page.text
    assert '<progress id="job-progress" max="10" value="0">' in page.text


@pytest.mark.parametrize(
    ("changed", "field", "message"),
    [
        ({"pattern": ""}, "pattern", "Required."),
        ({"pattern": "#" * 65}, "pattern", "At most 64 characters."),
        ({"count": "many"}, "count", "A whole number."),
        ({"count": "0"}, "count", "At least 1."),
        ({"pattern": "AB#", "count": "20"}, "count", "makes 31 different codes"),
        ({"pattern": "FIXED", "count": "2"}, "count", "makes one code only"),
        ({"pattern": "A B#"}, "pattern", "letters, digits"),
        ({"charset": "AAB"}, "charset", "must not repeat"),
        ({"discount_percentage": ""}, "discount_percentage", "Set discount_percentage"),
        ({"discount_percentage": "ten"}, "discount_percentage", "A number"),
        ({"discount_percentage": "150"}, "discount_percentage", "at most 100"),
        ({"usage_count": ""}, "usage_count", "Required."),
        ({"expires_in": "2020-01-01"}, "expires_in", "is in the past"),
        ({"expires_in": "someday"}, "expires_in", "date"),
        ({"usage_by": "not an address"}, "usage_by", "An e-mail address."),
        ({"products": "x" * 256}, "products", "255"),
    ],
)
async def test_bad_input_comes_back_with_the_error_by_its_field_and_nothing_made(
    as_admin, database, changed, field, message
):
    response = await submit(
        as_admin, "/admin/promocodes/new", "/admin/promocodes/new", {**GENERATE, **changed}
    )

    assert response.status_code == 422
    errors = _errors(response.text)
    assert field in errors, errors
    assert message.lower() in errors[field].lower()
    assert f'name="{field}"' in response.text
    assert await _count(database) == 0


async def test_the_preview_button_shows_sample_codes_without_making_any(as_admin, database):
    response = await submit(
        as_admin,
        "/admin/promocodes/new",
        "/admin/promocodes/new",
        {**GENERATE, "action": "preview"},
    )

    assert response.status_code == 200
    samples = re.findall(r"<li><code>(SPRING-[^<]+)</code></li>", response.text)
    assert len(samples) == 5
    assert all(re.fullmatch(r"SPRING-[2-9A-HJ-KM-NP-Z]{4}", s) for s in samples)
    assert 'value="SPRING-####"' in response.text
    assert await _count(database) == 0


async def test_the_live_preview_answers_samples_and_the_capacity(as_sales):
    answer = (
        await as_sales.get(
            "/admin/promocodes/preview",
            params={"pattern": "##", "charset": "AB", "prefix": "X-", "count": "1"},
        )
    ).json()

    assert answer["capacity"] == 4
    assert answer["most"] == 1
    assert answer["errors"] == {}
    assert all(re.fullmatch(r"X-[AB]{2}", s) for s in answer["samples"])


async def test_the_live_preview_says_when_the_count_is_more_than_the_pattern_makes(as_sales):
    answer = (
        await as_sales.get(
            "/admin/promocodes/preview", params={"pattern": "##", "charset": "AB", "count": "2"}
        )
    ).json()

    assert "makes 4 different codes" in answer["errors"]["count"]


# --- the list ----------------------------------------------------------------------------


async def test_the_list_filters_by_prefix_bound_user_product_and_state(as_sales, database, clock):
    await make_promocode(database, now=clock(), pattern="ANA-1", usage_by="ana@example.com")
    await make_promocode(database, now=clock(), pattern="SHOE-1", products=("SKU-9",))
    await make_promocode(
        database, now=clock() - timedelta(days=2), pattern="OLD-1", expires_in=date(2026, 2, 28)
    )

    async def listed(**params):
        page = await as_sales.get("/admin/promocodes", params=params)
        assert page.status_code == 200
        return re.findall(r'href="/admin/promocodes/codes/([^"]+)"', page.text)

    assert await listed() == ["ANA-1", "OLD-1", "SHOE-1"]
    assert await listed(prefix="SH") == ["SHOE-1"]
    assert await listed(usage_by="ana@example.com") == ["ANA-1"]
    assert await listed(product="SKU-9") == ["SHOE-1"]
    assert await listed(expired="true") == ["OLD-1"]
    assert await listed(used_up="true") == []


async def test_the_list_is_paged_by_key(as_sales, database, clock):
    made = await make_promocodes(database, now=clock(), pattern="P###", count=60)

    first = await as_sales.get("/admin/promocodes")
    following = re.search(r'href="(/admin/promocodes\?after=[^"]+)" rel="next"', first.text)
    assert following is not None
    second = await as_sales.get(following.group(1).replace("&amp;", "&"))

    shown = re.findall(r'href="/admin/promocodes/codes/([^"]+)"', first.text + second.text)
    assert shown == sorted(made.codes)


async def test_a_bad_filter_comes_back_with_its_error(as_sales):
    page = await as_sales.get(
        "/admin/promocodes", params={"prefix": "no spaces", "usage_by": "nobody"}
    )

    assert page.status_code == 422
    assert _errors(page.text) == {
        "prefix": "Letters, digits and . _ ~ - only.",
        "usage_by": "An e-mail address.",
    }


async def test_the_filtered_list_exports_as_csv(as_sales, database, clock):
    await make_promocode(database, now=clock(), pattern="KEEP-1")
    await make_promocode(database, now=clock(), pattern="DROP-1")

    response = await as_sales.get("/admin/promocodes.csv", params={"prefix": "KEEP"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["code"] for row in rows] == ["KEEP-1"]
    assert rows[0]["uses_left"] == "3"


# --- one code ----------------------------------------------------------------------------


async def _redeemed(database, clock, code, times=1):
    async with database.begin() as conn:
        return [
            await service.redeem(
                conn, code=code, customer=f"c{n}@example.com", skus=[], now=clock()
            )
            for n in range(times)
        ]


async def test_a_codes_page_shows_its_terms_and_redemptions(as_sales, database, clock):
    code = await make_promocode(database, now=clock(), pattern="SEE-1", usage_by="a@example.com")
    async with database.begin() as conn:
        await service.redeem(conn, code=code, customer="a@example.com", skus=[], now=clock())

    page = await as_sales.get(f"/admin/promocodes/codes/{code}")

    assert page.status_code == 200
    assert "a@example.com" in page.text
    assert "20.00% off" in page.text
    assert "Roll back" in page.text


async def test_a_codes_page_shows_its_holds_by_status_as_they_stand(as_sales, database, clock):
    code = await make_promocode(database, now=clock(), pattern="HOLD-1", usage_count=3)
    async with database.begin() as conn:
        for order, ttl in (("order-live", 600), ("order-lapsed", 60)):
            await holds.hold(
                conn,
                code=code,
                customer="h@example.com",
                order=order,
                skus=["SKU-1"],
                ttl=timedelta(seconds=ttl),
                now=clock(),
            )
    clock.advance(seconds=120)

    page = await as_sales.get(f"/admin/promocodes/codes/{code}")

    rows = dict(
        re.findall(r'data-label="Status">(.*?)</td>\s*<td data-label="Order">([^<]*)', page.text)
    )
    assert {order: re.sub("<[^>]+>", "", status) for status, order in rows.items()} == {
        "order-live": "Held",
        "order-lapsed": "Expired",
    }


async def test_a_codes_page_shows_each_redemptions_returns_and_how_it_ended(
    as_sales, database, clock
):
    code = await make_promocode(database, now=clock(), pattern="RET-1", reusable_after_cancel=False)
    async with database.begin() as conn:
        done = await service.redeem(
            conn, code=code, customer="r@example.com", skus=["SKU-1", "SKU-2"], now=clock()
        )
        await returns.return_products(conn, redemption_id=done.id, skus=["SKU-1"], now=clock())
        await returns.return_products(conn, redemption_id=done.id, skus=["SKU-2"], now=clock())

    page = await as_sales.get(f"/admin/promocodes/codes/{code}")

    assert "every product returned, use kept used (the code&#39;s policy)" in page.text
    returned = re.search(r'data-label="Returned">(.*?)</td>', page.text, re.DOTALL)
    assert returned is not None
    assert re.findall(r"<div>(SKU-\d)", returned.group(1)) == ["SKU-1", "SKU-2"]
    assert "Roll back" not in page.text


async def test_a_missing_code_is_a_404_page(as_sales):
    page = await as_sales.get("/admin/promocodes/codes/NOPE")

    assert page.status_code == 404
    assert "does not exist" in page.text


async def test_rolling_a_redemption_back_gives_the_use_back_and_is_audited(
    as_sales, database, clock
):
    code = await make_promocode(database, now=clock(), pattern="ROLL-1")
    [done] = await _redeemed(database, clock, code)

    response = await submit(
        as_sales,
        f"/admin/promocodes/codes/{code}",
        f"/admin/promocodes/redemptions/{done.id}/rollback",
    )

    assert response.status_code == 303
    page = await as_sales.get(response.headers["location"])
    assert f"Redemption {done.id} rolled back: ROLL-1 has 3 uses left." in page.text
    assert "Roll back" not in page.text
    [entry] = await _actions(database, "promocode_redemption.rollback")
    assert entry.actor_name == "sam"


async def test_rolling_back_a_redemption_of_a_code_that_keeps_cancelled_uses_says_so(
    as_sales, database, clock
):
    code = await make_promocode(
        database, now=clock(), pattern="ROLL-2", reusable_after_cancel=False
    )
    [done] = await _redeemed(database, clock, code)

    response = await submit(
        as_sales,
        f"/admin/promocodes/codes/{code}",
        f"/admin/promocodes/redemptions/{done.id}/rollback",
    )

    page = await as_sales.get(response.headers["location"])
    assert (
        f"Redemption {done.id} rolled back: its use stays used (the code&#39;s policy); "
        "ROLL-2 has 2 uses left."
    ) in page.text


async def test_rolling_back_twice_is_refused(as_sales, database, clock):
    code = await make_promocode(database, now=clock(), pattern="ROLL-2")
    [done] = await _redeemed(database, clock, code)
    action = f"/admin/promocodes/redemptions/{done.id}/rollback"
    await submit(as_sales, f"/admin/promocodes/codes/{code}", action)

    response = await submit(as_sales, f"/admin/promocodes/codes/{code}", action)

    assert response.status_code == 409
    async with database.begin() as conn:
        assert (await service.get_promocode(conn, code)).usage_count == 3


async def test_editing_sets_the_uses_left_and_is_audited(as_sales, database, clock):
    code = await make_promocode(database, now=clock(), pattern="EDIT-1")

    response = await submit(
        as_sales,
        f"/admin/promocodes/codes/{code}",
        f"/admin/promocodes/codes/{code}/edit",
        {"usage_count": "0"},
    )

    assert response.status_code == 303
    async with database.begin() as conn:
        assert (await service.get_promocode(conn, code)).usage_count == 0
    [entry] = await _actions(database, "promocode.update")
    assert entry.actor_name == "sam"


@pytest.mark.parametrize(
    ("value", "message"), [("", "Required."), ("lots", "A whole number."), ("-1", "At least 0.")]
)
async def test_editing_with_bad_uses_comes_back_with_the_error(
    as_sales, database, clock, value, message
):
    code = await make_promocode(database, now=clock(), pattern="EDIT-2")

    response = await submit(
        as_sales,
        f"/admin/promocodes/codes/{code}",
        f"/admin/promocodes/codes/{code}/edit",
        {"usage_count": value},
    )

    assert response.status_code == 422
    assert _errors(response.text) == {"usage_count": message}
    async with database.begin() as conn:
        assert (await service.get_promocode(conn, code)).usage_count == 3


async def test_deleting_a_code_removes_it_and_is_audited(as_sales, database, clock):
    code = await make_promocode(database, now=clock(), pattern="GONE-1")

    response = await submit(
        as_sales, f"/admin/promocodes/codes/{code}", f"/admin/promocodes/codes/{code}/delete"
    )

    assert response.status_code == 303
    assert await _count(database) == 0
    [entry] = await _actions(database, "promocode.delete")
    assert entry.actor_name == "sam"


async def test_a_codes_redemptions_export_as_csv(as_sales, database, clock):
    code = await make_promocode(database, now=clock(), pattern="CSV-1")
    other = await make_promocode(database, now=clock(), pattern="CSV-2")
    await _redeemed(database, clock, code, times=2)
    await _redeemed(database, clock, other)

    response = await as_sales.get(f"/admin/promocodes/codes/{code}/redemptions.csv")

    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["code"], r["customer"]) for r in rows] == [
        ("CSV-1", "c0@example.com"),
        ("CSV-1", "c1@example.com"),
    ]


async def test_a_post_without_the_token_changes_nothing(as_sales, database, clock):
    code = await make_promocode(database, now=clock(), pattern="SAFE-1")

    response = await as_sales.post(f"/admin/promocodes/codes/{code}/delete")

    assert response.status_code == 403
    assert await _count(database) == 1
    token = csrf_token((await as_sales.get("/admin/promocodes")).text)
    assert token
