"""Changes to users and API keys, each with its audit row in the same transaction.

The native routes and the command line make them alike, through these. A password is never
recorded: a password's change names the user and how many of their tokens it revoked.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.audit import service as audit
from promos.auth import service
from promos.auth.errors import CannotDisableSelf
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
