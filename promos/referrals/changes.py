"""Changes to referral programs, each with its audit row in the same transaction.

The native routes and the referral seed's routes make them alike, through these. Referred
sign-ups, invoices and e-mail invitations are the programs' traffic, not management: they
are recorded by the credits ledger and the outbox, not the audit log.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth.service import Principal
from promos.referrals import service
from promos.referrals.service import Program


async def create_program(
    conn: AsyncConnection,
    *,
    actor: Principal,
    name: str,
    credit_value: Decimal,
    target_value: Decimal,
    reward_hold_days: int = 0,
    now: datetime,
) -> Program:
    """A new program, recorded as ``referral_program.create``."""
    program = await service.create_program(
        conn,
        name=name,
        credit_value=credit_value,
        target_value=target_value,
        reward_hold_days=reward_hold_days,
        now=now,
    )
    await audit.record(
        conn,
        actor=actor,
        action="referral_program.create",
        target_type="referral_program",
        target_id=program.id,
        after=program,
        at=now,
    )
    return program


async def update_program(
    conn: AsyncConnection,
    program_id: int,
    *,
    actor: Principal,
    name: str | None,
    credit_value: Decimal | None,
    target_value: Decimal | None,
    reward_hold_days: int | None = None,
    now: datetime,
) -> Program:
    """Change the fields given; recorded with the program as it was and became."""
    before = await service.get_program(conn, program_id, for_update=True)
    program = await service.update_program(
        conn,
        program_id,
        name=name,
        credit_value=credit_value,
        target_value=target_value,
        reward_hold_days=reward_hold_days,
        now=now,
    )
    await audit.record(
        conn,
        actor=actor,
        action="referral_program.update",
        target_type="referral_program",
        target_id=program_id,
        before=before,
        after=program,
        at=now,
    )
    return program


async def delete_program(
    conn: AsyncConnection, program_id: int, *, actor: Principal, now: datetime
) -> None:
    """Delete a program without referrals; recorded with what it was."""
    before = await service.get_program(conn, program_id, for_update=True)
    await service.delete_program(conn, program_id)
    await audit.record(
        conn,
        actor=actor,
        action="referral_program.delete",
        target_type="referral_program",
        target_id=program_id,
        before=before,
        at=now,
    )
