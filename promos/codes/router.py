"""The native code pool API under ``/v1``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, File, Header, Path, Query, UploadFile, status
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.codes import changes, export, holds, lapsed, service
from promos.codes.errors import BatchNotFound, HoldNotFound
from promos.codes.export import BATCH_CODES
from promos.codes.schemas import (
    BatchCreate,
    BatchOut,
    BatchPage,
    HoldSettingsIn,
    HoldSettingsOut,
    ImportOut,
    IssuedOut,
    IssuedPage,
    IssueIn,
    PoolHoldIn,
    PoolHoldOut,
    PoolHoldPage,
    StatsOut,
)
from promos.codes.service import IssueRequest
from promos.export import csv_stream, read_first
from promos.http.deps import CurrentPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.responses import CSV_RESPONSE, CsvDownload
from promos.http.scopes import Values, body, needs, path, query
from promos.validation import MAX_NAME_LENGTH, PRINTABLE_NO_SPACE, PathId

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1",
    tags=["code pools"],
    responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


def _unknown_batch(values: Values) -> BatchNotFound:
    return BatchNotFound(f"batch {values.path.get('batch_id')} does not exist")


async def _batch_clients(conn: AsyncConnection, raw: str) -> list[str]:
    batch_id = _uuid(raw)
    return [str(c) for c in await service.batch_clients(conn, batch_id)] if batch_id else []


async def _batch_owner(conn: AsyncConnection, raw: str) -> list[str]:
    batch_id = _uuid(raw)
    owner = await service.batch_owner(conn, batch_id) if batch_id else None
    return [str(owner)] if owner is not None else []


def _uuid(raw: str) -> UUID | None:
    try:
        return UUID(raw)
    except ValueError:
        return None


# A batch is seen by a key of any of its clients, and changed by a key of its own client.
BATCH_CLIENTS = path("batch_id", unknown=_unknown_batch, resolve=_batch_clients)
BATCH_OWNER = path("batch_id", unknown=_unknown_batch, resolve=_batch_owner)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retrying with the same key returns the same code instead of a second one.",
    ),
]


@router.post(
    "/batches",
    dependencies=[needs("pools", "manage", at=body("client_id"))],
    status_code=status.HTTP_201_CREATED,
)
async def create_batch(body: BatchCreate, state: State, principal: CurrentPrincipal) -> BatchOut:
    """Create an empty batch for a client (the client needs no registering first)."""
    rules = body.rules.to_rules()
    async with state.database.begin() as conn:
        batch = await changes.create_batch(
            conn,
            actor=principal,
            client_id=body.client_id,
            name=body.name,
            rules=rules,
            now=state.clock(),
        )
    return BatchOut.of(batch, [batch.client_id])


@router.get("/batches", dependencies=[needs("pools", "read", at=query("client_id"))])
async def list_batches(
    state: State,
    _: CurrentPrincipal,
    client_id: Annotated[
        UUID | None,
        Query(description="only the batches among whose clients this one is (see `clients`)"),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> BatchPage:
    """Batches, oldest first, optionally of one client."""
    after_key = decode_cursor(cursor, (datetime, UUID))
    async with state.database.begin() as conn:
        page = await service.batches_page(
            conn, client_id=client_id, limit=limit, after_key=after_key
        )
        clients = await service.clients_of_batches(conn, [b.id for b in page.items])
    items = [BatchOut.of(b, clients.get(b.id, [])) for b in page.items]
    return BatchPage(items=items, **page_fields(page))


@router.get(
    "/batches/{batch_id}",
    dependencies=[needs("pools", "read", at=BATCH_CLIENTS)],
    responses={404: {"model": ErrorBody}},
)
async def get_batch(batch_id: UUID, state: State, _: CurrentPrincipal) -> BatchOut:
    """The batch, with its clients."""
    async with state.database.begin() as conn:
        batch = await service.get_batch(conn, batch_id)
        return BatchOut.of(batch, await service.batch_clients(conn, batch_id))


@router.get(
    "/batches/{batch_id}/stats",
    dependencies=[needs("pools", "read", at=BATCH_CLIENTS)],
    responses={404: {"model": ErrorBody}},
)
async def batch_stats(batch_id: UUID, state: State, _: CurrentPrincipal) -> StatsOut:
    """How many codes the batch holds, how many were issued, how many are left."""
    async with state.database.begin() as conn:
        return StatsOut.model_validate(await service.batch_stats(conn, batch_id))


@router.get(
    "/batches/{batch_id}/codes.csv",
    dependencies=[needs("pools", "read", at=BATCH_CLIENTS)],
    response_class=CsvDownload,
    responses={**CSV_RESPONSE, 404: {"model": ErrorBody}},
)
async def export_codes(batch_id: UUID, state: State, _: CurrentPrincipal) -> CsvDownload:
    """Every code of the batch as CSV, `code,client_id,customer_id,issued_at` (the last two
    empty for a free code), by client and code, streamed as it is read."""
    async with state.database.begin() as conn:
        await service.get_batch(conn, batch_id)
    rows = await read_first(export.batch_codes(state.database, batch_id))
    return CsvDownload(csv_stream(BATCH_CODES, rows), filename=f"batch-{batch_id}-codes.csv")


@router.post(
    "/batches/{batch_id}/expire",
    dependencies=[needs("pools", "manage", at=BATCH_OWNER)],
    responses={404: {"model": ErrorBody}},
)
async def expire_batch(batch_id: UUID, state: State, principal: CurrentPrincipal) -> BatchOut:
    """Stop issuing from the batch (for every one of its clients), without touching its codes."""
    async with state.database.begin() as conn:
        expired = await changes.expire_batch(
            conn, actor=principal, batch_id=batch_id, now=state.clock()
        )
        clients = await service.batch_clients(conn, batch_id)
    return BatchOut.of(expired, clients)


@router.post(
    "/batches/{batch_id}/codes",
    dependencies=[needs("pools", "manage")],
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
        413: {"model": ErrorBody},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {"example": {"file": "code\nSUMMER-0001\nSUMMER-0002\n"}}
            }
        }
    },
)
async def upload_codes(
    batch_id: UUID,
    state: State,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="CSV with header `code` or `client_id,code`")],
) -> ImportOut:
    """Add a CSV file's codes to the batch: all of them, or none if any row is wrong.

    Each code is its row's client's (a client new to the batch joins its `clients`); a file of
    codes alone gives them to the batch's own client."""
    async with state.database.begin() as conn:
        added = await changes.add_codes(
            conn, actor=principal, batch_id=batch_id, lines=file.file, now=state.clock()
        )
    return ImportOut(batch_id=batch_id, added=added)


