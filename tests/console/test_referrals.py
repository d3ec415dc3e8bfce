"""Referral programs in the console: list, create, edit, delete (audited, bad input by its
field, nothing written); each program's funnel by day, moved by the API's traffic; a user's
statement and ledger; the e-mail invitations."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.referrals import service
from tests.console.conftest import SALES_PASSWORD, browser, sign_in, submit
from tests.factories.referrals import make_program, make_referral

PROGRAM = {"name": "Friends", "credit_value": "10", "target_value": "100"}


def _errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html))


def _funnel_row(html: str, label: str) -> list[str]:
    """The cells of a row of the funnel's tables (a period, or a day)."""
    found = re.search(
        rf'<th scope="row" data-label="[^"]+">{label}</th>(.*?)</tr>', html, re.DOTALL
    )
    assert found is not None, f"no funnel row {label}"
    return re.findall(r'class="number">([^<]*)</td>', found.group(1))


async def _programs(database):
    async with database.begin() as conn:
        return await service.list_programs(conn)


async def _actions(database, action):
    async with database.begin() as conn:
        return (await audit.list_entries(conn, query=AuditQuery(action=action), limit=5)).items


async def _pay(client, auth, user: str, total: int) -> None:
    response = await client.put(
        f"/v1/referral-users/{user}/payments", json={"total_amount_paid": total}, headers=auth
    )
    assert response.status_code == 200, response.text


async def _refer(client, auth, referrer: str, referred: str, program_id: int) -> None:
    response = await client.post(
        "/v1/referrals",
        json={"referrer": referrer, "referred": referred, "program_id": program_id},
        headers=auth,
    )
    assert response.status_code == 201, response.text


async def test_creating_a_program_opens_its_page_and_is_audited(as_sales, database):
    response = await submit(as_sales, "/admin/referrals/new", "/admin/referrals/new", PROGRAM)

    assert response.status_code == 303
    [program] = await _programs(database)
    assert response.headers["location"] == f"/admin/referrals/programs/{program.id}"
    assert (program.credit_value, program.target_value) == (Decimal(10), Decimal(100))
    page = await as_sales.get(response.headers["location"])
    assert "Program Friends created." in page.text
    [entry] = await _actions(database, "referral_program.create")
    assert entry.actor_name == "sam"


async def test_the_programs_are_listed_with_their_terms(as_sales, database, clock):
    await make_program(database, now=clock(), name="Friends", credit_value=Decimal("7.50"))

    page = await as_sales.get("/admin/referrals")

    assert page.status_code == 200
    assert "Friends" in page.text
    assert "7.50" in page.text


async def test_bad_program_input_is_shown_by_its_field_and_nothing_is_written(as_sales, database):
    bad = {"name": "", "credit_value": "-1", "target_value": "1.234"}

    response = await submit(as_sales, "/admin/referrals/new", "/admin/referrals/new", bad)

    assert response.status_code == 422
    assert _errors(response.text) == {
        "name": "Required.",
        "credit_value": "At least 0.",
        "target_value": "At most two decimal places.",
    }
    assert 'value="1.234"' in response.text
    assert await _programs(database) == []


async def test_a_target_of_zero_is_refused_by_its_field(as_sales, database):
    response = await submit(
        as_sales, "/admin/referrals/new", "/admin/referrals/new", {**PROGRAM, "target_value": "0"}
    )

    assert response.status_code == 422
    assert _errors(response.text) == {"target_value": "More than 0."}
    assert await _programs(database) == []


async def test_editing_a_program_shows_its_terms_and_saves_new_ones_audited(
    as_sales, database, clock
):
    program = await make_program(database, now=clock())
    path = f"/admin/referrals/programs/{program.id}/edit"

    form = await as_sales.get(path)
    assert 'value="100.00"' in form.text
    response = await submit(as_sales, path, path, {**PROGRAM, "target_value": "150"})

    assert response.status_code == 303
    [saved] = await _programs(database)
    assert saved.target_value == Decimal(150)
    [entry] = await _actions(database, "referral_program.update")
    assert (entry.actor_name, entry.before["target_value"]) == ("sam", "100.00")


