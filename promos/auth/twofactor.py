"""Two-factor sign-in for people: TOTP (RFC 6238, 30-second steps, 6 digits) and recovery codes.

A user enrols in two steps: ``start`` (a new secret, pending) and ``confirm`` (a current code:
then it is asked for at every sign-in, and ten recovery codes are handed out, once). A code is
accepted once: the last time step used is stored, and a code of that step or an earlier one is
refused, whichever way it is sent. A recovery code works once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pyotp
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.auth.errors import InvalidSecondFactor, SecondFactorRequired
from promos.auth.tables import auth_settings, user_recovery_codes, user_totp

ISSUER = "Promos"
STEP_SECONDS = 30
DIGITS = 6
# Codes of the step before and after the current one are accepted too: clocks drift, and
# typing a code takes time.
WINDOW = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # base32: 5 bits a character
_RECOVERY_LENGTH = 16  # 80 bits
REQUIRE_FOR_ADMINS = "require_two_factor_for_admins"
# The routes an admin's credential opens while they must enrol and have not (the method and
# path template): who they are, their own two-factor enrolment, their password, signing out.
ENROL_ROUTES = frozenset(
    {
        ("GET", "/v1/auth/me"),
        ("DELETE", "/v1/auth/tokens/current"),
        ("PUT", "/v1/auth/password"),
        ("GET", "/v1/auth/two-factor"),
        ("POST", "/v1/auth/two-factor"),
        ("POST", "/v1/auth/two-factor/confirm"),
    }
)

Factor = Literal["totp", "recovery"]


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A pending enrolment: the secret (for typing it in) and its otpauth:// URI (a QR code)."""

    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class Status:
    """A user's two-factor sign-in: on, pending confirmation, and how many recovery codes
    are left unused."""

    enabled: bool
    pending: bool
    recovery_codes_left: int


def step_of(now: datetime) -> int:
    """The TOTP time step (RFC 6238's T) that ``now`` falls in."""
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    """The code of ``secret`` for the time step ``step``."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def _is_totp(otp: str) -> bool:
    return len(otp) == DIGITS and otp.isascii() and otp.isdigit()


def _recovery_digest(code: str) -> str:
    # Typed with or without its dashes, in either case.
    normal = "".join(code.split()).replace("-", "").lower()
    return hashlib.sha256(normal.encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4))


async def start(conn: AsyncConnection, *, user_id: int, username: str, now: datetime) -> Enrolment:
    """A new pending secret for the user (replacing a pending one); not asked for until
    confirmed. Caller checks that two-factor sign-in is not on already."""
    secret = pyotp.random_base32()
    await conn.execute(delete(user_totp).where(user_totp.c.user_id == user_id))
    await conn.execute(insert(user_totp).values(user_id=user_id, secret=secret, created_at=now))
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=username, issuer_name=ISSUER
    )
    return Enrolment(secret, uri)


async def pending_enrolment(
    conn: AsyncConnection, *, user_id: int, username: str
) -> Enrolment | None:
    """The user's enrolment waiting for confirmation, if any (shown to the user again until
    they confirm it)."""
    secret = (
        await conn.execute(
            select(user_totp.c.secret).where(
                user_totp.c.user_id == user_id, user_totp.c.confirmed_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if secret is None:
        return None
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=username, issuer_name=ISSUER
    )
    return Enrolment(secret, uri)


async def _accept_code(
    conn: AsyncConnection, *, user_id: int, otp: str, now: datetime, confirmed: bool
) -> bool:
    """Accept ``otp`` as the user's (confirmed, or pending) secret's code once: whether it was."""
    row = (
        await conn.execute(
            select(user_totp.c.secret).where(
                user_totp.c.user_id == user_id,
                user_totp.c.confirmed_at.is_not(None)
                if confirmed
                else user_totp.c.confirmed_at.is_(None),
            )
        )
    ).first()
    if row is None or not _is_totp(otp):
        return False
    current = step_of(now)
    matched = [
        step
        for step in range(current - WINDOW, current + WINDOW + 1)
        if hmac.compare_digest(code_at(row.secret, step).encode(), otp.encode())
    ]
    if not matched:
        return False
    step = max(matched)
    values: dict[str, object] = {"last_step": step}
    if not confirmed:
        values["confirmed_at"] = now
    # One statement: of two requests with one code, one moves last_step on and the other
    # finds it moved (a replay).
    result = await conn.execute(
        update(user_totp)
        .where(
            user_totp.c.user_id == user_id,
            or_(user_totp.c.last_step.is_(None), user_totp.c.last_step < step),
        )
        .values(**values)
    )
    return bool(result.rowcount)


async def confirm(conn: AsyncConnection, *, user_id: int, otp: str, now: datetime) -> list[str]:
    """Turn the pending secret on with a current code; the new recovery codes (shown once).
    ``InvalidSecondFactor`` for a wrong code; caller checks that one is pending."""
    if not await _accept_code(conn, user_id=user_id, otp=otp.strip(), now=now, confirmed=False):
        raise InvalidSecondFactor("the code is wrong or was used already: type the current one")
    return await new_recovery_codes(conn, user_id=user_id, now=now)


async def new_recovery_codes(conn: AsyncConnection, *, user_id: int, now: datetime) -> list[str]:
    """A new set of recovery codes for the user (the old ones stop working): shown once."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    await conn.execute(delete(user_recovery_codes).where(user_recovery_codes.c.user_id == user_id))
    await conn.execute(
        insert(user_recovery_codes),
        [
            {"digest": _recovery_digest(code), "user_id": user_id, "created_at": now}
            for code in codes
        ],
    )
    return codes


