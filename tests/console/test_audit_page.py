"""The audit log page: filters, paging by key, and each change as a readable diff."""

from __future__ import annotations

import re

import pytest

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.db import Database
from tests.conftest import FakeClock

ADA = Principal("user", 1, "ada", "admin")
KEY = Principal("api_key", 7, "deploy bot", "admin")


async def _record(
    database: Database,
    clock: FakeClock,
    *,
    actor: Principal = ADA,
    action: str = "special.update",
    target_id: str = "12",
    before: object = None,
    after: object = None,
) -> None:
    async with database.begin() as conn:
        await audit.record(
            conn,
            actor=actor,
            action=action,
            target_type=action.split(".", maxsplit=1)[0],
            target_id=target_id,
            at=clock(),
            before=before,
            after=after,
        )


def _actions(html: str) -> list[str]:
    return re.findall(r"<code>([a-z_]+\.[a-z_]+)</code>", html)


async def test_the_log_lists_changes_newest_first(as_admin, database, clock):
    await _record(database, clock, action="special.create")
    clock.advance(minutes=1)
    await _record(database, clock, action="special.update")

    page = await as_admin.get("/admin/audit")

    assert page.status_code == 200
    assert _actions(page.text) == ["special.update", "special.create"]
    assert "2026-03-01 12:01:00 UTC" in page.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"actor": "api_key:7"}, ["offer.delete"]),
        ({"actor": "ada"}, ["special.update", "special.create"]),
        ({"action": "special.create"}, ["special.create"]),
        ({"target_type": "offer", "target_id": "3"}, ["offer.delete"]),
        ({"since": "2026-03-01T12:01"}, ["offer.delete", "special.update"]),
        ({"until": "2026-03-01T12:01"}, ["special.create"]),
    ],
    ids=["actor-id", "actor-name", "action", "target", "since", "until"],
)
@pytest.mark.usefixtures("admin")
async def test_the_log_is_filtered(as_admin, database, clock, query, expected):
    await _record(database, clock, action="special.create")
    clock.advance(minutes=1)
    await _record(database, clock, action="special.update")
    clock.advance(minutes=1)
    await _record(database, clock, actor=KEY, action="offer.delete", target_id="3")

    page = await as_admin.get("/admin/audit", params=query)

    assert page.status_code == 200
    assert _actions(page.text) == expected
    for value in query.values():
        assert f'value="{value}"' in page.text  # the filters stay filled in


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"actor": "nobody"}, "actor", "No user has this name"),
        ({"since": "yesterday"}, "since", "A date and time in UTC"),
        ({"action": "x" * 65}, "action", "At most 64 characters."),
    ],
)
async def test_a_bad_filter_is_named_next_to_its_field(as_admin, admin, query, field, message):
    page = await as_admin.get("/admin/audit", params=query)

    assert page.status_code == 422
    assert re.search(rf'id="{field}-error">{message}', page.text)


async def test_the_log_is_paged_by_key_keeping_its_filters(as_admin, admin, database, clock):
    for n in range(60):
        await _record(database, clock, target_id=str(n))
    await _record(database, clock, action="special.create")

    first = await as_admin.get("/admin/audit", params={"action": "special.update"})
    link = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert link is not None
    second = await as_admin.get(link.group(1).replace("&amp;", "&"))

    assert len(_actions(first.text)) == 50
    assert _actions(second.text) == ["special.update"] * 10
    assert "action=special.update" in link.group(1)
    assert "special 0<" in second.text.replace("</a>", "<")
    assert 'rel="next"' not in second.text


async def test_a_change_shows_each_field_before_and_after(as_admin, admin, database, clock):
    await _record(
        database,
        clock,
        before={"name": "Spring", "price": "10.00", "rules": {"max": 1}, "sku": "A1"},
        after={"name": "Summer", "price": "10.00", "rules": {"max": 2}, "sku": "A1"},
    )

    page = (await as_admin.get("/admin/audit")).text

    assert "2 changed" in page
    assert re.search(r'class="was"[^>]*>Spring</td><td class="now"[^>]*>Summer</td>', page)
    assert re.search(r'>rules.max</td><td class="was"[^>]*>1</td><td class="now"[^>]*>2</td>', page)
    assert re.search(r'<tr class="same"><td[^>]*>price</td>', page)


async def test_a_creation_shows_its_values(as_admin, admin, database, clock):
    await _record(
        database, clock, action="special.create", after={"name": "Spring", "active": True}
    )

    page = (await as_admin.get("/admin/audit")).text

    assert "Created" in page
    assert re.search(r'>active</td><td class="now"[^>]*>true</td>', page)


async def test_the_log_escapes_what_callers_stored(as_admin, admin, database, clock):
    await _record(database, clock, after={"name": "<script>alert(1)</script>"})

    page = (await as_admin.get("/admin/audit")).text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
