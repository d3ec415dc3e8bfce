"""Changes to specials and upgrade programs, each with its audit row in the same transaction.

The native routes and the Promos seed's CRUD routes make them alike, through these.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.catalog import service
from promos.catalog.service import Special, SpecialSpec, UpgradeProgram, UpgradeProgramSpec


async def create_special(
    conn: AsyncConnection, *, actor: Principal, spec: SpecialSpec, now: datetime
) -> Special:
    """A new special, recorded as ``special.create``."""
    made = await service.create_special(conn, spec=spec, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="special.create",
        target_type="special",
        target_id=made.id,
        after=made,
        at=now,
    )
    return made


async def update_special(
    conn: AsyncConnection, *, actor: Principal, special_id: int, spec: SpecialSpec, now: datetime
) -> Special:
    """Replace the special's fields; recorded with the special as it was and became."""
    before = await service.get_special(conn, special_id, for_update=True)
    done = await service.update_special(conn, special_id=special_id, spec=spec, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="special.update",
        target_type="special",
        target_id=special_id,
        before=before,
        after=done,
        at=now,
    )
    return done


async def delete_special(
    conn: AsyncConnection, *, actor: Principal, special_id: int, now: datetime
) -> None:
    """Delete the special; recorded with what it was."""
    before = await service.get_special(conn, special_id, for_update=True)
    await service.delete_special(conn, special_id)
    await audit.record(
        conn,
        actor=actor,
        action="special.delete",
        target_type="special",
        target_id=special_id,
        before=before,
        at=now,
    )


async def create_upgrade_program(
    conn: AsyncConnection, *, actor: Principal, spec: UpgradeProgramSpec, now: datetime
) -> UpgradeProgram:
    """A new upgrade program, recorded as ``upgrade_program.create``."""
    made = await service.create_upgrade_program(conn, spec=spec, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="upgrade_program.create",
        target_type="upgrade_program",
        target_id=made.id,
        after=made,
        at=now,
    )
    return made


async def update_upgrade_program(
    conn: AsyncConnection,
    *,
    actor: Principal,
    program_id: int,
    spec: UpgradeProgramSpec,
    now: datetime,
) -> UpgradeProgram:
    """Replace the program's fields; recorded with the program as it was and became."""
    before = await service.get_upgrade_program(conn, program_id, for_update=True)
    done = await service.update_upgrade_program(conn, program_id=program_id, spec=spec, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="upgrade_program.update",
        target_type="upgrade_program",
        target_id=program_id,
        before=before,
        after=done,
        at=now,
    )
    return done


async def delete_upgrade_program(
    conn: AsyncConnection, *, actor: Principal, program_id: int, now: datetime
) -> None:
    """Delete the upgrade program; recorded with what it was."""
    before = await service.get_upgrade_program(conn, program_id, for_update=True)
    await service.delete_upgrade_program(conn, program_id)
    await audit.record(
        conn,
        actor=actor,
        action="upgrade_program.delete",
        target_type="upgrade_program",
        target_id=program_id,
        before=before,
        at=now,
    )
