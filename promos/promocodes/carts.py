"""The cart a use of a promo code was taken for: the products a redeem or a hold named.

Recorded by the use's id, which a hold keeps as a redemption, so a confirmed hold's cart is
its redemption's; a partial return is measured against it (``returns``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.promocodes.tables import promocode_use_products as use_products


def recording(*, rows: str, use_id: str, promocode_id: str, name: str = "carted") -> str:
    """PostgreSQL: a CTE recording the cart (``:skus``, a text[]) of the use each row of
    ``rows`` made, in the statement that records the use (one round trip, as before carts)."""
    return f"""{name} AS (
        INSERT INTO promocode_use_products (use_id, sku, promocode_id)
        SELECT DISTINCT {use_id}, sku, {promocode_id}
        FROM {rows}, unnest(CAST(:skus AS text[])) AS sku
    )"""  # noqa: S608 - names and expressions of the calling statement, never input


def skus_param(skus: Sequence[str] | None) -> list[str]:
    """``:skus`` of ``recording``: none named, an empty cart."""
    return list(skus or ())


async def record_cart(
    conn: AsyncConnection, *, use_id: int, promocode_id: int, skus: Sequence[str] | None
) -> None:
    """Record the products the use was taken for (none named: no cart, nothing written);
    on PostgreSQL the use's own statement does (``recording``)."""
    if not skus:
        return
    await conn.execute(
        use_products.insert().values(
            [
                {"use_id": use_id, "sku": sku, "promocode_id": promocode_id}
                for sku in dict.fromkeys(skus)
            ]
        )
    )


async def cart_of(conn: AsyncConnection, use_id: int) -> tuple[str, ...]:
    """The products the use was taken for, sorted; empty when it named none."""
    rows = await conn.execute(
        select(use_products.c.sku)
        .where(use_products.c.use_id == use_id)
        .order_by(use_products.c.sku)
    )
    return tuple(rows.scalars())