async def test_a_programs_reward_hold_is_set_by_the_form_and_shown(as_sales, database, clock):
    response = await submit(
        as_sales,
        "/admin/referrals/new",
        "/admin/referrals/new",
        {**PROGRAM, "reward_hold_days": "30"},
    )
    [program] = await _programs(database)
    path = f"/admin/referrals/programs/{program.id}/edit"
    form = await as_sales.get(path)
    saved = await submit(as_sales, path, path, {**PROGRAM, "reward_hold_days": "7"})

    assert response.status_code == 303
    assert program.reward_hold_days == 30
    assert 'value="30"' in form.text
    assert saved.status_code == 303
    [edited] = await _programs(database)
    assert edited.reward_hold_days == 7
    [entry] = await _actions(database, "referral_program.update")
    assert (entry.before["reward_hold_days"], entry.after["reward_hold_days"]) == (30, 7)
    assert "7 days pending, then granted" in (await as_sales.get(saved.headers["location"])).text


async def test_a_reward_hold_out_of_range_is_refused_by_its_field(as_sales, database):
    response = await submit(
        as_sales,
        "/admin/referrals/new",
        "/admin/referrals/new",
        {**PROGRAM, "reward_hold_days": "-1"},
    )

    assert response.status_code == 422
    assert "reward_hold_days" in _errors(response.text)
    assert await _programs(database) == []


async def test_a_statement_shows_pending_rewards_apart(as_sales, client, auth, database, clock):
    program = await make_program(
        database, now=clock(), target_value=Decimal(40), reward_hold_days=10
    )
    await _refer(client, auth, "rob", "pete", program.id)
    await _pay(client, auth, "pete", 40)

    page = await as_sales.get("/admin/referrals/users?user_hash=rob")

    pending = re.search(r'id="pending-credit">([^<]*)', page.text)
    acquired = re.search(r'id="acquired-credit">([^<]*)', page.text)
    assert pending is not None
    assert acquired is not None
    assert (pending.group(1).strip(), acquired.group(1).strip()) == ("40.00", "0.00")
    assert "Pending</span> until" in page.text


async def test_a_bad_edit_changes_nothing(as_sales, database, clock):
    program = await make_program(database, now=clock())
    path = f"/admin/referrals/programs/{program.id}/edit"

    response = await submit(as_sales, path, path, {**PROGRAM, "credit_value": "lots"})

    assert response.status_code == 422
    assert _errors(response.text) == {"credit_value": "An amount, e.g. 10 or 9.99."}
    [kept] = await _programs(database)
    assert kept == program


async def test_a_program_without_referrals_can_be_deleted(as_sales, database, clock):
    program = await make_program(database, now=clock())
    page = f"/admin/referrals/programs/{program.id}"

    response = await submit(as_sales, page, f"{page}/delete")

    assert response.status_code == 303
    assert await _programs(database) == []
    [entry] = await _actions(database, "referral_program.delete")
    assert entry.actor_name == "sam"


async def test_a_program_with_referrals_is_not_deleted(as_sales, database, clock):
    program = await make_program(database, now=clock())
    await make_referral(database, now=clock(), program=program)
    page = f"/admin/referrals/programs/{program.id}"

    response = await submit(as_sales, page, f"{page}/delete")

    assert response.status_code == 409
    assert "has referrals" in response.text
    assert len(await _programs(database)) == 1


async def test_the_funnel_moves_with_sign_ups_payments_and_rewards_through_the_api(
    as_sales, client, auth, database, clock
):
    program = await make_program(database, now=clock())
    await _refer(client, auth, "alice", "bob", program.id)
    await _refer(client, auth, "alice", "carol", program.id)
    await _refer(client, auth, "alice", "dan", program.id)
    await _pay(client, auth, "bob", 40)
    await _pay(client, auth, "carol", 100)

    page = await as_sales.get(f"/admin/referrals/programs/{program.id}")

    assert page.status_code == 200
    # sign-ups, paid anything, reached the target, sign-up credit, rewards
    assert _funnel_row(page.text, "Today") == ["3", "2", "1", "30.00", "100.00"]
    assert _funnel_row(page.text, "2026-03-01") == ["3", "2", "1", "30.00", "100.00"]


