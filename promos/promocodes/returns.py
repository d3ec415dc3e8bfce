"""Partial returns of a redemption: some products of its cart given back (docs/api.md,
"Returns").

A redemption's cart is the products its redeem or hold named (``carts``). A return names
some of them; they are recorded, and while any product the code applies to (every product,
for a code without products) is still kept, the use stands. The return that leaves none
kept ends the use as a rollback does (``service.end_use``), the code's
``reusable_after_cancel`` deciding whether it comes back. A use taken without products has
no cart: its returns are recorded and the use stands until it is rolled back.

Each return locks its redemption's row first, so returns of one redemption, and a return
and a rollback, take turns: the use ends, and comes back, at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.events.outbox import emit_events
from promos.events.types import PROMOCODE_REDEMPTION_RETURNED
from promos.promocodes import carts, orders, service
from promos.promocodes.errors import (
    IdempotencyKeyReused,
    OrderNotFound,
    ProductNotInOrder,
    ProductNotInRedemption,
    RedemptionNotFound,
    RedemptionRolledBack,
)
from promos.promocodes.service import Redemption
from promos.promocodes.tables import promocode_redemptions, promocode_returns


@dataclass(frozen=True, slots=True)
class Return:
    id: int
    redemption_id: int
    products: tuple[str, ...]  # the products it named, sorted
    returned_at: datetime
    use_ended: bool  # whether it left nothing the code applies to kept
    use_given_back: bool | None  # when it ended the use: whether the use came back
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class Returns:
    """A redemption's returns as they stand (after the call that read them)."""

    redemption: Redemption
    cart: tuple[str, ...]  # the products it was taken for; empty: none named
    applies_to: tuple[str, ...]  # the code's products; empty: every product
    returns: tuple[Return, ...]  # oldest first
    returned_now: tuple[str, ...] = field(default=())  # what this call returned anew

    @property
    def returned(self) -> tuple[str, ...]:
        """Every product returned so far, sorted."""
        return tuple(sorted({sku for r in self.returns for sku in r.products}))

    @property
    def kept(self) -> tuple[str, ...]:
        """The cart's products not returned (none known without a cart)."""
        returned = set(self.returned)
        return tuple(sku for sku in self.cart if sku not in returned)

    @property
    def use_stands(self) -> bool:
        """Whether the use still counts (neither rolled back nor ended by a return)."""
        return self.redemption.rolled_back_at is None

    @property
    def use_given_back(self) -> bool | None:
        """Whether the use came back, when a return ended it; None otherwise."""
        for done in self.returns:
            if done.use_ended:
                return done.use_given_back
        return None


def _relevant(cart: Sequence[str], applies_to: Sequence[str]) -> set[str]:
    """The cart's products the code's discount stands on."""
    return set(cart) & set(applies_to) if applies_to else set(cart)


def _return(row: Any) -> Return:
    return Return(
        row.id,
        row.redemption_id,
        tuple(row.products),
        row.returned_at,
        row.use_ended,
        row.use_given_back,
        row.idempotency_key,
    )


async def _returns_of(conn: AsyncConnection, redemption_id: int) -> tuple[Return, ...]:
    rows = await conn.execute(
        select(promocode_returns)
        .where(promocode_returns.c.redemption_id == redemption_id)
        .order_by(promocode_returns.c.id)
    )
    return tuple(_return(row) for row in rows)


async def returns_of(
    conn: AsyncConnection, redemption_ids: Sequence[int]
) -> dict[int, tuple[Return, ...]]:
    """The returns of each of these redemptions, oldest first (those with none left out)."""
    if not redemption_ids:
        return {}
    rows = await conn.execute(
        select(promocode_returns)
        .where(promocode_returns.c.redemption_id.in_(list(redemption_ids)))
        .order_by(promocode_returns.c.id)
    )
    found: dict[int, list[Return]] = {}
    for row in rows:
        found.setdefault(row.redemption_id, []).append(_return(row))
    return {k: tuple(v) for k, v in found.items()}


async def orders_of(conn: AsyncConnection, redemption_ids: Sequence[int]) -> dict[int, str]:
    """The order of each of these redemptions that has one (a confirmed hold's)."""
    if not redemption_ids:
        return {}
    rows = await conn.execute(
        select(promocode_redemptions.c.id, promocode_redemptions.c.order_ref).where(
            promocode_redemptions.c.id.in_(list(redemption_ids)),
            promocode_redemptions.c.order_ref.is_not(None),
        )
    )
    return {row.id: row.order_ref for row in rows}


