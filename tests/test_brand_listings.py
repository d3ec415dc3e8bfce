"""The brands' listings the console pages by key: brands (their batches) and brand users."""

from __future__ import annotations

from promos.brands import service as brands
from tests.factories.codes import make_batch


async def test_brands_are_listed_in_the_order_of_their_first_codes(database, clock):
    async with database.begin() as conn:
        for brand_id in (3, 1, 2):
            await brands.generate_for_brand(conn, brand_id=brand_id, count=1, now=clock())
            clock.advance(seconds=1)
    await make_batch(database, now=clock(), codes=1, name="brand 9")  # not brand 9's client

    async with database.begin() as conn:
        first = await brands.brands_page(conn, limit=2, after_key=None)
        rest = await brands.brands_page(conn, limit=2, after_key=first.next_key)

    assert [b.brand_id for b in first.items] == [3, 1]
    assert [b.brand_id for b in rest.items] == [2]
    assert rest.next_key is None or (await _page_after(database, rest.next_key)) == []


async def _page_after(database, key):
    async with database.begin() as conn:
        return (await brands.brands_page(conn, limit=2, after_key=key)).items


async def test_brand_users_are_paged_by_id(database, clock):
    async with database.begin() as conn:
        for user_id in ("c", "a", "b"):
            await brands.create_brand_user(conn, user_id=user_id, secret=None, now=clock())
        first = await brands.brand_users_page(conn, limit=2, after_key=None)
        rest = await brands.brand_users_page(conn, limit=2, after_key=first.next_key)

    assert [u.user_id for u in first.items] == ["a", "b"]
    assert [u.user_id for u in rest.items] == ["c"]
    assert rest.next_key is None
