"""Referral programs, registrations, payments and the referrer's reward, statements, e-mails.

The rule that must never break: the referrer earns a referred user's reward once, and a
refund takes it back once. It is earned by one conditional statement (``UPDATE referrals ...
WHERE rewarded_at IS NULL AND target_value <= :paid RETURNING``): of concurrent invoices, the
first one to reach the row earns it, and the others find it earned (PostgreSQL re-checks the
condition on the row the winner committed); a refund that takes the total below the target
reverses it by the same kind of statement (``WHERE reversed_at IS NULL``). The ledger's
unique ``(referral_id, kind)`` backs both up.

A program may hold rewards for ``reward_hold_days``: an earned reward is *pending* until
``granted_at`` and *granted* from then on. Nothing has to run for that: the state is read
from the clock (``reward_state``), the ledger's ``acquired`` entry is available from
``granted_at``, and the ``referral.rewarded`` event and the billing callback are written when
the reward is earned, due at ``granted_at`` in the outbox (a void cancels them).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from sqlalchemy import case, delete, exists, func, literal, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.db import MAX_MONEY, MONEY_QUANTUM, Money, UTCDateTime, after_commit, insert_for
from promos.errors import InvalidInput
from promos.events import service as events
from promos.observability import metrics
from promos.pagination import Key, Page, after, read_page
from promos.referrals.errors import (
    AlreadyReferred,
    EmailTaken,
    InvalidEmail,
    NoProgram,
    ProgramInUse,
    ProgramNotFound,
    ReferralUserNotFound,
    RefundKeyReused,
    SelfReferral,
)
from promos.referrals.tables import (
    email_indications,
    referral_credits,
    referral_programs,
    referral_refunds,
    referrals,
)
from promos.validation import HIDDEN, SURROGATES

SIGNED_UP = "referral.signed_up"
REWARDED = "referral.rewarded"
REWARD_PENDING = "referral.reward_pending"
REWARD_REVERSED = "referral.reward_reversed"
MAX_HOLD_DAYS = 3650
MAX_EMAILS = 1000
MAX_EMAIL_LENGTH = 320
_NOT_IN_EMAIL = rf"@\s{HIDDEN}{SURROGATES},;<>"
_EMAIL = re.compile(rf"[^{_NOT_IN_EMAIL}]+@[^{_NOT_IN_EMAIL}]+\.[^{_NOT_IN_EMAIL}.]+")
ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Program:
    id: int
    name: str
    credit_value: Decimal
    target_value: Decimal
    created_at: datetime
    updated_at: datetime
    reward_hold_days: int = 0


@dataclass(frozen=True, slots=True)
class Referral:
    id: int
    program: Program
    referrer: str
    referred: str
    credit_value: Decimal
    target_value: Decimal
    total_amount_paid: Decimal
    rewarded_at: datetime | None
    created_at: datetime
    reward_hold_days: int = 0
    granted_at: datetime | None = None
    reversed_at: datetime | None = None

    def reward_state(self, now: datetime) -> str:
        """``waiting`` (target not reached), ``pending``, ``granted``, ``voided`` (reversed
        while pending) or ``reversed`` (clawed back once granted), at ``now``."""
        if self.rewarded_at is None or self.granted_at is None:
            return "waiting"
        if self.reversed_at is not None:
            return "voided" if self.reversed_at < self.granted_at else "reversed"
        return "pending" if now < self.granted_at else "granted"


@dataclass(frozen=True, slots=True)
class Registration:
    referral: Referral
    created: bool


@dataclass(frozen=True, slots=True)
class Payment:
    """What an invoice did: the referrer's credit it acquired (0 unless this one granted it)."""

    user_hash: str
    total_amount_paid: Decimal | None
    acquired_credit: Decimal
    referral: Referral | None
    # The reward this payment earned but the program holds (0 when granted at once).
    pending_credit: Decimal = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Refund:
    """What a refund did: the total after it, and the reward it reversed (``voided`` while
    pending, ``clawback`` once granted), if it took the total below the target."""

    id: int
    user_hash: str
    total_amount_paid: Decimal
    reversal: str | None
    reversed_credit: Decimal
    referral: Referral