async def get_returns(conn: AsyncConnection, redemption_id: int) -> Returns:
    """The redemption's cart and returns as they stand."""
    redemption = await service.get_redemption(conn, redemption_id)
    found = await service.get_promocode(conn, redemption.code)
    return Returns(
        redemption,
        await carts.cart_of(conn, redemption_id),
        found.products,
        await _returns_of(conn, redemption_id),
    )


async def _lock(conn: AsyncConnection, redemption_id: int) -> None:
    """Take the redemption's row until the transaction ends: its returns and its rollback
    take turns (SQLite's one writer already has them do so)."""
    locked = (
        await conn.execute(
            select(promocode_redemptions.c.id)
            .where(promocode_redemptions.c.id == redemption_id)
            .with_for_update()
        )
    ).first()
    if locked is None:
        raise RedemptionNotFound(f"redemption {redemption_id} does not exist")


def returned_payload(state: Returns, done: Return) -> dict[str, Any]:
    """The ``promocode.redemption_returned`` event's payload."""
    redemption = state.redemption
    return {
        "redemption_id": redemption.id,
        "code": redemption.code,
        "customer": redemption.customer,
        "products": list(done.products),
        "returned": list(state.returned),
        "kept": list(state.kept),
        "use_ended": done.use_ended,
        "use_given_back": done.use_given_back,
        "uses_left": redemption.usage_count,
        "returned_at": done.returned_at,
    }


async def return_products(
    conn: AsyncConnection,
    *,
    redemption_id: int,
    skus: Sequence[str],
    now: datetime,
    idempotency_key: str | None = None,
) -> Returns:
    """Record the products as returned; with none the code applies to kept, end the use as
    a rollback would. Products returned before (or the same key again) change nothing."""
    named = tuple(sorted(set(skus)))
    await _lock(conn, redemption_id)
    before = await get_returns(conn, redemption_id)
    if idempotency_key is not None:
        for earlier in before.returns:
            if earlier.idempotency_key == idempotency_key:
                if earlier.products != named:
                    raise IdempotencyKeyReused(
                        f"Idempotency-Key {idempotency_key!r} was used to return other products"
                    )
                return before
    if before.cart:
        unknown = [sku for sku in named if sku not in before.cart]
        if unknown:
            raise ProductNotInRedemption(
                f"redemption {redemption_id} was not taken for {', '.join(unknown)}"
            )
    anew = tuple(sku for sku in named if sku not in before.returned)
    if not anew:
        return before
    if not before.use_stands:
        raise RedemptionRolledBack(
            f"redemption {redemption_id} was rolled back: there is nothing more to return"
        )
    still_kept = _relevant(before.cart, before.applies_to) - set(before.returned) - set(named)
    ended = bool(before.cart) and not still_kept
    given = await service.end_use(conn, redemption_id=redemption_id, now=now) if ended else None
    return_id = (
        await conn.execute(
            promocode_returns.insert()
            .values(
                redemption_id=redemption_id,
                idempotency_key=idempotency_key,
                products=list(named),
                returned_at=now,
                use_ended=ended,
                use_given_back=given,
            )
            .returning(promocode_returns.c.id)
        )
    ).scalar_one()
    done = Return(return_id, redemption_id, named, now, ended, given, idempotency_key)
    after = Returns(
        await service.get_redemption(conn, redemption_id),
        before.cart,
        before.applies_to,
        (*before.returns, done),
        anew,
    )
    await emit_events(conn, PROMOCODE_REDEMPTION_RETURNED, [returned_payload(after, done)], now=now)
    return after


async def return_order_products(
    conn: AsyncConnection,
    *,
    order: str,
    skus: Sequence[str],
    now: datetime,
    idempotency_key: str | None = None,
) -> list[Returns]:
    """Return the products from each of the order's redemptions whose cart held any of them,
    in id order; products no cart of the order held are left aside, unless none was held."""
    ids = (
        await conn.execute(
            select(promocode_redemptions.c.id)
            .where(promocode_redemptions.c.order_ref == order)
            .order_by(promocode_redemptions.c.id)
        )
    ).scalars()
    redemption_ids = list(ids)
    await orders.lock_rows(conn, hold_ids=(), redemption_ids=redemption_ids)
    wanted = set(skus)
    touched: list[Returns] = []
    for redemption_id in redemption_ids:
        mine = sorted(wanted & set(await carts.cart_of(conn, redemption_id)))
        if mine:
            touched.append(
                await return_products(
                    conn,
                    redemption_id=redemption_id,
                    skus=mine,
                    now=now,
                    idempotency_key=idempotency_key,
                )
            )
    if touched:
        return touched
    if not await orders.order_known(conn, order):
        raise OrderNotFound(f"no hold or redemption names order {order!r}")
    raise ProductNotInOrder(
        f"no redemption of order {order!r} was taken for {', '.join(sorted(wanted))}"
    )