@router.post(
    "/batches/{batch_id}/issues",
    dependencies=[needs("pools", "use", at=body("client_id", unknown=_unknown_batch))],
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"model": ErrorBody, "description": "customer_limit_reached"},
        404: {"model": ErrorBody, "description": "batch_not_found"},
        422: {"model": ErrorBody, "description": "client_mismatch: not one of the batch's clients"},
        409: {
            "model": ErrorBody,
            "description": "pool_exhausted or idempotency_key_reused",
        },
        410: {"model": ErrorBody, "description": "batch_expired"},
    },
)
async def issue_code(
    batch_id: UUID,
    body: IssueIn,
    *,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> IssuedOut:
    """Issue one code of the batch and client to a customer, under the batch's rules (counted
    per customer over the whole batch, whatever the client)."""
    issued = await state.issuer.issue(
        IssueRequest(batch_id, body.client_id, body.customer_id, idempotency_key)
    )
    return IssuedOut.model_validate(issued)


@router.get(
    "/customers/{customer_id}/codes", dependencies=[needs("pools", "read", at=query("client_id"))]
)
async def customer_codes(
    customer_id: Annotated[
        str, Path(min_length=1, max_length=MAX_NAME_LENGTH, pattern=PRINTABLE_NO_SPACE)
    ],
    *,
    state: State,
    _: CurrentPrincipal,
    client_id: Annotated[UUID | None, Query(description="only this client's codes")] = None,
    batch_id: Annotated[UUID | None, Query(description="only this batch's codes")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> IssuedPage:
    """The codes issued to a customer, newest first."""
    after_key = decode_cursor(cursor, (datetime, int))
    async with state.database.begin() as conn:
        page = await service.customer_codes(
            conn,
            customer_id=customer_id,
            client_id=client_id,
            batch_id=batch_id,
            limit=limit,
            after_key=after_key,
        )
    return IssuedPage(items=[IssuedOut.model_validate(i) for i in page.items], **page_fields(page))


# --- holds -------------------------------------------------------------------------------------

HoldKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retrying with the same key returns the first hold, holding no other code.",
    ),
]


def _unknown_hold(values: Values) -> HoldNotFound:
    return HoldNotFound(f"pool code hold {values.path.get('hold_id')} does not exist")


async def _hold_client(conn: AsyncConnection, raw: str) -> list[str]:
    try:
        hold_id = int(raw)
    except ValueError:
        return []
    client = await holds.hold_client(conn, hold_id) if 0 < hold_id < 2**63 else None
    return [str(client)] if client is not None else []


# A hold is seen and ended by a key of its code's client.
HOLD_CLIENT = path("hold_id", unknown=_unknown_hold, resolve=_hold_client)
_HOLD_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "hold_not_found"}
}


