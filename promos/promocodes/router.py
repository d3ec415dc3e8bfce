"""The native promo code API under ``/v1``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from pydantic import AwareDatetime

from promos.errors import InvalidInput
from promos.export import csv_stream, read_first
from promos.http.deps import CurrentPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.responses import CSV_RESPONSE, CsvDownload
from promos.http.scopes import needs
from promos.promocodes import changes, export, holds, orders, returns, service
from promos.promocodes.holds import Hold
from promos.promocodes.schemas import (
    GeneratedOut,
    GenerateIn,
    GenerationOut,
    HoldIn,
    HoldOut,
    OrderCancelledOut,
    OrderReturnedOut,
    PromocodeOut,
    PromocodePage,
    PromocodePatch,
    RedemptionOut,
    ReturnIn,
    ReturnsOut,
    RollbackOut,
    UseIn,
    ValidateIn,
)
from promos.promocodes.service import Promocode, PromocodeFilter
from promos.validation import Id, Lookup, PathId

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1",
    tags=["promo codes"],
    responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)

Code = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._~-]+$")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retrying with the same key returns the first redemption, using no more.",
    ),
]


def promocode_out(found: Promocode) -> PromocodeOut:
    return PromocodeOut.of(found)


@router.post(
    "/promocodes",
    dependencies=[needs("promocodes", "manage")],
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorBody, "description": "pattern_exhausted"}},
)
async def generate(body: GenerateIn, state: State, principal: CurrentPrincipal) -> GeneratedOut:
    """Generate `count` unique codes from `pattern` and `charset`: all of them, or none."""
    made = await changes.generate_apart(
        state.database, actor=principal, spec=body.to_spec(), now=state.clock()
    )
    return GeneratedOut(generation=GenerationOut.model_validate(made.generation), codes=made.codes)


def promocode_filter(  # noqa: PLR0917 - FastAPI reads each filter as a parameter
    usage_by: Annotated[Lookup | None, Query(description="bound e-mail")] = None,
    kind: Annotated[
        Literal["percentage", "amount"] | None, Query(description="the kind of discount")
    ] = None,
    expires_before: Annotated[
        date | None, Query(description="codes whose last day is before this one")
    ] = None,
    expires_after: Annotated[date | None, Query(description="also codes that never expire")] = None,
    q: Annotated[Lookup | None, Query(description="part of the code")] = None,
    generation_id: Annotated[Id | None, Query(description="only this generation's codes")] = None,
) -> PromocodeFilter:
    """The filters of the list route and of the exports."""
    return PromocodeFilter(
        usage_by=usage_by,
        kind=kind,
        expires_before=expires_before,
        expires_after=expires_after,
        search=q,
        generation_id=generation_id,
    )


Filters = Annotated[PromocodeFilter, Depends(promocode_filter)]


@router.get("/promocodes", dependencies=[needs("promocodes", "read")])
async def list_promocodes(
    filters: Filters,
    state: State,
    _: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> PromocodePage:
    """Promo codes in the order they were made, filtered."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.promocodes_page(
            conn, filters=filters, limit=limit, after_key=after_key
        )
    return PromocodePage(items=[promocode_out(p) for p in page.items], **page_fields(page))


@router.get(
    "/promocodes.csv",
    dependencies=[needs("promocodes", "read")],
    response_class=CsvDownload,
    responses=CSV_RESPONSE,
)
async def export_promocodes(filters: Filters, state: State, _: CurrentPrincipal) -> CsvDownload:
    """The promo codes the filters let through (the list route's), as CSV, in the order they
    were made, streamed as they are read."""
    rows = await read_first(export.promocodes(state.database, filters))
    return CsvDownload(csv_stream(export.PROMOCODES, rows), filename="promocodes.csv")


@router.get(
    "/redemptions.csv",
    dependencies=[needs("promocodes", "read")],
    response_class=CsvDownload,
    responses=CSV_RESPONSE,
)
async def export_redemptions(
    filters: Filters,
    state: State,
    _: CurrentPrincipal,
    since: Annotated[AwareDatetime | None, Query(description="redeemed from this time on")] = None,
    until: Annotated[AwareDatetime | None, Query(description="redeemed before this time")] = None,
) -> CsvDownload:
    """The redemptions of the promo codes the filters let through, rolled-back ones too, as
    CSV, in the order they were made, streamed as they are read."""
    rows = await read_first(export.redemptions(state.database, filters, since=since, until=until))
    return CsvDownload(csv_stream(export.REDEMPTIONS, rows), filename="redemptions.csv")


@router.get(
    "/promocodes/{code}",
    dependencies=[needs("promocodes", "read")],
    responses={404: {"model": ErrorBody}},
)
async def get_promocode(code: Code, state: State, _: CurrentPrincipal) -> PromocodeOut:
    async with state.database.begin() as conn:
        return promocode_out(await service.get_promocode(conn, code, now=state.clock()))