@dataclass(frozen=True, slots=True)
class Statement:
    user_hash: str
    signup_credit: Decimal
    potential_credit: Decimal
    acquired_credit: Decimal
    referred_by: str | None
    referrals: int
    program: Program
    # The part of potential_credit earned but held (granted at its hold's end).
    pending_credit: Decimal = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Credit:
    id: int
    referral_id: int
    user_hash: str
    kind: str
    amount: Decimal
    created_at: datetime
    available_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Indication:
    referrer: str
    saved: list[str]
    taken: list[str]


def money(name: str, value: Decimal, *, positive: bool = False) -> Decimal:
    """An amount as stored: two decimal places at most, from 0 (or above 0), below a billion."""
    if not value.is_finite():
        raise InvalidInput(f"{name} must be a number")
    if value != value.quantize(MONEY_QUANTUM):
        raise InvalidInput(f"{name} has more than two decimal places")
    if value < 0 or (positive and value == 0) or value >= MAX_MONEY:
        low = "above 0" if positive else "from 0"
        raise InvalidInput(f"{name} must be {low} and below {MAX_MONEY}")
    return value.quantize(MONEY_QUANTUM)


# --- programs --------------------------------------------------------------------------------

_PROGRAM_COLUMNS = (
    referral_programs.c.id,
    referral_programs.c.name,
    referral_programs.c.credit_value,
    referral_programs.c.target_value,
    referral_programs.c.created_at,
    referral_programs.c.updated_at,
    referral_programs.c.reward_hold_days,
)


def hold_days(value: int) -> int:
    """A reward hold in days: 0 (granted at once) to ten years."""
    if not 0 <= value <= MAX_HOLD_DAYS:
        raise InvalidInput(f"reward_hold_days must be from 0 to {MAX_HOLD_DAYS}")
    return value


def _program_of(row: Any) -> Program:
    return Program(*row)


async def create_program(
    conn: AsyncConnection,
    *,
    name: str,
    credit_value: Decimal,
    target_value: Decimal,
    reward_hold_days: int = 0,
    now: datetime,
) -> Program:
    credit = money("credit_value", credit_value)
    target = money("target_value", target_value, positive=True)
    hold = hold_days(reward_hold_days)
    program_id: int = (
        await conn.execute(
            referral_programs.insert()
            .values(
                name=name,
                credit_value=credit,
                target_value=target,
                reward_hold_days=hold,
                created_at=now,
                updated_at=now,
            )
            .returning(referral_programs.c.id)
        )
    ).scalar_one()
    return Program(program_id, name, credit, target, now, now, hold)


async def list_programs(
    conn: AsyncConnection, *, limit: int | None = None, offset: int = 0
) -> list[Program]:
    """Programs, oldest first."""
    query = select(*_PROGRAM_COLUMNS).order_by(referral_programs.c.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [_program_of(row) for row in await conn.execute(query)]


async def programs_page(
    conn: AsyncConnection,
    *,
    limit: int,
    after_key: Key | None = None,
    only: Collection[int] | None = None,
) -> Page[Program]:
    """Programs, oldest first: a page after ``after_key`` (id); ``only`` these, if given."""
    query = (
        select(*_PROGRAM_COLUMNS)
        .order_by(referral_programs.c.id)
        .where(after((referral_programs.c.id,), after_key))
    )
    if only is not None:
        query = query.where(referral_programs.c.id.in_(sorted(only)))
    return await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=_program_of)