@router.post(
    "/batches/{batch_id}/holds",
    dependencies=[needs("pools", "use", at=body("client_id", unknown=_unknown_batch))],
    status_code=status.HTTP_201_CREATED,
    responses={
        403: {"model": ErrorBody, "description": "customer_limit_reached"},
        404: {"model": ErrorBody, "description": "batch_not_found"},
        422: {"model": ErrorBody, "description": "client_mismatch: not one of the batch's clients"},
        409: {
            "model": ErrorBody,
            "description": "pool_exhausted, idempotency_key_reused or "
            "order_held_for_another_customer",
        },
        410: {"model": ErrorBody, "description": "batch_expired"},
    },
)
async def hold_code(
    batch_id: UUID,
    body: PoolHoldIn,
    *,
    state: State,
    _: CurrentPrincipal,
    idempotency_key: HoldKey = None,
) -> PoolHoldOut:
    """Hold a code of the batch and client for the order until the hold expires, under the
    batch's rules (held codes count), or refuse as issuing would; the same order (or key)
    asking again gets the same hold."""
    ttl = min(body.ttl_seconds, state.settings.pool_hold_max_seconds)
    held = await lapsed.hold_code(
        state.database,
        batch_id=batch_id,
        client_id=body.client_id,
        customer_id=body.customer_id,
        order=body.order,
        ttl=timedelta(seconds=ttl),
        now=state.clock(),
        idempotency_key=idempotency_key,
    )
    return PoolHoldOut.model_validate(held)


@router.get(
    "/batches/{batch_id}/holds",
    dependencies=[needs("pools", "read", at=BATCH_CLIENTS)],
    responses={404: {"model": ErrorBody}},
)
async def live_holds(
    batch_id: UUID,
    state: State,
    _: CurrentPrincipal,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> PoolHoldPage:
    """The batch's holds still held, soonest to expire first."""
    after_key = decode_cursor(cursor, (datetime, int))
    async with state.database.read() as conn:
        await service.get_batch(conn, batch_id)
        page = await holds.live_holds(
            conn, batch_id=batch_id, now=state.clock(), limit=limit, after_key=after_key
        )
    items = [PoolHoldOut.model_validate(h) for h in page.items]
    return PoolHoldPage(items=items, **page_fields(page))


@router.get(
    "/batches/{batch_id}/hold-settings",
    dependencies=[needs("pools", "read", at=BATCH_CLIENTS)],
    responses={404: {"model": ErrorBody}},
)
async def hold_settings(batch_id: UUID, state: State, _: CurrentPrincipal) -> HoldSettingsOut:
    """What becomes of the code of a hold of the batch that is released or expires."""
    async with state.database.read() as conn:
        returned = await holds.returns_released_codes(conn, batch_id)
    return HoldSettingsOut(batch_id=batch_id, released_codes="return" if returned else "burn")


@router.put(
    "/batches/{batch_id}/hold-settings",
    dependencies=[needs("pools", "manage", at=BATCH_OWNER)],
    responses={404: {"model": ErrorBody}},
)
async def set_hold_settings(
    batch_id: UUID, body: HoldSettingsIn, state: State, principal: CurrentPrincipal
) -> HoldSettingsOut:
    """Return the codes of the batch's holds that end from now on to the pool, or burn them."""
    async with state.database.begin() as conn:
        await changes.set_released_codes(
            conn,
            actor=principal,
            batch_id=batch_id,
            returned=body.released_codes == "return",
            now=state.clock(),
        )
    return HoldSettingsOut(batch_id=batch_id, released_codes=body.released_codes)


@router.get(
    "/pool-code-holds/{hold_id}",
    dependencies=[needs("pools", "use", at=HOLD_CLIENT)],
    responses=_HOLD_NOT_FOUND,
)
async def get_hold(hold_id: PathId, state: State, _: CurrentPrincipal) -> PoolHoldOut:
    """The hold as it stands now (a lapsed one is expired, whether its code was returned or
    burnt yet or not)."""
    async with state.database.read() as conn:
        return PoolHoldOut.model_validate(await holds.get_hold(conn, hold_id, now=state.clock()))


@router.post(
    "/pool-code-holds/{hold_id}/confirm",
    dependencies=[needs("pools", "use", at=HOLD_CLIENT)],
    responses={
        **_HOLD_NOT_FOUND,
        409: {"model": ErrorBody, "description": "hold_released"},
        410: {"model": ErrorBody, "description": "hold_expired"},
    },
)
async def confirm_hold(hold_id: PathId, state: State, _: CurrentPrincipal) -> PoolHoldOut:
    """Issue the held code to its customer for good, under the hold's id (again: the same)."""
    async with state.database.begin() as conn:
        done = await holds.confirm(
            conn,
            hold_id=hold_id,
            now=state.clock(),
            late=state.settings.promocode_hold_late_confirm,
        )
    return PoolHoldOut.model_validate(done)


@router.post(
    "/pool-code-holds/{hold_id}/release",
    dependencies=[needs("pools", "use", at=HOLD_CLIENT)],
    responses={**_HOLD_NOT_FOUND, 409: {"model": ErrorBody, "description": "hold_confirmed"}},
)
async def release_hold(hold_id: PathId, state: State, _: CurrentPrincipal) -> PoolHoldOut:
    """End the hold now: its code goes back to the pool or is burnt, as the batch says (a
    released or expired hold: as it is)."""
    async with state.database.begin() as conn:
        done = await holds.release(conn, hold_id=hold_id, now=state.clock())
    return PoolHoldOut.model_validate(done)