async def test_each_step_of_the_funnel_counts_on_the_day_it_happened(
    *, app, sales, client, auth, database, clock
):
    program = await make_program(database, now=clock())
    await _refer(client, auth, "alice", "bob", program.id)
    clock.advance(days=1)
    await _pay(client, auth, "bob", 10)
    clock.advance(days=1)
    await _pay(client, auth, "bob", 100)

    async with browser(app) as person:  # signed in now: a session ends after 30 idle minutes
        await sign_in(person, sales.username, SALES_PASSWORD)
        page = await person.get(f"/admin/referrals/programs/{program.id}")

    assert _funnel_row(page.text, "2026-03-01") == ["1", "0", "0", "10.00", "0.00"]
    assert _funnel_row(page.text, "2026-03-02") == ["0", "1", "0", "0.00", "0.00"]
    assert _funnel_row(page.text, "2026-03-03") == ["0", "0", "1", "0.00", "100.00"]
    assert _funnel_row(page.text, "7 days") == ["1", "1", "1", "10.00", "100.00"]


async def test_a_total_of_zero_is_not_a_payment_in_the_funnel(
    as_sales, client, auth, database, clock
):
    program = await make_program(database, now=clock())
    await _refer(client, auth, "alice", "bob", program.id)
    await _pay(client, auth, "bob", 0)

    page = await as_sales.get(f"/admin/referrals/programs/{program.id}")

    assert _funnel_row(page.text, "Today")[:2] == ["1", "0"]


async def test_a_program_s_funnel_leaves_out_the_other_programs(
    as_sales, client, auth, database, clock
):
    mine = await make_program(database, now=clock(), name="Mine")
    other = await make_program(database, now=clock(), name="Other")
    await _refer(client, auth, "alice", "bob", other.id)
    await _pay(client, auth, "bob", 100)

    page = await as_sales.get(f"/admin/referrals/programs/{mine.id}")

    assert _funnel_row(page.text, "30 days") == ["0", "0", "0", "0.00", "0.00"]


async def test_an_unknown_program_is_a_404_page(as_sales):
    response = await as_sales.get("/admin/referrals/programs/999")

    assert response.status_code == 404


async def test_a_user_s_statement_shows_who_referred_them_and_whom_they_referred(
    as_sales, database, clock
):
    program = await make_program(database, now=clock())
    await make_referral(database, now=clock(), referrer="alice", referred="bob", program=program)
    await make_referral(database, now=clock(), referrer="bob", referred="carol", program=program)

    page = await as_sales.get("/admin/referrals/users", params={"user_hash": "bob"})

    assert page.status_code == 200
    statement = page.text.split('id="statement"', 1)[1]
    assert re.search(r"Referred by</dt>\s*<dd><a href=\"[^\"]+alice\">alice</a>", statement)
    referred = page.text.split('id="referred"', 1)[1]
    assert ">carol</a>" in referred
    assert "0.00 of 100.00" in referred
    assert "10.00" in statement  # bob's own sign-up credit
    assert "/admin/referrals/credits?user_hash=bob" in page.text


async def test_the_users_a_referrer_brought_in_are_paged_by_key(as_sales, database, clock):
    program = await make_program(database, now=clock())
    for n in range(51):
        await make_referral(
            database, now=clock(), referrer="alice", referred=f"user-{n:02}", program=program
        )

    first = await as_sales.get("/admin/referrals/users", params={"user_hash": "alice"})
    following = re.search(r'href="([^"]+after=[^"]+)" rel="next"', first.text)
    assert following is not None
    second = await as_sales.get(following.group(1).replace("&amp;", "&"))

    assert ">user-00</a>" in first.text
    assert ">user-49</a>" in first.text
    assert ">user-50</a>" in second.text
    assert ">user-49</a>" not in second.text


