"""The admin's brand users under ``/v1`` (the discount generator's users)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from promos.brands import changes
from promos.brands.schemas import BrandUserIn, NewBrandUserOut
from promos.http.deps import AdminPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute
from promos.http.scopes import needs
from promos.validation import Lookup

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1",
    tags=["brands"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


@router.post(
    "/brand-users",
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_201_CREATED,
    responses={409: {"model": ErrorBody}},
)
async def create_brand_user(
    body: BrandUserIn, state: State, principal: AdminPrincipal
) -> NewBrandUserOut:
    """A user of the discount generator's get_code route; the secret is in this response only."""
    async with state.database.begin() as conn:
        new = await changes.create_brand_user(
            conn, actor=principal, user_id=body.user_id, secret=body.secret, now=state.clock()
        )
    return NewBrandUserOut(
        user_id=new.user.user_id, created_at=new.user.created_at, secret=new.secret
    )


@router.delete(
    "/brand-users/{user_id}",
    dependencies=[needs("people", "manage")],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorBody}},
)
async def delete_brand_user(
    user_id: Annotated[Lookup, Path()],
    state: State,
    principal: AdminPrincipal,
) -> Response:
    async with state.database.begin() as conn:
        await changes.delete_brand_user(conn, actor=principal, user_id=user_id, now=state.clock())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