@router.patch(
    "/promocodes/{code}",
    dependencies=[needs("promocodes", "manage")],
    responses={404: {"model": ErrorBody}},
)
async def update_promocode(
    code: Code, body: PromocodePatch, state: State, principal: CurrentPrincipal
) -> PromocodeOut:
    """Set the code's own cancellation policy (null: its generation's)."""
    async with state.database.begin() as conn:
        done = await changes.set_cancel_policy(
            conn,
            actor=principal,
            code=code,
            reusable_after_cancel=body.reusable_after_cancel,
            now=state.clock(),
        )
    return promocode_out(done)


@router.delete(
    "/promocodes/{code}",
    dependencies=[needs("promocodes", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorBody}},
)
async def delete_promocode(code: Code, state: State, principal: CurrentPrincipal) -> Response:
    async with state.database.begin() as conn:
        await changes.delete_promocode(conn, actor=principal, code=code, now=state.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_USE_ERRORS: dict[int | str, dict[str, object]] = {
    403: {
        "model": ErrorBody,
        "description": "promocode_not_for_customer or promocode_not_for_products",
    },
    404: {"model": ErrorBody, "description": "promocode_not_found"},
    409: {"model": ErrorBody, "description": "promocode_used_up or idempotency_key_reused"},
    410: {"model": ErrorBody, "description": "promocode_expired"},
}


@router.post(
    "/promocodes/{code}/validate", dependencies=[needs("promocodes", "use")], responses=_USE_ERRORS
)
async def validate(code: Code, body: ValidateIn, state: State, _: CurrentPrincipal) -> PromocodeOut:
    """Whether the customer may use the code on this cart (now, or at `at`); changes nothing."""
    at = body.at or state.clock()
    if at.tzinfo is None:
        raise InvalidInput("at must carry a timezone, e.g. 2026-03-01T12:00:00Z")
    async with state.database.begin() as conn:
        found = await service.validate(
            conn, code=code, customer=body.customer, skus=body.products, at=at
        )
    return promocode_out(found)


@router.post(
    "/promocodes/{code}/redeem",
    dependencies=[needs("promocodes", "use")],
    status_code=status.HTTP_201_CREATED,
    responses=_USE_ERRORS,
)
async def redeem(
    code: Code,
    body: UseIn,
    *,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> RedemptionOut:
    """Use one use of the code at checkout, atomically."""
    async with state.database.begin() as conn:
        done = await service.redeem(
            conn,
            code=code,
            customer=body.customer,
            skus=body.products,
            now=state.clock(),
            idempotency_key=idempotency_key,
        )
    return RedemptionOut.model_validate(done)


@router.post(
    "/redemptions/{redemption_id}/rollback",
    dependencies=[needs("promocodes", "use")],
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def rollback(redemption_id: PathId, state: State, _: CurrentPrincipal) -> RollbackOut:
    """Cancel the redemption (once); its use comes back to its code when the code's
    `reusable_after_cancel` says so."""
    async with state.database.begin() as conn:
        done = await service.rollback(conn, redemption_id=redemption_id, now=state.clock())
    return RollbackOut.model_validate(done)


# --- holds -------------------------------------------------------------------------------------

HoldKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retrying with the same key returns the first hold, taking no more.",
    ),
]


def hold_out(found: Hold) -> HoldOut:
    return HoldOut.model_validate(found)


@router.post(
    "/promocodes/{code}/holds",
    dependencies=[needs("promocodes", "use")],
    status_code=status.HTTP_201_CREATED,
    responses={
        **_USE_ERRORS,
        409: {
            "model": ErrorBody,
            "description": "promocode_used_up, idempotency_key_reused or "
            "order_held_for_another_customer",
        },
    },
)
async def hold(
    code: Code,
    body: HoldIn,
    *,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: HoldKey = None,
) -> HoldOut:
    """Take one use of the code for the order until the hold expires, atomically, or refuse
    as a redemption would; the same order (or key) asking again gets the same hold."""
    ttl = min(body.ttl_seconds, state.settings.promocode_hold_max_seconds)
    async with state.database.begin() as conn:
        held = await holds.hold(
            conn,
            code=code,
            customer=body.customer,
            order=body.order,
            skus=body.products,
            ttl=timedelta(seconds=ttl),
            now=state.clock(),
            idempotency_key=idempotency_key,
        )
    return hold_out(held)


_HOLD_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "hold_not_found"}
}


@router.get(
    "/promocode-holds/{hold_id}",
    dependencies=[needs("promocodes", "use")],
    responses=_HOLD_NOT_FOUND,
)
async def get_hold(hold_id: PathId, state: State, _: CurrentPrincipal) -> HoldOut:
    """The hold as it stands now (a lapsed one is expired, its use free)."""
    async with state.database.begin() as conn:
        return hold_out(await holds.get_hold(conn, hold_id, now=state.clock()))


