"""Server-side console sessions: started at sign-in, found by the cookie's secret, ended at
sign-out or after idle and absolute lifetimes (``Lifetime``).

Only the secret's SHA-256 digest is stored. A session is found together with its user, who
must still be enabled: disabling a user ends their sessions at their next request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.auth import twofactor
from promos.auth.service import Principal, Role, User, digest
from promos.auth.tables import auth_settings, user_totp, users
from promos.console import csrf
from promos.console.tables import console_pending_sign_ins, console_sessions

# last_seen_at is written at most this often: not one write per page view. The idle expiry
# is exact to within this much.
TOUCH_EVERY = timedelta(minutes=1)
MAX_FLASH = 500
# How long a sign-in whose password was right waits for its second factor.
PENDING_FOR = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a session lives: ``idle`` after its last request, ``absolute`` after sign-in."""

    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person's session; ``flash`` is the message for the page being shown."""

    id: int
    user_id: int
    username: str
    role: Role
    csrf_token: str
    flash: str | None = None
    last_seen_at: datetime | None = None
    # An admin without a second factor while admins need one: only their account page (to
    # enrol) and sign-out are served.
    must_enrol: bool = False

    @property
    def principal(self) -> Principal:
        """The person as the services and the audit log know callers."""
        return Principal("user", self.user_id, self.username, self.role)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def start(
    conn: AsyncConnection, *, user: User, now: datetime, lifetime: Lifetime
) -> tuple[str, Session]:
    """A new session for ``user`` (signed in just now): the cookie's secret and the session.

    Sessions that have expired, anyone's, are deleted on the way.
    """
    await conn.execute(
        delete(console_sessions).where(
            or_(
                console_sessions.c.last_seen_at <= now - lifetime.idle,
                console_sessions.c.created_at <= now - lifetime.absolute,
            )
        )
    )
    secret = secrets.token_urlsafe(32)
    session_id = (
        await conn.execute(
            console_sessions.insert()
            .values(digest=digest(secret), user_id=user.id, created_at=now, last_seen_at=now)
            .returning(console_sessions.c.id)
        )
    ).scalar_one()
    session = Session(
        session_id, user.id, user.username, user.role, csrf.session_token(secret), None, now
    )
    return secret, session


async def find(
    conn: AsyncConnection,
    secret: str,
    *,
    now: datetime,
    lifetime: Lifetime,
    take_flash: bool = False,
) -> Session | None:
    """The live session whose cookie holds ``secret``, of an enabled user; else ``None``.

    It only reads (``visit`` records the request); ``take_flash`` hands out the session's
    message for the page about to be shown.
    """
    row = (
        await conn.execute(
            select(
                console_sessions.c.id,
                console_sessions.c.last_seen_at,
                console_sessions.c.flash,
                users.c.id.label("user_id"),
                users.c.username,
                users.c.role,
                exists()
                .where(user_totp.c.user_id == users.c.id, user_totp.c.confirmed_at.is_not(None))
                .label("two_factor"),
                select(auth_settings.c.value)
                .where(auth_settings.c.name == twofactor.REQUIRE_FOR_ADMINS)
                .scalar_subquery()
                .label("required"),
            )
            .select_from(console_sessions.join(users, console_sessions.c.user_id == users.c.id))
            .where(
                console_sessions.c.digest == digest(secret),
                console_sessions.c.last_seen_at > now - lifetime.idle,
                console_sessions.c.created_at > now - lifetime.absolute,
                users.c.disabled_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return Session(
        row.id,
        row.user_id,
        row.username,
        row.role,
        csrf.session_token(secret),
        row.flash if take_flash else None,
        row.last_seen_at,
        must_enrol=row.role == "admin" and row.required == "true" and not row.two_factor,
    )


def needs_visit(session: Session, *, now: datetime) -> bool:
    """Whether ``visit`` has anything to write: a flash handed out, or activity not yet
    recorded for ``TOUCH_EVERY`` (not one write per page view)."""
    seen = session.last_seen_at
    return session.flash is not None or seen is None or now - seen >= TOUCH_EVERY


async def visit(conn: AsyncConnection, session: Session, *, now: datetime) -> None:
    """The request counts as activity; the flash handed out is cleared."""
    changes: dict[str, object] = {"last_seen_at": now}
    if session.flash is not None:
        changes["flash"] = None
    await conn.execute(
        update(console_sessions).where(console_sessions.c.id == session.id).values(**changes)
    )


async def set_flash(conn: AsyncConnection, session_id: int, message: str) -> None:
    """Leave ``message`` for the next page the session shows."""
    await conn.execute(
        update(console_sessions)
        .where(console_sessions.c.id == session_id)
        .values(flash=message[:MAX_FLASH])
    )


async def end(conn: AsyncConnection, secret: str) -> bool:
    """End the session whose cookie holds ``secret``; whether there was one."""
    result = await conn.execute(
        delete(console_sessions).where(console_sessions.c.digest == digest(secret))
    )
    return bool(result.rowcount)


async def end_all(conn: AsyncConnection, user_id: int) -> int:
    """End every session of the user (a new password); how many there were."""
    result = await conn.execute(
        delete(console_sessions).where(console_sessions.c.user_id == user_id)
    )
    return int(result.rowcount)


async def start_pending(conn: AsyncConnection, *, user_id: int, now: datetime) -> str:
    """A sign-in of ``user_id`` waiting for its second factor (the password was right): the
    secret of its cookie. Pending sign-ins that have expired, anyone's, are deleted."""
    await conn.execute(
        delete(console_pending_sign_ins).where(
            console_pending_sign_ins.c.created_at <= now - PENDING_FOR
        )
    )
    secret = secrets.token_urlsafe(32)
    await conn.execute(
        console_pending_sign_ins.insert().values(
            digest=digest(secret), user_id=user_id, created_at=now
        )
    )
    return secret


async def find_pending(conn: AsyncConnection, secret: str, *, now: datetime) -> User | None:
    """The enabled user whose sign-in waits with this secret, if it has not expired."""
    row = (
        await conn.execute(
            select(users)
            .select_from(
                console_pending_sign_ins.join(
                    users, console_pending_sign_ins.c.user_id == users.c.id
                )
            )
            .where(
                console_pending_sign_ins.c.digest == digest(secret),
                console_pending_sign_ins.c.created_at > now - PENDING_FOR,
                users.c.disabled_at.is_(None),
            )
        )
    ).first()
    if row is None:
        return None
    return User(row.id, row.username, row.role, row.created_at, disabled=False, two_factor=True)


async def end_pending(conn: AsyncConnection, secret: str) -> None:
    """Forget the pending sign-in (done, or abandoned)."""
    await conn.execute(
        delete(console_pending_sign_ins).where(console_pending_sign_ins.c.digest == digest(secret))
    )
