"""Changes to promo codes, each with its audit row in the same transaction.

The native routes and the Promos seed's routes make them alike, through these. Redeeming,
validating and rolling back are checkout traffic, not management: they are not audited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.db import Database
from promos.promocodes import bulk, service
from promos.promocodes.generate import code_shape
from promos.promocodes.service import Generated, GenerationSpec, Redemption


async def generate(
    conn: AsyncConnection,
    *,
    actor: Principal,
    spec: GenerationSpec,
    now: datetime,
    on_progress: bulk.Progress | None = None,
    staged: bool = False,
) -> Generated:
    """Generate the codes; recorded as the generation (what they share), not every code."""
    made = await service.generate(conn, spec=spec, now=now, on_progress=on_progress, staged=staged)
    await audit.record(
        conn,
        actor=actor,
        action="promocode_generation.create",
        target_type="promocode_generation",
        target_id=made.generation.id,
        after=made.generation,
        at=now,
    )
    return made


async def generate_apart(
    database: Database,
    *,
    actor: Principal,
    spec: GenerationSpec,
    now: datetime,
    on_progress: bulk.Progress | None = None,
) -> Generated:
    """``generate`` in a transaction of its own. On SQLite the codes are drawn first, outside
    it (``bulk.stage_sqlite``), so that the one writer SQLite allows is held only while they
    are stored, not for the seconds a million of them take to draw."""
    if not database.is_sqlite:
        async with database.begin() as conn:
            return await generate(conn, actor=actor, spec=spec, now=now, on_progress=on_progress)
    service.check_spec(spec, today=now.date())
    shape = code_shape(spec.pattern, spec.charset, spec.prefix, spec.postfix)
    async with database.connect() as conn:
        try:
            await bulk.stage_sqlite(conn, shape=shape, count=spec.count, on_progress=on_progress)
            async with database.transaction(conn):
                made = await generate(
                    conn, actor=actor, spec=spec, now=now, on_progress=on_progress, staged=True
                )
        except BaseException:
            with suppress(Exception):  # the connection itself may be what failed
                await bulk.drop_staging(conn)
            raise
        await bulk.drop_staging(conn)
    return made


async def _update(
    conn: AsyncConnection,
    *,
    actor: Principal,
    code: str,
    now: datetime,
    change: Callable[[], Awaitable[service.Promocode]],
) -> service.Promocode:
    """Make ``change`` to the code under its row lock; recorded as it was and became."""
    before = await service.get_promocode(conn, code, for_update=True)
    done = await change()
    await audit.record(
        conn,
        actor=actor,
        action="promocode.update",
        target_type="promocode",
        target_id=code,
        before=before,
        after=done,
        at=now,
    )
    return done


async def set_uses_left(
    conn: AsyncConnection, *, actor: Principal, code: str, usage_count: int, now: datetime
) -> service.Promocode:
    """Set the code's uses left; recorded with the code as it was and became."""
    return await _update(
        conn,
        actor=actor,
        code=code,
        now=now,
        change=lambda: service.set_uses_left(conn, code, usage_count=usage_count),
    )


async def set_cancel_policy(
    conn: AsyncConnection,
    *,
    actor: Principal,
    code: str,
    reusable_after_cancel: bool | None,
    now: datetime,
) -> service.Promocode:
    """Give the code its own cancellation policy (None: its generation's); recorded with the
    code as it was and became."""
    return await _update(
        conn,
        actor=actor,
        code=code,
        now=now,
        change=lambda: service.set_cancel_policy(
            conn, code, reusable_after_cancel=reusable_after_cancel
        ),
    )


async def delete_promocode(
    conn: AsyncConnection, *, actor: Principal, code: str, now: datetime
) -> None:
    """Delete the code; recorded with what it was (uses left, its generation's terms)."""
    before = await service.get_promocode(conn, code, for_update=True)
    await service.delete_promocode(conn, code)
    await audit.record(
        conn,
        actor=actor,
        action="promocode.delete",
        target_type="promocode",
        target_id=code,
        before=before,
        at=now,
    )


async def rollback_redemption(
    conn: AsyncConnection, *, actor: Principal, redemption_id: int, now: datetime
) -> Redemption:
    """Roll a redemption back by hand (the console): audited, unlike checkout's own rollback,
    because a person gave a use back."""
    done = await service.rollback(conn, redemption_id=redemption_id, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="promocode_redemption.rollback",
        target_type="promocode_redemption",
        target_id=redemption_id,
        after=done,
        at=now,
    )
    return done