@router.post(
    "/promocode-holds/{hold_id}/confirm",
    dependencies=[needs("promocodes", "use")],
    responses={
        **_HOLD_NOT_FOUND,
        409: {"model": ErrorBody, "description": "hold_released"},
        410: {"model": ErrorBody, "description": "hold_expired"},
    },
)
async def confirm_hold(hold_id: PathId, state: State, _: CurrentPrincipal) -> RedemptionOut:
    """Make the hold a redemption with the same id (again: the same redemption)."""
    async with state.database.begin() as conn:
        done = await holds.confirm(
            conn,
            hold_id=hold_id,
            now=state.clock(),
            late=state.settings.promocode_hold_late_confirm,
        )
    return RedemptionOut.model_validate(done)


@router.post(
    "/promocode-holds/{hold_id}/release",
    dependencies=[needs("promocodes", "use")],
    responses={**_HOLD_NOT_FOUND, 409: {"model": ErrorBody, "description": "hold_confirmed"}},
)
async def release_hold(hold_id: PathId, state: State, _: CurrentPrincipal) -> HoldOut:
    """Give the hold's use back at once (a released or expired hold: as it is)."""
    async with state.database.begin() as conn:
        return hold_out(await holds.release(conn, hold_id=hold_id, now=state.clock()))


Order = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]


@router.post(
    "/promocode-orders/{order}/cancel",
    dependencies=[needs("promocodes", "use")],
    responses={404: {"model": ErrorBody, "description": "order_not_found"}},
)
async def cancel_order(order: Order, state: State, _: CurrentPrincipal) -> OrderCancelledOut:
    """Cancel the order: release its holds still held, roll back its redemptions that stand
    (each code's `reusable_after_cancel` decides whether the use comes back)."""
    async with state.database.begin() as conn:
        done = await orders.cancel_order(conn, order=order, now=state.clock())
    return OrderCancelledOut(
        order=done.order,
        holds=[hold_out(h) for h in done.holds],
        redemptions=[RollbackOut.model_validate(r) for r in done.redemptions],
    )


# --- returns -----------------------------------------------------------------------------------

ReturnKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retrying with the same key (and products) changes nothing more.",
    ),
]
_RETURN_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "redemption_not_found"},
    409: {
        "model": ErrorBody,
        "description": "redemption_already_rolled_back or idempotency_key_reused",
    },
}


def returns_out(found: returns.Returns) -> ReturnsOut:
    return ReturnsOut(
        redemption=RedemptionOut.model_validate(found.redemption),
        products=list(found.cart),
        returned=list(found.returned),
        kept=list(found.kept),
        returned_now=list(found.returned_now),
        use_stands=found.use_stands,
        use_given_back=found.use_given_back,
    )


@router.post(
    "/redemptions/{redemption_id}/returns",
    dependencies=[needs("promocodes", "use")],
    responses=_RETURN_ERRORS,
)
async def return_products(
    redemption_id: PathId,
    body: ReturnIn,
    *,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: ReturnKey = None,
) -> ReturnsOut:
    """Return some products of the redemption; once none the code applies to is kept, the
    use ends as by a rollback (the code's `reusable_after_cancel` decides whether it comes
    back). Products returned before change nothing."""
    async with state.database.begin() as conn:
        done = await returns.return_products(
            conn,
            redemption_id=redemption_id,
            skus=body.products,
            now=state.clock(),
            idempotency_key=idempotency_key,
        )
    return returns_out(done)


@router.get(
    "/redemptions/{redemption_id}/returns",
    dependencies=[needs("promocodes", "use")],
    responses={404: {"model": ErrorBody, "description": "redemption_not_found"}},
)
async def get_returns(redemption_id: PathId, state: State, _: CurrentPrincipal) -> ReturnsOut:
    """The redemption's products, those returned and kept, and whether its use stands."""
    async with state.database.begin() as conn:
        return returns_out(await returns.get_returns(conn, redemption_id))


@router.post(
    "/promocode-orders/{order}/returns",
    dependencies=[needs("promocodes", "use")],
    responses={
        **_RETURN_ERRORS,
        404: {"model": ErrorBody, "description": "order_not_found"},
    },
)
async def return_order_products(
    order: Order,
    body: ReturnIn,
    *,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: ReturnKey = None,
) -> OrderReturnedOut:
    """Return products of the order from each of its redemptions whose cart held them."""
    async with state.database.begin() as conn:
        done = await returns.return_order_products(
            conn,
            order=order,
            skus=body.products,
            now=state.clock(),
            idempotency_key=idempotency_key,
        )
    return OrderReturnedOut(order=order, redemptions=[returns_out(r) for r in done])
