"""The cart a use of a promo code was taken for: the products a redeem or a hold named.

Recorded by the use's id, which a hold keeps as a redemption, so a confirmed hold's cart is
its redemption's; a partial return is measured against it (``returns``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.promocodes.tables import promocode_use_products as use_products


async def record_cart(
    conn: AsyncConnection, *, use_id: int, promocode_id: int, skus: Sequence[str] | None
) -> None:
    """Record the products the use was taken for (none named: no cart, nothing written)."""
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
