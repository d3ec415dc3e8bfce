"""The admin's brand users under ``/v1`` (the discount generator's users)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from promos.audit import service as audit
from promos.brands import service
from promos.brands.schemas import BrandUserIn, NewBrandUserOut
from promos.http.deps import AdminPrincipal, State
from promos.http.errors import ErrorBody
from promos.http.native import NativeRoute

router = APIRouter(
    route_class=NativeRoute,
    prefix="/v1",
    tags=["brands"],
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)


@router.post(
    "/brand-users", status_code=status.HTTP_201_CREATED, responses={409: {"model": ErrorBody}}
)
async def create_brand_user(
    body: BrandUserIn, state: State, principal: AdminPrincipal
) -> NewBrandUserOut:
    """A user of the discount generator's get_code route; the secret is in this response only."""
    now = state.clock()
    async with state.database.begin() as conn:
        new = await service.create_brand_user(
            conn, user_id=body.user_id, secret=body.secret, now=now
        )
        await audit.record(
            conn,
            actor=principal,
            action="brand_user.create",
            target_type="brand_user",
            target_id=new.user.user_id,
            after=new.user,
            at=now,
        )
    return NewBrandUserOut(
        user_id=new.user.user_id, created_at=new.user.created_at, secret=new.secret
    )


@router.delete(
    "/brand-users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorBody}},
)
async def delete_brand_user(
    user_id: Annotated[str, Path(min_length=1, max_length=255)],
    state: State,
    principal: AdminPrincipal,
) -> Response:
    now = state.clock()
    async with state.database.begin() as conn:
        before = await service.get_brand_user(conn, user_id, for_update=True)
        await service.delete_brand_user(conn, user_id)
        await audit.record(
            conn,
            actor=principal,
            action="brand_user.delete",
            target_type="brand_user",
            target_id=user_id,
            before=before,
            at=now,
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
