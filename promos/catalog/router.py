"""The native API of specials and upgrade programs under ``/v1``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from promos.catalog import changes, service
from promos.catalog.schemas import (
    SpecialIn,
    SpecialOut,
    SpecialPage,
    UpgradeProgramIn,
    UpgradeProgramOut,
    UpgradeProgramPage,
)
from promos.http.deps import CurrentPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.pagination import DEFAULT_LIMIT, Cursor, Limit, decode_cursor, page_fields
from promos.http.scopes import needs
from promos.validation import Lookup, PathId

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1",
    tags=["specials and upgrade programs"],
    responses={401: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
_404: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}


@router.post(
    "/specials", dependencies=[needs("catalog", "manage")], status_code=status.HTTP_201_CREATED
)
async def create_special(body: SpecialIn, state: State, principal: CurrentPrincipal) -> SpecialOut:
    async with state.database.begin() as conn:
        made = await changes.create_special(
            conn, actor=principal, spec=body.to_spec(), now=state.clock()
        )
    return SpecialOut.model_validate(made)


@router.get("/specials", dependencies=[needs("catalog", "read")])
async def list_specials(
    state: State,
    _: CurrentPrincipal,
    sku: Annotated[Lookup | None, Query(description="only this SKU's")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SpecialPage:
    """Specials, oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_specials(conn, sku=sku, limit=limit, after_key=after_key)
    return SpecialPage(
        items=[SpecialOut.model_validate(s) for s in page.items], **page_fields(page)
    )


@router.get("/specials/active/{sku}", dependencies=[needs("catalog", "read")], responses=_404)
async def active_special(sku: Lookup, state: State, _: CurrentPrincipal) -> SpecialOut:
    """The special of the SKU active now."""
    async with state.database.begin() as conn:
        found = await service.active_special(conn, sku=sku, now=state.clock())
    return SpecialOut.model_validate(found)


@router.get("/specials/{special_id}", dependencies=[needs("catalog", "read")], responses=_404)
async def get_special(special_id: PathId, state: State, _: CurrentPrincipal) -> SpecialOut:
    async with state.database.begin() as conn:
        return SpecialOut.model_validate(await service.get_special(conn, special_id))


@router.put("/specials/{special_id}", dependencies=[needs("catalog", "manage")], responses=_404)
async def update_special(
    special_id: PathId, body: SpecialIn, state: State, principal: CurrentPrincipal
) -> SpecialOut:
    """Replace the special's fields."""
    async with state.database.begin() as conn:
        done = await changes.update_special(
            conn, actor=principal, special_id=special_id, spec=body.to_spec(), now=state.clock()
        )
    return SpecialOut.model_validate(done)


@router.delete(
    "/specials/{special_id}",
    dependencies=[needs("catalog", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_404,
)
async def delete_special(special_id: PathId, state: State, principal: CurrentPrincipal) -> Response:
    async with state.database.begin() as conn:
        await changes.delete_special(
            conn, actor=principal, special_id=special_id, now=state.clock()
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/upgrade-programs",
    dependencies=[needs("catalog", "manage")],
    status_code=status.HTTP_201_CREATED,
)
async def create_upgrade_program(
    body: UpgradeProgramIn, state: State, principal: CurrentPrincipal
) -> UpgradeProgramOut:
    async with state.database.begin() as conn:
        made = await changes.create_upgrade_program(
            conn, actor=principal, spec=body.to_spec(), now=state.clock()
        )
    return UpgradeProgramOut.model_validate(made)


@router.get("/upgrade-programs", dependencies=[needs("catalog", "read")])
async def list_upgrade_programs(
    state: State, _: CurrentPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> UpgradeProgramPage:
    """Upgrade programs, oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.list_upgrade_programs(conn, limit=limit, after_key=after_key)
    return UpgradeProgramPage(
        items=[UpgradeProgramOut.model_validate(p) for p in page.items], **page_fields(page)
    )


@router.get("/upgrade-programs/active", dependencies=[needs("catalog", "read")])
async def active_upgrade_programs(
    state: State, _: CurrentPrincipal, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> UpgradeProgramPage:
    """The upgrade programs active now, oldest first."""
    after_key = decode_cursor(cursor, (int,))
    async with state.database.begin() as conn:
        page = await service.active_upgrade_programs_page(
            conn, now=state.clock(), limit=limit, after_key=after_key
        )
    return UpgradeProgramPage(
        items=[UpgradeProgramOut.model_validate(p) for p in page.items], **page_fields(page)
    )


@router.get(
    "/upgrade-programs/{program_id}", dependencies=[needs("catalog", "read")], responses=_404
)
async def get_upgrade_program(
    program_id: PathId, state: State, _: CurrentPrincipal
) -> UpgradeProgramOut:
    async with state.database.begin() as conn:
        return UpgradeProgramOut.model_validate(await service.get_upgrade_program(conn, program_id))


@router.put(
    "/upgrade-programs/{program_id}", dependencies=[needs("catalog", "manage")], responses=_404
)
async def update_upgrade_program(
    program_id: PathId, body: UpgradeProgramIn, state: State, principal: CurrentPrincipal
) -> UpgradeProgramOut:
    """Replace the upgrade program's fields."""
    async with state.database.begin() as conn:
        done = await changes.update_upgrade_program(
            conn, actor=principal, program_id=program_id, spec=body.to_spec(), now=state.clock()
        )
    return UpgradeProgramOut.model_validate(done)


@router.delete(
    "/upgrade-programs/{program_id}",
    dependencies=[needs("catalog", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_404,
)
async def delete_upgrade_program(
    program_id: PathId, state: State, principal: CurrentPrincipal
) -> Response:
    async with state.database.begin() as conn:
        await changes.delete_upgrade_program(
            conn, actor=principal, program_id=program_id, now=state.clock()
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