async def get_program(
    conn: AsyncConnection, program_id: int, *, for_update: bool = False
) -> Program:
    """The program; ``for_update`` locks its row until the transaction ends (PostgreSQL)."""
    query = select(*_PROGRAM_COLUMNS).where(referral_programs.c.id == program_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise ProgramNotFound(f"referral program {program_id} does not exist")
    return _program_of(row)


async def default_program(conn: AsyncConnection) -> Program:
    """The program of a registration that names none: the oldest one."""
    programs = await list_programs(conn, limit=1)
    if not programs:
        raise NoProgram("there is no referral program yet: create one first")
    return programs[0]


async def update_program(
    conn: AsyncConnection,
    program_id: int,
    *,
    name: str | None = None,
    credit_value: Decimal | None = None,
    target_value: Decimal | None = None,
    reward_hold_days: int | None = None,
    now: datetime,
) -> Program:
    """Change a program's terms, for referrals made from now on (earlier ones keep theirs)."""
    values: dict[str, Any] = {"updated_at": now}
    if name is not None:
        values["name"] = name
    if credit_value is not None:
        values["credit_value"] = money("credit_value", credit_value)
    if target_value is not None:
        values["target_value"] = money("target_value", target_value, positive=True)
    if reward_hold_days is not None:
        values["reward_hold_days"] = hold_days(reward_hold_days)
    result = await conn.execute(
        update(referral_programs).where(referral_programs.c.id == program_id).values(**values)
    )
    if result.rowcount == 0:
        raise ProgramNotFound(f"referral program {program_id} does not exist")
    return await get_program(conn, program_id)


async def delete_program(conn: AsyncConnection, program_id: int) -> None:
    """Delete a program that no referral was made under."""
    used = (
        await conn.execute(select(exists().where(referrals.c.program_id == program_id)))
    ).scalar_one()
    if used:
        raise ProgramInUse(f"referral program {program_id} has referrals: it cannot be deleted")
    try:
        async with conn.begin_nested():
            result = await conn.execute(
                delete(referral_programs).where(referral_programs.c.id == program_id)
            )
    except IntegrityError:
        # A referral was registered under it meanwhile.
        raise ProgramInUse(
            f"referral program {program_id} has referrals: it cannot be deleted"
        ) from None
    if result.rowcount == 0:
        raise ProgramNotFound(f"referral program {program_id} does not exist")


# --- referrals -------------------------------------------------------------------------------

_REFERRAL_COLUMNS = (
    referrals.c.id,
    referrals.c.program_id,
    referrals.c.referrer_hash,
    referrals.c.referred_hash,
    referrals.c.credit_value,
    referrals.c.target_value,
    referrals.c.total_amount_paid,
    referrals.c.rewarded_at,
    referrals.c.created_at,
    referrals.c.reward_hold_days,
    referrals.c.granted_at,
    referrals.c.reversed_at,
    referrals.c.reward_event_id,
)


async def _referral_of(conn: AsyncConnection, row: Any) -> Referral:
    return _referral_with(row, await get_program(conn, row.program_id))


async def get_referral(conn: AsyncConnection, referred: str) -> Referral:
    """The referral that brought ``referred`` in."""
    row = (
        await conn.execute(select(*_REFERRAL_COLUMNS).where(referrals.c.referred_hash == referred))
    ).first()
    if row is None:
        raise ReferralUserNotFound(f"user {referred} was not referred")
    return await _referral_of(conn, row)


async def referrals_made(
    conn: AsyncConnection, referrer: str, *, limit: int, after_key: Key | None = None
) -> Page[Referral]:
    """The users ``referrer`` brought in, in the order they signed up: a page after
    ``after_key`` (id), through ``ix_referrals_referrer``."""
    query = (
        select(*_REFERRAL_COLUMNS)
        .where(referrals.c.referrer_hash == referrer, after((referrals.c.id,), after_key))
        .order_by(referrals.c.id)
    )
    rows = (await conn.execute(query.limit(limit + 1))).all()
    programs = {
        p.id: p for p in await _programs_by_id(conn, {row.program_id for row in rows[:limit]})
    }
    items = [_referral_with(row, programs[row.program_id]) for row in rows[:limit]]
    return Page(items, (rows[limit - 1].id,) if len(rows) > limit else None)


async def _programs_by_id(conn: AsyncConnection, ids: set[int]) -> list[Program]:
    if not ids:
        return []
    query = select(*_PROGRAM_COLUMNS).where(referral_programs.c.id.in_(ids))
    return [_program_of(row) for row in await conn.execute(query)]


def _referral_with(row: Any, program: Program) -> Referral:
    return Referral(
        id=row.id,
        program=program,
        referrer=row.referrer_hash,
        referred=row.referred_hash,
        credit_value=row.credit_value,
        target_value=row.target_value,
        total_amount_paid=row.total_amount_paid,
        rewarded_at=row.rewarded_at,
        created_at=row.created_at,
        reward_hold_days=row.reward_hold_days,
        granted_at=row.granted_at,
        reversed_at=row.reversed_at,
    )


def callback_url(template: str, user_hash: str) -> str:
    """The billing callback's URL for a user: the configured URL with ``%s`` = the hash."""
    return template.replace("%s", quote(user_hash, safe=""))


async def register(
    conn: AsyncConnection,
    *,
    referrer: str,
    referred: str,
    program_id: int | None = None,
    now: datetime,
    callback: str | None = None,
) -> Registration:
    """Record that ``referrer`` brought ``referred`` in, and credit ``referred``'s sign-up.

    A user is referred once: registering the same pair again returns the first registration
    (``created=False``) and credits nothing; another referrer (or program) is refused.
    """
    if referrer == referred:
        raise SelfReferral("a user cannot refer themselves")
    program = (
        await get_program(conn, program_id)
        if program_id is not None
        else await default_program(conn)
    )
    insert = insert_for(conn)
    new_id = (
        await conn.execute(
            insert(referrals)
            .values(
                program_id=program.id,
                referrer_hash=referrer,
                referred_hash=referred,
                credit_value=program.credit_value,
                target_value=program.target_value,
                reward_hold_days=program.reward_hold_days,
                total_amount_paid=ZERO,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["referred_hash"])
            .returning(referrals.c.id)
        )
    ).scalar_one_or_none()
    if new_id is None:
        existing = await get_referral(conn, referred)
        same_program = program_id is None or existing.program.id == program_id
        if existing.referrer == referrer and same_program:
            return Registration(existing, created=False)
        raise AlreadyReferred(f"user {referred} was already referred by another registration")
    await conn.execute(
        referral_credits.insert(),
        [
            {
                "referral_id": new_id,
                "user_hash": referred,
                "kind": "signup",
                "amount": program.credit_value,
                "created_at": now,
            },
            {
                "referral_id": new_id,
                "user_hash": referrer,
                "kind": "potential",
                "amount": program.target_value,
                "created_at": now,
            },
        ],
    )
    referral = Referral(
        id=new_id,
        program=program,
        referrer=referrer,
        referred=referred,
        credit_value=program.credit_value,
        target_value=program.target_value,
        total_amount_paid=ZERO,
        rewarded_at=None,
        created_at=now,
        reward_hold_days=program.reward_hold_days,
    )
    event_id = await events.emit(conn, SIGNED_UP, _event_payload(referral), now=now)
    if callback:
        await events.enqueue_callback(
            conn,
            event_id=event_id,
            event_type=SIGNED_UP,
            url=callback_url(callback, referred),
            form=_callback_form(program.credit_value, program.name, referrer),
            now=now,
        )
    return Registration(referral, created=True)


def _event_payload(referral: Referral, **extra: Any) -> dict[str, Any]:
    return {
        "referral_id": referral.id,
        "program_id": referral.program.id,
        "program_name": referral.program.name,
        "referrer": referral.referrer,
        "referred": referral.referred,
        "credit_value": referral.credit_value,
        "target_value": referral.target_value,
        **extra,
    }


def _callback_form(amount: Decimal, program_name: str, referrer: str) -> dict[str, str]:
    return {"amount": str(amount), "program_name": program_name, "user_indicator_hash": referrer}


async def record_payment(
    conn: AsyncConnection,
    *,
    user_hash: str,
    total_amount_paid: Decimal,
    now: datetime,
    callback: str | None = None,
) -> Payment:
    """The referred user has paid ``total_amount_paid`` so far; reward the referrer once
    (pending for the program's hold, then granted).

    The running total only grows: an older, smaller total arriving late changes nothing.
    A user who was not referred but referred others has nothing to earn here (0).
    """
    paid = money("total_amount_paid", total_amount_paid)
    paid_param = literal(paid, Money())
    greatest = case(
        (referrals.c.total_amount_paid < paid_param, paid_param),
        else_=referrals.c.total_amount_paid,
    )
    # The first payment of anything is kept (the program's funnel); a total of 0 is none.
    first_paid = (
        func.coalesce(referrals.c.first_paid_at, literal(now, UTCDateTime()))
        if paid > 0
        else referrals.c.first_paid_at
    )
    earned = (
        await conn.execute(
            update(referrals)
            .where(
                referrals.c.referred_hash == user_hash,
                referrals.c.rewarded_at.is_(None),
                referrals.c.target_value <= paid_param,
            )
            .values(
                rewarded_at=now,
                total_amount_paid=greatest,
                first_paid_at=first_paid,
            )
            .returning(*_REFERRAL_COLUMNS)
        )
    ).first()
    if earned is not None:
        found = await _referral_of(conn, earned)
        # The hold is the referral's own term, fixed at registration: set in the same
        # transaction, by _reward, with the ledger entry and the events.
        referral = replace(found, granted_at=now + timedelta(days=found.reward_hold_days))
        await _reward(conn, referral, now=now, callback=callback)
        # The one statement that earns it said so; counted once the caller has committed.
        after_commit(conn, metrics.REFERRAL_REWARDS.inc)
        if referral.reward_state(now) == "pending":
            held = referral.target_value
            return Payment(user_hash, referral.total_amount_paid, ZERO, referral, held)
        return Payment(user_hash, referral.total_amount_paid, referral.target_value, referral)
    recorded = (
        await conn.execute(
            update(referrals)
            .where(referrals.c.referred_hash == user_hash)
            .values(total_amount_paid=greatest, first_paid_at=first_paid)
            .returning(*_REFERRAL_COLUMNS)
        )
    ).first()
    if recorded is not None:
        referral = await _referral_of(conn, recorded)
        return Payment(user_hash, referral.total_amount_paid, ZERO, referral)
    if not await is_known(conn, user_hash):
        raise ReferralUserNotFound(f"user {user_hash} is unknown to the referral program")
    return Payment(user_hash, None, ZERO, None)


async def _reward(
    conn: AsyncConnection, referral: Referral, *, now: datetime, callback: str | None
) -> None:
    """Credit the earned reward (available at the hold's end) and write its events: pending
    now if held, ``referral.rewarded`` and the billing callback due when granted."""
    granted_at = referral.granted_at or now
    await conn.execute(
        referral_credits.insert().values(
            referral_id=referral.id,
            user_hash=referral.referrer,
            kind="acquired",
            amount=referral.target_value,
            created_at=now,
            available_at=granted_at,
        )
    )
    payload = _event_payload(
        referral,
        amount=referral.target_value,
        total_amount_paid=referral.total_amount_paid,
        granted_at=granted_at,
    )
    if granted_at > now:
        await events.emit(conn, REWARD_PENDING, payload, now=now)
    event_id = await events.emit(conn, REWARDED, payload, now=now)
    if callback:
        await events.enqueue_callback(
            conn,
            event_id=event_id,
            event_type=REWARDED,
            url=callback_url(callback, referral.referrer),
            form=_callback_form(referral.target_value, referral.program.name, referral.referrer),
            now=now,
        )
    if granted_at > now:
        # Due at the grant: the dispatcher, which runs anyway, delivers it then.
        await events.defer_deliveries(conn, event_id, until=granted_at)
    await conn.execute(
        update(referrals)
        .where(referrals.c.id == referral.id)
        .values(granted_at=granted_at, reward_event_id=event_id)
    )


async def record_refund(
    conn: AsyncConnection,
    *,
    user_hash: str,
    amount: Decimal,
    now: datetime,
    idempotency_key: str | None = None,
) -> Refund:
    """A refund to the referred user: their total goes down (never below 0); below the target,
    it voids a pending reward or claws a granted one back, once. A retry with the same
    ``idempotency_key`` returns the first refund's answer and changes nothing."""
    refunded = money("amount", amount, positive=True)
    # An update that changes nothing, to lock the row first (and, on SQLite, make this the
    # writer): the reward cannot be earned between reading the row and lowering its total.
    locked = (
        await conn.execute(
            update(referrals)
            .where(referrals.c.referred_hash == user_hash)
            .values(total_amount_paid=referrals.c.total_amount_paid)
            .returning(*_REFERRAL_COLUMNS)
        )
    ).first()
    if locked is None:
        raise ReferralUserNotFound(f"user {user_hash} was not referred")
    if idempotency_key is not None:
        # Under the row's lock: a retry racing its first try reads it once that commits.
        first = (
            await conn.execute(
                select(referral_refunds).where(
                    referral_refunds.c.referral_id == locked.id,
                    referral_refunds.c.idempotency_key == idempotency_key,
                )
            )
        ).first()
        if first is not None:
            if first.amount != refunded:
                raise RefundKeyReused(
                    f"Idempotency-Key {idempotency_key!r} was sent with a refund of "
                    f"{first.amount}, not {refunded}: use a new key for another refund"
                )
            return await _refund_as_recorded(conn, first, locked, user_hash)
    total = max(locked.total_amount_paid - refunded, ZERO)
    reverses = (
        locked.rewarded_at is not None
        and locked.reversed_at is None
        and total < locked.target_value
    )
    values: dict[str, Any] = {"total_amount_paid": total}
    if reverses:
        values["reversed_at"] = now
    row = (
        await conn.execute(
            update(referrals)
            .where(referrals.c.id == locked.id)
            .values(**values)
            .returning(*_REFERRAL_COLUMNS)
        )
    ).one()
    referral = await _referral_of(conn, row)
    reversal = (
        await _reverse(conn, referral, event_id=row.reward_event_id, now=now) if reverses else None
    )
    refund_id = (
        await conn.execute(
            referral_refunds.insert()
            .values(
                referral_id=referral.id,
                amount=refunded,
                total_after=total,
                reversal=reversal,
                idempotency_key=idempotency_key,
                created_at=now,
            )
            .returning(referral_refunds.c.id)
        )
    ).scalar_one()
    credit = referral.target_value if reversal else ZERO
    return Refund(refund_id, user_hash, total, reversal, credit, referral)


async def _refund_as_recorded(
    conn: AsyncConnection, first: Row[Any], locked: Row[Any], user_hash: str
) -> Refund:
    """The first answer of a refund sent again with its key (the referral as it is now)."""
    referral = await _referral_of(conn, locked)
    credit = referral.target_value if first.reversal else ZERO
    return Refund(first.id, user_hash, first.total_after, first.reversal, credit, referral)


async def _reverse(
    conn: AsyncConnection, referral: Referral, *, event_id: int | None, now: datetime
) -> str:
    """Void the pending reward (its due deliveries cancelled) or claw the granted one back."""
    granted_at = referral.granted_at or now
    kind = "voided" if now < granted_at else "clawback"
    await conn.execute(
        referral_credits.insert().values(
            referral_id=referral.id,
            user_hash=referral.referrer,
            kind=kind,
            amount=referral.target_value,
            created_at=now,
            # A void takes the reward back where it would have been granted.
            available_at=granted_at if kind == "voided" else now,
        )
    )
    if kind == "voided" and event_id is not None:
        await events.cancel_deliveries(conn, event_id)
    payload = _event_payload(
        referral,
        amount=referral.target_value,
        total_amount_paid=referral.total_amount_paid,
        reversal=kind,
        reversed_at=now,
    )
    await events.emit(conn, REWARD_REVERSED, payload, now=now)
    return kind


async def is_known(conn: AsyncConnection, user_hash: str) -> bool:
    """Whether the user referred somebody or was referred."""
    known = exists().where(
        or_(referrals.c.referrer_hash == user_hash, referrals.c.referred_hash == user_hash)
    )
    return bool((await conn.execute(select(known))).scalar_one())


# --- statements and the ledger ---------------------------------------------------------------


async def statement(conn: AsyncConnection, user_hash: str, *, now: datetime) -> Statement:
    """A user's credits at ``now``, computed from the ledger: sign-up, potential (not granted
    yet: waiting for the target, or pending), pending, acquired (granted, less clawbacks);
    and their program (the one they were referred in, else their first referral's).
    """
    own = (
        await conn.execute(
            select(referrals.c.program_id, referrals.c.referrer_hash).where(
                referrals.c.referred_hash == user_hash
            )
        )
    ).first()
    first_made = (
        await conn.execute(
            select(referrals.c.program_id, func.count().over())
            .where(referrals.c.referrer_hash == user_hash)
            .order_by(referrals.c.id)
            .limit(1)
        )
    ).first()
    source = own or first_made
    if source is None:
        raise ReferralUserNotFound(f"user {user_hash} is unknown to the referral program")
    c = referral_credits.c
    available = func.coalesce(c.available_at, c.created_at) <= literal(now, UTCDateTime())
    sums = {
        (kind, bool(is_available)): _amount(total)
        for kind, is_available, total in (
            await conn.execute(
                select(
                    c.kind,
                    case((available, 1), else_=0).label("available"),
                    func.coalesce(func.sum(c.amount), ZERO).label("total"),
                )
                .where(c.user_hash == user_hash)
                .group_by(c.kind, "available")
            )
        ).all()
    }

    def total(kind: str, *, available: bool | None = None) -> Decimal:
        if available is None:
            return sums.get((kind, True), ZERO) + sums.get((kind, False), ZERO)
        return sums.get((kind, available), ZERO)

    # A void carries its reward's grant time: both sides of it cancel out, before and after.
    pending = total("acquired", available=False) - total("voided", available=False)
    granted = total("acquired", available=True) - total("voided", available=True)
    return Statement(
        user_hash=user_hash,
        signup_credit=total("signup"),
        potential_credit=total("potential") - total("acquired") + pending,
        acquired_credit=granted - total("clawback"),
        referred_by=own.referrer_hash if own is not None else None,
        referrals=int(first_made[1]) if first_made is not None else 0,
        program=await get_program(conn, source.program_id),
        pending_credit=pending,
    )


def _amount(value: Any) -> Decimal:
    if value is None:
        return ZERO
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    return exact.quantize(MONEY_QUANTUM)


async def list_credits(
    conn: AsyncConnection, user_hash: str, *, limit: int, after_key: Key | None = None
) -> Page[Credit]:
    """A user's ledger entries, oldest first: a page after ``after_key`` (id)."""
    if not await is_known(conn, user_hash):
        raise ReferralUserNotFound(f"user {user_hash} is unknown to the referral program")
    query = (
        select(
            referral_credits.c.id,
            referral_credits.c.referral_id,
            referral_credits.c.user_hash,
            referral_credits.c.kind,
            referral_credits.c.amount,
            referral_credits.c.created_at,
            referral_credits.c.available_at,
        )
        .where(
            referral_credits.c.user_hash == user_hash,
            after((referral_credits.c.id,), after_key),
        )
        .order_by(referral_credits.c.id)
    )
    return await read_page(
        conn, query, limit=limit, key=lambda row: (row.id,), item=lambda row: Credit(*row)
    )


# --- e-mail indications ----------------------------------------------------------------------


def parse_emails(raw: str) -> list[str]:
    """Comma-separated addresses, trimmed and lower-cased, each once, in order."""
    found: list[str] = []
    for part in raw.split(","):
        email = part.strip().lower()
        if not email:
            continue
        if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email):
            raise InvalidEmail(
                f"{email[:100]!r} is not an e-mail address", details={"email": email[:100]}
            )
        if email not in found:
            found.append(email)
    if not found:
        raise InvalidEmail("emails must list one or more e-mail addresses, separated by commas")
    if len(found) > MAX_EMAILS:
        raise InvalidEmail(f"at most {MAX_EMAILS} e-mail addresses at a time")
    return found