async def test_an_unknown_user_is_shown_by_the_field(as_sales):
    page = await as_sales.get("/admin/referrals/users", params={"user_hash": "nobody"})

    assert page.status_code == 404
    assert _errors(page.text) == {
        "user_hash": "No such user: nobody referred them and they referred nobody."
    }


async def test_a_user_hash_with_a_space_is_refused_by_the_field(as_sales):
    page = await as_sales.get("/admin/referrals/users", params={"user_hash": "two words"})

    assert page.status_code == 422
    assert _errors(page.text) == {
        "user_hash": "No spaces or hidden characters: user hashes have none."
    }


async def test_the_credits_ledger_lists_every_credit_of_the_user(
    as_sales, client, auth, database, clock
):
    program = await make_program(database, now=clock(), target_value=Decimal(40))
    await _refer(client, auth, "alice", "bob", program.id)
    await _pay(client, auth, "bob", 40)

    page = await as_sales.get("/admin/referrals/credits", params={"user_hash": "alice"})

    assert page.status_code == 200
    rows = re.findall(r'data-label="Kind">(\w+)</td>\s*<td[^>]*>([\d.]+)</td>', page.text)
    assert rows == [("potential", "40.00"), ("acquired", "40.00")]


async def test_invitations_show_who_invited_each_address_and_whether_it_was_verified(
    as_sales, client, auth
):
    await client.post(
        "/emailindication",
        json={"user_indicator": "alice", "emails": "ann@example.com,ben@example.com"},
        headers=auth,
    )
    await client.post("/emailverification", json={"emails": "ann@example.com"}, headers=auth)

    page = await as_sales.get("/admin/referrals/invitations")

    rows = re.findall(
        r'"Address">([^<]+)</td>.*?user_hash=(\w+)".*?"Verified"><span class="badge [\w-]+">'
        r"([\w ]+)</span>",
        page.text,
        re.DOTALL,
    )
    assert sorted(rows) == [
        ("ann@example.com", "alice", "Verified"),
        ("ben@example.com", "alice", "Not verified"),
    ]


async def test_invitations_filter_by_referrer_and_verification(as_sales, client, auth):
    for referrer, emails in (("alice", "ann@example.com,ben@example.com"), ("carl", "cy@x.io")):
        await client.post(
            "/emailindication", json={"user_indicator": referrer, "emails": emails}, headers=auth
        )
    await client.post("/emailverification", json={"emails": "ann@example.com"}, headers=auth)

    page = await as_sales.get(
        "/admin/referrals/invitations", params={"referrer": "alice", "verified": "no"}
    )

    assert re.findall(r'"Address">([^<]+)</td>', page.text) == ["ben@example.com"]


async def test_a_bad_invitation_filter_is_shown_by_its_field(as_sales):
    page = await as_sales.get("/admin/referrals/invitations", params={"verified": "maybe"})

    assert page.status_code == 422
    assert _errors(page.text) == {"verified": "Choose one of yes or no."}


async def test_sales_finds_the_referrals_area_in_the_navigation(as_sales):
    page = await as_sales.get("/admin")

    assert 'href="/admin/referrals"' in page.text


async def test_the_days_that_are_over_are_counted_again_once_an_hour(as_sales, database, clock):
    program = await make_program(database, now=clock())
    path = f"/admin/referrals/programs/{program.id}"
    await as_sales.get(path)  # the days that are over are counted now
    yesterday = clock() - timedelta(days=1)
    await make_referral(database, now=yesterday, referrer="alice", referred="bob", program=program)

    held = await as_sales.get(path)
    for minutes in (25, 25, 11):  # a request each time, within the session's idle time
        clock.advance(minutes=minutes)
        recounted = await as_sales.get(path)

    assert _funnel_row(held.text, "2026-02-28")[0] == "0"
    assert _funnel_row(recounted.text, "2026-02-28")[0] == "1"
