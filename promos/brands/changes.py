"""Changes to brand users, each with its audit row in the same transaction.

The native routes and the command line make them alike, through these. The secret is
never recorded.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.brands import service
from promos.brands.service import BrandUser, NewBrandUser


async def create_brand_user(
    conn: AsyncConnection, *, actor: Principal, user_id: str, secret: str | None, now: datetime
) -> NewBrandUser:
    """A brand user with the given secret, or a new random one."""
    new = await service.create_brand_user(conn, user_id=user_id, secret=secret, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="brand_user.create",
        target_type="brand_user",
        target_id=new.user.user_id,
        after=new.user,
        at=now,
    )
    return new


async def delete_brand_user(
    conn: AsyncConnection, *, actor: Principal, user_id: str, now: datetime
) -> BrandUser:
    """Delete the brand user; the codes issued to them stay theirs."""
    before = await service.get_brand_user(conn, user_id, for_update=True)
    await service.delete_brand_user(conn, user_id)
    await audit.record(
        conn,
        actor=actor,
        action="brand_user.delete",
        target_type="brand_user",
        target_id=user_id,
        before=before,
        at=now,
    )
    return before