async def indicate_emails(
    conn: AsyncConnection, *, referrer: str, emails: list[str], now: datetime
) -> Indication:
    """Record the referrer's invitations; an address another referrer indicated stays theirs.

    An address verified as the referrer's own (they were referred with it) is refused.
    """
    own = (
        await conn.execute(
            select(email_indications.c.email).where(
                email_indications.c.email.in_(emails),
                email_indications.c.verified_for == referrer,
            )
        )
    ).scalar()
    if own is not None:
        raise SelfReferral(
            f"{own} is {referrer}'s own address: a user cannot refer themselves",
            details={"email": own},
        )
    insert = insert_for(conn)
    await conn.execute(
        insert(email_indications).on_conflict_do_nothing(index_elements=["email"]),
        [{"email": e, "referrer_hash": referrer, "created_at": now} for e in emails],
    )
    owners = dict(
        (
            await conn.execute(
                select(email_indications.c.email, email_indications.c.referrer_hash).where(
                    email_indications.c.email.in_(emails)
                )
            )
        ).all()
    )
    return Indication(
        referrer=referrer,
        saved=[e for e in emails if owners.get(e) == referrer],
        taken=[e for e in emails if owners.get(e) != referrer],
    )


async def verify_emails(
    conn: AsyncConnection, emails: list[str], *, now: datetime, user: str | None = None
) -> list[tuple[str, str]]:
    """``(email, referrer)`` of each address that was indicated, in the order asked; the
    first time an address is asked about is kept as its verification.

    With ``user`` (the referred user whose addresses they are), each indicated address is
    verified for that user: one user per address, and never the referrer's own.
    """
    if user is not None:
        await _verify_for(conn, emails, user)
    await conn.execute(
        update(email_indications)
        .where(email_indications.c.email.in_(emails), email_indications.c.verified_at.is_(None))
        .values(verified_at=now)
    )
    owners = dict(
        (
            await conn.execute(
                select(email_indications.c.email, email_indications.c.referrer_hash).where(
                    email_indications.c.email.in_(emails)
                )
            )
        ).all()
    )
    return [(e, owners[e]) for e in emails if e in owners]


