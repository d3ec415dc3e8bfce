"""Specials and upgrade programs in the console: list, create, edit, delete; audited; bad
input shown by its field with nothing written."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from promos.audit import service as audit
from promos.audit.service import AuditQuery
from promos.catalog import service
from tests.console.conftest import submit

SPECIAL = {
    "sku": "SKU-1",
    "title": "Half price",
    "description": "This week only",
    "price": "",
    "discount_percentage": "50",
    "discount_amount": "",
    "starts_at": "2026-03-01T00:00",
    "ends_at": "2026-03-08T00:00",
}
PROGRAM = {
    "from_sku": "SKU-BASIC",
    "to_sku": "SKU-PRO",
    "title": "Go pro",
    "description": "",
    "discount_percentage": "",
    "discount_amount": "20",
    "starts_at": "",
    "ends_at": "",
}


def _errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]*)</p>', html))


async def _specials(database):
    async with database.begin() as conn:
        return (await service.list_specials(conn)).items


async def _programs(database):
    async with database.begin() as conn:
        return (await service.list_upgrade_programs(conn)).items


async def _actions(database, action):
    async with database.begin() as conn:
        return (await audit.list_entries(conn, query=AuditQuery(action=action), limit=5)).items


async def test_creating_a_special_lists_it_and_is_audited(as_sales, database):
    response = await submit(as_sales, "/admin/specials/new", "/admin/specials/new", SPECIAL)

    assert response.status_code == 303
    page = await as_sales.get("/admin/specials")
    assert "Special Half price created." in page.text
    assert "50.00% off" in page.text
    [special] = await _specials(database)
    assert special.discount_percentage == Decimal(50)
    assert special.starts_at.isoformat() == "2026-03-01T00:00:00+00:00"
    [entry] = await _actions(database, "special.create")
    assert entry.actor_name == "sam"


async def test_editing_a_special_shows_its_values_and_saves_the_change(as_sales, database):
    await submit(as_sales, "/admin/specials/new", "/admin/specials/new", SPECIAL)
    [special] = await _specials(database)
    path = f"/admin/specials/{special.id}"

    form = await as_sales.get(path)
    assert 'value="2026-03-08T00:00"' in form.text
    response = await submit(as_sales, path, path, {**SPECIAL, "title": "Two for one"})

    assert response.status_code == 303
    [saved] = await _specials(database)
    assert saved.title == "Two for one"
    [entry] = await _actions(database, "special.update")
    assert entry.before["title"] == "Half price"


async def test_deleting_a_special_removes_it_and_is_audited(as_sales, database):
    await submit(as_sales, "/admin/specials/new", "/admin/specials/new", SPECIAL)
    [special] = await _specials(database)

    response = await submit(as_sales, "/admin/specials", f"/admin/specials/{special.id}/delete")

    assert response.status_code == 303
    assert await _specials(database) == []
    assert len(await _actions(database, "special.delete")) == 1


@pytest.mark.parametrize(
    ("changed", "field", "message"),
    [
        ({"sku": ""}, "sku", "Required."),
        ({"title": "x" * 256}, "title", "At most 255 characters."),
        ({"discount_percentage": "half"}, "discount_percentage", "A number"),
        ({"discount_percentage": "", "price": ""}, "price", "exactly one"),
        ({"price": "5"}, "price", "exactly one"),
        ({"discount_percentage": "101"}, "discount_percentage", "at most 100"),
        ({"starts_at": "soon"}, "starts_at", "A date and time"),
        ({"ends_at": "2026-02-01T00:00"}, "ends_at", "after starts_at"),
    ],
)
async def test_bad_special_input_comes_back_with_the_error_by_its_field(
    as_sales, database, changed, field, message
):
    response = await submit(
        as_sales, "/admin/specials/new", "/admin/specials/new", {**SPECIAL, **changed}
    )

    assert response.status_code == 422
    errors = _errors(response.text)
    assert message.lower() in errors.get(field, "").lower(), errors
    assert await _specials(database) == []


async def test_an_upgrade_program_is_created_edited_and_deleted(as_sales, database):
    created = await submit(
        as_sales, "/admin/upgrade-programs/new", "/admin/upgrade-programs/new", PROGRAM
    )
    assert created.status_code == 303
    [program] = await _programs(database)
    path = f"/admin/upgrade-programs/{program.id}"

    edited = await submit(as_sales, path, path, {**PROGRAM, "discount_amount": "25"})
    deleted = await submit(as_sales, "/admin/upgrade-programs", f"{path}/delete")

    assert edited.status_code == deleted.status_code == 303
    assert await _programs(database) == []
    for action in ("create", "update", "delete"):
        [entry] = await _actions(database, f"upgrade_program.{action}")
        assert entry.actor_name == "sam"


async def test_an_upgrade_to_the_same_product_comes_back_with_the_error(as_sales, database):
    response = await submit(
        as_sales,
        "/admin/upgrade-programs/new",
        "/admin/upgrade-programs/new",
        {**PROGRAM, "to_sku": "SKU-BASIC"},
    )

    assert response.status_code == 422
    assert "must differ" in _errors(response.text)["to_sku"]
    assert await _programs(database) == []


async def test_a_missing_special_is_a_404_page(as_sales):
    assert (await as_sales.get("/admin/specials/99")).status_code == 404