async def status(conn: AsyncConnection, user_id: int) -> Status:
    """The user's two-factor sign-in as it stands."""
    confirmed = (
        await conn.execute(select(user_totp.c.confirmed_at).where(user_totp.c.user_id == user_id))
    ).first()
    left = (
        await conn.execute(
            select(func.count()).where(
                user_recovery_codes.c.user_id == user_id, user_recovery_codes.c.used_at.is_(None)
            )
        )
    ).scalar_one()
    enabled = confirmed is not None and confirmed.confirmed_at is not None
    return Status(enabled, confirmed is not None and not enabled, int(left) if enabled else 0)


async def is_enabled(conn: AsyncConnection, user_id: int) -> bool:
    """Whether the user signs in with a second factor."""
    found = await conn.execute(
        select(user_totp.c.user_id).where(
            user_totp.c.user_id == user_id, user_totp.c.confirmed_at.is_not(None)
        )
    )
    return found.first() is not None


async def verify(conn: AsyncConnection, *, user_id: int, otp: str, now: datetime) -> Factor:
    """Accept ``otp``, a current code or an unused recovery code of the user, once: which it
    was. ``InvalidSecondFactor`` otherwise."""
    otp = otp.strip()
    if _is_totp(otp):
        if await _accept_code(conn, user_id=user_id, otp=otp, now=now, confirmed=True):
            return "totp"
    elif otp:
        used = await conn.execute(
            update(user_recovery_codes)
            .where(
                user_recovery_codes.c.user_id == user_id,
                user_recovery_codes.c.digest == _recovery_digest(otp),
                user_recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
        if used.rowcount:
            return "recovery"
    raise InvalidSecondFactor(
        "the second factor is wrong or was used already: send a current code from the "
        "authenticator app, or an unused recovery code"
    )


async def disable(conn: AsyncConnection, *, user_id: int) -> bool:
    """Turn the user's two-factor sign-in off (a pending enrolment too), recovery codes and
    all: whether there was anything to turn off."""
    removed = await conn.execute(delete(user_totp).where(user_totp.c.user_id == user_id))
    await conn.execute(delete(user_recovery_codes).where(user_recovery_codes.c.user_id == user_id))
    return bool(removed.rowcount)


async def required_for_admins(conn: AsyncConnection) -> bool:
    """Whether every admin must sign in with a second factor (off until an admin sets it)."""
    value = (
        await conn.execute(
            select(auth_settings.c.value).where(auth_settings.c.name == REQUIRE_FOR_ADMINS)
        )
    ).scalar_one_or_none()
    return value == "true"


async def set_required_for_admins(conn: AsyncConnection, *, required: bool, now: datetime) -> None:
    """Require (or stop requiring) a second factor of every admin."""
    value = "true" if required else "false"
    changed = await conn.execute(
        update(auth_settings)
        .where(auth_settings.c.name == REQUIRE_FOR_ADMINS)
        .values(value=value, changed_at=now)
    )
    if not changed.rowcount:
        await conn.execute(
            insert(auth_settings).values(name=REQUIRE_FOR_ADMINS, value=value, changed_at=now)
        )


async def must_enrol(conn: AsyncConnection, *, user_id: int, role: str) -> bool:
    """Whether this user is an admin without a second factor while admins need one: their
    credentials open only ``ENROL_ROUTES`` (the console: their account page)."""
    if role != "admin" or not await required_for_admins(conn):
        return False
    return not await is_enabled(conn, user_id)


async def second_factor(
    conn: AsyncConnection, *, user_id: int, role: str, otp: str | None, now: datetime
) -> bool:
    """The second step of a sign-in whose password was right: ``SecondFactorRequired``
    without ``otp`` for a user who has two-factor sign-in, ``InvalidSecondFactor`` for a
    wrong one. Whether the credential handed out may only enrol (``must_enrol``)."""
    if await is_enabled(conn, user_id):
        if not otp:
            raise SecondFactorRequired(
                "this user signs in with a second factor: send otp, a current code from the "
                "authenticator app (or an unused recovery code)"
            )
        await verify(conn, user_id=user_id, otp=otp, now=now)
        return False
    return await must_enrol(conn, user_id=user_id, role=role)
