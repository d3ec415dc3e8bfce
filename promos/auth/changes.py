"""Changes to users and API keys, each with its audit row in the same transaction.

The native routes and the command line make them alike, through these. A password is never
recorded: a password's change names the user and how many of their tokens it revoked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth import service, twofactor
from promos.auth.errors import (
    CannotDisableSelf,
    EnrolBeforeRequiring,
    TwoFactorEnabled,
    TwoFactorForPeople,
    TwoFactorNotStarted,
)
from promos.auth.scopes import Scope
from promos.auth.service import ApiKey, NewApiKey, Principal, Role, User
from promos.console import sessions as console_sessions


async def create_user(
    conn: AsyncConnection,
    *,
    actor: Principal,
    username: str,
    password: str,
    role: Role,
    now: datetime,
) -> User:
    """A new user."""
    user = await service.create_user(conn, username=username, password=password, role=role, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        after=user,
        at=now,
    )
    return user


async def disable_user(
    conn: AsyncConnection, *, actor: Principal, user_id: int, now: datetime
) -> User:
    """Disable the user: their tokens and password stop working. Never the actor's own user,
    nor the last enabled admin."""
    if actor.kind == "user" and actor.id == user_id:
        raise CannotDisableSelf(
            "you cannot disable your own user: another admin can, or `promos users disable`"
        )
    before = await service.disable_user(conn, user_id, now=now)
    after = await service.get_user(conn, user_id)
    await audit.record(
        conn,
        actor=actor,
        action="user.disable",
        target_type="user",
        target_id=user_id,
        before=before,
        after=after,
        at=now,
    )
    return after


async def reset_password(
    conn: AsyncConnection, *, actor: Principal, user_id: int, password: str, now: datetime
) -> int:
    """Set another user's password (an admin's reset); every token of theirs is revoked.
    Returns how many were."""
    user = await service.get_user(conn, user_id, for_update=True)
    revoked = await service.set_password(conn, user_id, password=password, now=now, keep_token=None)
    # Whoever knew the old password is signed out of the console too.
    await console_sessions.end_all(conn, user_id)
    await audit.record(
        conn,
        actor=actor,
        action="user.password_reset",
        target_type="user",
        target_id=user_id,
        after={"username": user.username, "tokens_revoked": revoked},
        at=now,
    )
    return revoked


async def change_own_password(
    conn: AsyncConnection,
    *,
    actor: Principal,
    current_password: str,
    new_password: str,
    keep_token: str | None,
    now: datetime,
) -> int:
    """The signed-in user's own change: the current password proven, the other tokens revoked
    (``keep_token``, the one the change was made with, stays). Returns how many were."""
    revoked = await service.change_own_password(
        conn,
        actor,
        current_password=current_password,
        new_password=new_password,
        keep_token=keep_token,
        now=now,
    )
    await console_sessions.end_all(conn, actor.id)
    await audit.record(
        conn,
        actor=actor,
        action="user.password_change",
        target_type="user",
        target_id=actor.id,
        after={"username": actor.name, "tokens_revoked": revoked},
        at=now,
    )
    return revoked


async def create_api_key(
    conn: AsyncConnection,
    *,
    actor: Principal,
    name: str,
    role: Role,
    now: datetime,
    scopes: Sequence[Scope] | None = None,
    expires_at: datetime | None = None,
) -> NewApiKey:
    """A key for a service (``scopes``: all it may do; None: its role's); recorded without
    its secret."""
    new = await service.create_api_key(
        conn, name=name, role=role, now=now, scopes=scopes, expires_at=expires_at
    )
    await audit.record(
        conn,
        actor=actor,
        action="api_key.create",
        target_type="api_key",
        target_id=new.key.id,
        after=new.key,
        at=now,
    )
    return new


async def rotate_api_key(
    conn: AsyncConnection, *, actor: Principal, key_id: int, grace: timedelta, now: datetime
) -> NewApiKey:
    """A new secret for the key, the old one working ``grace`` longer; recorded without
    either secret."""
    before = await service.get_api_key(conn, key_id, for_update=True)
    new = await service.rotate_api_key(conn, key_id, grace=grace, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="api_key.rotate",
        target_type="api_key",
        target_id=key_id,
        before={"prefix": before.prefix},
        after={"prefix": new.key.prefix, "grace_seconds": int(grace.total_seconds())},
        at=now,
    )
    return new


async def revoke_api_key(
    conn: AsyncConnection, *, actor: Principal, key_id: int, now: datetime
) -> ApiKey:
    """Revoke the key (revoking it again changes nothing but is recorded)."""
    before = await service.get_api_key(conn, key_id, for_update=True)
    await service.revoke_api_key(conn, key_id, now=now)
    after = await service.get_api_key(conn, key_id)
    await audit.record(
        conn,
        actor=actor,
        action="api_key.revoke",
        target_type="api_key",
        target_id=key_id,
        before=before,
        after=after,
        at=now,
    )
    return after


def _own_user(actor: Principal) -> None:
    if actor.kind != "user" or actor.id == 0:
        raise TwoFactorForPeople(
            "two-factor sign-in is for people: an API key (or the Offers seed's Basic pair) "
            "has no second factor to enrol"
        )


async def start_two_factor(
    conn: AsyncConnection, *, actor: Principal, now: datetime
) -> twofactor.Enrolment:
    """A new pending TOTP secret for the signed-in user (not asked for until confirmed);
    ``TwoFactorEnabled`` if it is on already. Recorded without the secret."""
    _own_user(actor)
    user = await service.get_user(conn, actor.id, for_update=True)
    if user.two_factor:
        raise TwoFactorEnabled("two-factor sign-in is on already: disable it first")
    enrolment = await twofactor.start(conn, user_id=user.id, username=user.username, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="user.two_factor_start",
        target_type="user",
        target_id=user.id,
        after={"username": user.username},
        at=now,
    )
    return enrolment


async def confirm_two_factor(
    conn: AsyncConnection, *, actor: Principal, otp: str, now: datetime
) -> list[str]:
    """Turn the pending secret on with a current code: the recovery codes, shown once.
    ``InvalidSecondFactor`` for a wrong code."""
    _own_user(actor)
    user = await service.get_user(conn, actor.id, for_update=True)
    found = await twofactor.status(conn, user.id)
    if not found.pending:
        raise TwoFactorNotStarted(
            "no enrolment waits for confirmation: start one (POST /v1/auth/two-factor)"
        )
    codes = await twofactor.confirm(conn, user_id=user.id, otp=otp, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="user.two_factor_enable",
        target_type="user",
        target_id=user.id,
        after={"username": user.username, "recovery_codes": len(codes)},
        at=now,
    )
    return codes


async def disable_own_two_factor(
    conn: AsyncConnection,
    *,
    actor: Principal,
    otp: str | None,
    password: str | None,
    now: datetime,
) -> None:
    """Turn the signed-in user's two-factor sign-in off, proven with a current code (or a
    recovery code) or their password: ``InvalidSecondFactor`` / ``InvalidCredentials``."""
    _own_user(actor)
    user = await service.get_user(conn, actor.id, for_update=True)
    if not user.two_factor:
        raise TwoFactorNotStarted("two-factor sign-in is off already")
    if otp:
        await twofactor.verify(conn, user_id=user.id, otp=otp, now=now)
    else:
        await service.verify_password(conn, user.username, password or "")
    await twofactor.disable(conn, user_id=user.id)
    await audit.record(
        conn,
        actor=actor,
        action="user.two_factor_disable",
        target_type="user",
        target_id=user.id,
        after={"username": user.username, "proof": "otp" if otp else "password"},
        at=now,
    )


async def reset_two_factor(
    conn: AsyncConnection, *, actor: Principal, user_id: int, now: datetime
) -> User:
    """Turn another user's two-factor sign-in off (an admin's, or the command line's, for a
    lost device): they sign in with their password alone until they enrol again."""
    user = await service.get_user(conn, user_id, for_update=True)
    had = await twofactor.disable(conn, user_id=user_id)
    await audit.record(
        conn,
        actor=actor,
        action="user.two_factor_reset",
        target_type="user",
        target_id=user_id,
        before={"two_factor": user.two_factor},
        after={"username": user.username, "two_factor": False, "had_enrolment": had},
        at=now,
    )
    return user


async def set_two_factor_required(
    conn: AsyncConnection, *, actor: Principal, required: bool, now: datetime
) -> bool:
    """Require (or not) a second factor of every admin; what it was before. A person
    requiring it must have it on themselves first (an API key or the command line need not)."""
    if required and actor.kind == "user" and not await twofactor.is_enabled(conn, actor.id):
        raise EnrolBeforeRequiring(
            "turn on your own two-factor sign-in first: requiring it of every admin would "
            "otherwise leave you able to do nothing but enrol"
        )
    before = await twofactor.required_for_admins(conn)
    await twofactor.set_required_for_admins(conn, required=required, now=now)
    await audit.record(
        conn,
        actor=actor,
        action="auth_settings.update",
        target_type="auth_settings",
        target_id=twofactor.REQUIRE_FOR_ADMINS,
        before={"require_two_factor_for_admins": before},
        after={"require_two_factor_for_admins": required},
        at=now,
    )
    return before