async def _verify_for(conn: AsyncConnection, emails: list[str], user: str) -> None:
    e = email_indications.c
    # Conditional, so that of two users verifying one address at once only one gets it
    # (PostgreSQL re-checks the condition on the row the first one committed).
    await conn.execute(
        update(email_indications)
        .where(e.email.in_(emails), e.verified_for.is_(None), e.referrer_hash != user)
        .values(verified_for=user)
    )
    rows = (
        await conn.execute(
            select(e.email, e.referrer_hash, e.verified_for).where(e.email.in_(emails))
        )
    ).all()
    for row in sorted(rows, key=lambda r: emails.index(r.email)):
        if row.referrer_hash == user:
            raise SelfReferral(
                f"{user} indicated {row.email} themselves: a user cannot refer themselves",
                details={"email": row.email},
            )
        if row.verified_for != user:
            raise EmailTaken(
                f"{row.email} was verified for another user already",
                details={"email": row.email},
            )


@dataclass(frozen=True, slots=True)
class Invitation:
    email: str
    referrer: str
    created_at: datetime
    verified_at: datetime | None


async def invitations_page(
    conn: AsyncConnection,
    *,
    referrer: str | None = None,
    verified: bool | None = None,
    limit: int,
    after_key: Key | None = None,
) -> Page[Invitation]:
    """E-mail invitations, newest first (all, or one referrer's; verified or not): a page
    after ``after_key`` (created at, e-mail)."""
    e = email_indications.c
    query = (
        select(e.email, e.referrer_hash, e.created_at, e.verified_at)
        .where(after((e.created_at, e.email), after_key, descending=True))
        .order_by(e.created_at.desc(), e.email.desc())
    )
    if referrer is not None:
        query = query.where(e.referrer_hash == referrer)
    if verified is not None:
        query = query.where(e.verified_at.is_not(None) if verified else e.verified_at.is_(None))
    return await read_page(
        conn,
        query,
        limit=limit,
        key=lambda row: (row.created_at, row.email),
        item=lambda row: Invitation(*row),
    )
