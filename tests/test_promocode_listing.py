"""The console's reads of promo codes (promos.promocodes.listing), the uses-left edit and the
background generations (promos.promocodes.jobs), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.auth.service import Principal
from promos.promocodes import changes, jobs, listing, service
from promos.promocodes.errors import InvalidPattern, InvalidPromocode, PromocodeNotFound
from promos.promocodes.listing import CodeQuery
from promos.promocodes.service import GenerationSpec
from tests.factories.promocodes import make_promocode, make_promocodes

ACTOR = Principal(kind="user", id=1, name="ada", role="admin")
TODAY = date(2026, 3, 1)


ALL = CodeQuery()


async def _codes(database, query=ALL, *, limit=100, after_key=None):
    async with database.begin() as conn:
        page = await listing.codes_page(
            conn, query=query, today=TODAY, limit=limit, after_key=after_key
        )
    return [p.code for p in page.items], page.next_key


async def test_codes_are_listed_in_code_order(database, clock):
    for code in ("b-2", "A-1", "a-3", "B-0"):
        await make_promocode(database, now=clock(), pattern=code)

    assert (await _codes(database))[0] == ["A-1", "B-0", "a-3", "b-2"]


async def test_a_page_ends_at_its_limit_and_the_next_starts_after_its_last_code(database, clock):
    await make_promocodes(database, now=clock(), pattern="P####", count=7)

    first, key = await _codes(database, limit=5)
    rest, end = await _codes(database, limit=5, after_key=key)

    assert len(first) == 5
    assert key == (first[-1],)
    assert len(rest) == 2
    assert end is None
    assert sorted(first + rest) == first + rest


async def test_a_prefix_finds_the_codes_that_start_with_it_only(database, clock):
    for code in ("SUMMER-1", "SUMMER-2", "SUMMERX", "SUMMEQ", "WINTER-1", "summer-3"):
        await make_promocode(database, now=clock(), pattern=code)

    assert (await _codes(database, CodeQuery(prefix="SUMMER-")))[0] == ["SUMMER-1", "SUMMER-2"]


async def test_a_prefix_ending_in_the_highest_character_is_still_one_range(database, clock):
    for code in ("A~1", "A~~", "B"):
        await make_promocode(database, now=clock(), pattern=code)

    assert (await _codes(database, CodeQuery(prefix="A~")))[0] == ["A~1", "A~~"]


async def test_the_bound_user_filter_finds_that_users_codes(database, clock):
    await make_promocode(database, now=clock(), pattern="ANA", usage_by="ana@example.com")
    await make_promocode(database, now=clock(), pattern="BOB", usage_by="bob@example.com")
    await make_promocode(database, now=clock(), pattern="ALL")

    assert (await _codes(database, CodeQuery(usage_by=" Ana@Example.com ")))[0] == ["ANA"]


async def test_the_product_filter_finds_the_codes_for_that_product(database, clock):
    await make_promocode(database, now=clock(), pattern="SHOES", products=("SKU-1", "SKU-2"))
    await make_promocode(database, now=clock(), pattern="HATS", products=("SKU-3",))
    await make_promocode(database, now=clock(), pattern="ALL")

    assert (await _codes(database, CodeQuery(product="SKU-2")))[0] == ["SHOES"]


async def test_the_expired_filter_finds_codes_whose_last_day_has_passed(database, clock):
    await make_promocode(database, now=clock(), pattern="OLD", expires_in=date(2026, 3, 1))
    await make_promocode(database, now=clock(), pattern="NEW", expires_in=date(2026, 3, 2))
    await make_promocode(database, now=clock(), pattern="EVER")

    async with database.begin() as conn:
        page = await listing.codes_page(
            conn, query=CodeQuery(expired=True), today=date(2026, 3, 2), limit=10
        )

    assert [p.code for p in page.items] == ["OLD"]


async def test_the_used_up_filter_finds_codes_with_no_uses_left(database, clock):
    spent = await make_promocode(database, now=clock(), pattern="SPENT", usage_count=1)
    await make_promocode(database, now=clock(), pattern="FRESH", usage_count=1)
    async with database.begin() as conn:
        await service.redeem(conn, code=spent, customer="c@example.com", skus=[], now=clock())

    assert (await _codes(database, CodeQuery(used_up=True)))[0] == ["SPENT"]


async def test_filters_together_narrow_to_what_meets_them_all(database, clock):
    await make_promocodes(
        database, now=clock(), pattern="ANA-#", count=3, usage_by="ana@example.com"
    )
    await make_promocodes(database, now=clock(), pattern="ANB-#", count=3)

    found, _ = await _codes(database, CodeQuery(prefix="AN", usage_by="ana@example.com"))

    assert len(found) == 3
    assert all(code.startswith("ANA-") for code in found)


async def test_a_codes_redemptions_are_listed_newest_first_by_page(database, clock):
    code = await make_promocode(database, now=clock(), usage_count=5)
    other = await make_promocode(database, now=clock())
    async with database.begin() as conn:
        for n in range(3):
            await service.redeem(
                conn, code=code, customer=f"c{n}@example.com", skus=[], now=clock()
            )
        await service.redeem(conn, code=other, customer="x@example.com", skus=[], now=clock())
        found = await service.get_promocode(conn, code)
        first = await listing.redemptions_of(conn, promocode_id=found.id, limit=2)
        rest = await listing.redemptions_of(
            conn, promocode_id=found.id, limit=2, after_key=first.next_key
        )

    assert [r.customer for r in first.items] == ["c2@example.com", "c1@example.com"]
    assert [r.customer for r in rest.items] == ["c0@example.com"]
    assert rest.next_key is None


async def test_setting_uses_left_changes_that_code_only_and_is_audited(database, clock):
    made = await make_promocodes(database, now=clock(), pattern="U#", count=2, usage_count=3)
    code, other = made.codes
    async with database.begin() as conn:
        done = await changes.set_uses_left(conn, actor=ACTOR, code=code, usage_count=0, now=clock())
        untouched = await service.get_promocode(conn, other)
        entries = await audit.list_entries(
            conn, query=AuditQuery(action="promocode.update"), limit=5
        )

    assert done.usage_count == 0
    assert untouched.usage_count == 3
    [entry] = entries.items
    assert entry.before["usage_count"] == 3
    assert entry.after["usage_count"] == 0


@pytest.mark.parametrize("uses", [-1, 1_000_001])
async def test_uses_left_out_of_range_are_refused(database, clock, uses):
    code = await make_promocode(database, now=clock())

    async with database.begin() as conn:
        with pytest.raises(InvalidPromocode):
            await service.set_uses_left(conn, code, usage_count=uses)


async def test_setting_uses_left_of_a_missing_code_is_not_found(database):
    async with database.begin() as conn:
        with pytest.raises(PromocodeNotFound):
            await service.set_uses_left(conn, "NOPE", usage_count=1)


# --- background generations --------------------------------------------------------------


async def test_a_background_generation_makes_the_codes_and_records_the_outcome(state, database):
    spec = GenerationSpec(
        pattern="JOB-######", count=2500, usage_count=1, discount_percentage=Decimal(10)
    )

    job_id = await state.generations.start(actor=ACTOR, spec=spec)
    await state.generations.wait(job_id)

    async with database.begin() as conn:
        job = await state.generations.job(conn, job_id)
        codes = await listing.codes_page(
            conn, query=CodeQuery(generation_id=job.generation_id), today=TODAY, limit=3000
        )
    assert (job.status, job.done, job.percent) == ("done", 2500, 100)
    assert len(codes.items) == 2500


async def test_an_impossible_generation_is_refused_before_any_job_is_recorded(state, database):
    spec = GenerationSpec(pattern="#", count=100, usage_count=1, discount_percentage=Decimal(10))

    with pytest.raises(InvalidPattern):
        await state.generations.start(actor=ACTOR, spec=spec)

    async with database.begin() as conn:
        with pytest.raises(jobs.GenerationJobNotFound):
            await jobs.get_job(conn, 1)


async def test_a_generation_stopped_with_the_server_writes_no_code_and_says_so(state, database):
    spec = GenerationSpec(
        pattern="STOP-########", count=200_000, usage_count=1, discount_percentage=Decimal(10)
    )

    job_id = await state.generations.start(actor=ACTOR, spec=spec)
    await state.generations.drain()

    async with database.begin() as conn:
        job = await state.generations.job(conn, job_id)
        codes = await listing.codes_page(conn, query=CodeQuery(), today=TODAY, limit=1)
    assert job.status == "failed"
    assert "no code was written" in (job.message or "")
    assert codes.items == []


async def test_a_running_job_nobody_runs_any_more_is_shown_interrupted(state, database, clock):
    async with database.begin() as conn:
        job_id = await jobs.create_job(
            conn, summary="10 codes X#", count=10, created_by="user:1 (ada)", now=clock()
        )
    clock.advance(minutes=3)

    async with database.begin() as conn:
        job = await state.generations.job(conn, job_id)

    assert job.status == "interrupted"
