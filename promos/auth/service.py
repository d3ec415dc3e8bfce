"""Users, passwords (argon2), sign-in tokens and API keys (SHA-256 digests of random secrets)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from promos.auth import twofactor
from promos.auth.errors import (
    ApiKeyNotFound,
    ApiKeyRevoked,
    InvalidCredentials,
    InvalidExpiry,
    InvalidGrace,
    InvalidScope,
    InvalidUsername,
    LastAdmin,
    NoPassword,
    UserExists,
    UserNotFound,
    WeakPassword,
)
from promos.auth.scopes import Grants, Scope
from promos.auth.tables import (
    api_key_old_secrets,
    api_key_scopes,
    api_keys,
    tokens,
    user_totp,
    users,
)
from promos.pagination import Key, Page, after, read_page
from promos.validation import HIDDEN, SURROGATES

Role = Literal["admin", "sales"]
# A route as the router knows it: (method, path template), e.g. ("PUT", "/games/{game_id}").
Route = tuple[str, str]
TOKEN_PREFIX = "pt_"  # noqa: S105 - a prefix, not a secret
API_KEY_PREFIX = "pk_"
MIN_PASSWORD_LENGTH = 8
MAX_ROTATION_GRACE = timedelta(days=30)
# No space or colon (a Basic credential splits at the first colon), no hidden character.
USERNAME = re.compile(rf"[^\s:{HIDDEN}{SURROGATES}]{{1,255}}")

_hasher = PasswordHasher()  # argon2-cffi's defaults: RFC 9106's low-memory profile
# Verifying against this when the user does not exist keeps sign-in time the same either way.
# Made at the first sign-in, not at import: every process (each CLI command, each worker)
# imports this module, and a hash costs ~0.2 s of CPU.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH  # noqa: PLW0603 - made once per process, on first use
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def use_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Hash and verify passwords with ``hasher`` from now on; returns the one used until now.

    For the tests, which make thousands of users: at the default cost each hash or check takes
    about 0.2 s of CPU. A hash is always checked at the cost it was made with.
    """
    global _hasher, _DUMMY_HASH  # noqa: PLW0603 - one hasher per process, swapped by the tests
    previous, _hasher = _hasher, hasher
    _DUMMY_HASH = None
    return previous


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (by password or token), an API key, or the command line (whose
    ``id`` and ``name`` are the operating system's user running it).

    ``routes``, when set, are the only routes this credential opens (the Offers seed's own
    Basic pair opens the Offers management routes, nothing else); ``None``: every route its
    role allows. ``scopes``, when set, are all that a scoped API key may do
    (``promos.auth.scopes``); ``None``: every scope of its role.
    """

    kind: Literal["user", "api_key", "cli"]
    id: int
    name: str
    role: Role
    routes: frozenset[Route] | None = None
    scopes: Grants | None = None
    # When the credential stops working by itself (a key's expiry, an old secret's grace):
    # no cache may trust it longer.
    expires_at: datetime | None = None
    # An admin without a second factor while admins need one: this credential opens only
    # their own account's routes (``twofactor.ENROL_ROUTES``) until they enrol.
    enrol_only: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def credential_id(self) -> str:
        """A loggable name for the credential, never the secret."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    created_at: datetime
    disabled: bool
    # Whether they sign in with a second factor (TOTP).
    two_factor: bool = False


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_at: datetime
    user: User


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed (never its secret); ``scopes`` None: every scope of its role."""

    id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    revoked: bool
    scopes: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    rotated_at: datetime | None = None
    # Until when the secret a rotation replaced still works (the latest, if several).
    previous_valid_until: datetime | None = None
    last_used_at: datetime | None = None
    last_used_from: str | None = None
    request_count: int = 0


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly created key: ``secret`` is shown this once and stored only as a digest."""

    key: ApiKey
    secret: str


def digest(secret: str) -> str:
    """The stored form of a token or API key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _user(row: Any) -> User:
    return User(
        row.id,
        row.username,
        row.role,
        row.created_at,
        row.disabled_at is not None,
        two_factor=bool(row.two_factor),
    )


# Whether each user read has two-factor sign-in on, in the same query.
_TWO_FACTOR = (
    exists()
    .where(user_totp.c.user_id == users.c.id, user_totp.c.confirmed_at.is_not(None))
    .label("two_factor")
)


def _users() -> Any:
    """A query of users, each with ``two_factor``."""
    return select(users, _TWO_FACTOR)


def _api_key(
    row: Any, scopes: Sequence[Scope] | None = None, previous: datetime | None = None
) -> ApiKey:
    return ApiKey(
        row.id,
        row.name,
        row.prefix,
        row.role,
        row.created_at,
        row.revoked_at is not None,
        tuple(str(s) for s in Grants(scopes).scopes) if scopes else None,
        expires_at=row.expires_at,
        rotated_at=row.rotated_at,
        previous_valid_until=previous,
        last_used_at=row.last_used_at,
        last_used_from=row.last_used_from,
        request_count=row.request_count,
    )


async def _previous_of(conn: AsyncConnection, key_ids: Sequence[int]) -> dict[int, datetime]:
    """Until when each key's replaced secrets work (the latest), for the keys that have any."""
    rows = await conn.execute(
        select(api_key_old_secrets.c.key_id, func.max(api_key_old_secrets.c.valid_until))
        .where(api_key_old_secrets.c.key_id.in_(key_ids))
        .group_by(api_key_old_secrets.c.key_id)
    )
    return {row[0]: row[1] for row in rows}


ALL = "*"  # the resource of a scope row that stands for every resource of its kind


def _scope_rows(key_id: int, scopes: Sequence[Scope]) -> list[dict[str, Any]]:
    return [
        {"key_id": key_id, "kind": s.kind, "action": s.action, "resource": resource}
        for s in scopes
        for resource in (sorted(s.ids) if s.ids is not None else [ALL])
    ]


async def _scopes_of(conn: AsyncConnection, key_ids: Sequence[int]) -> dict[int, list[Scope]]:
    """Each key's scopes (a key without any is left out): one row per resource, merged."""
    found: dict[int, dict[tuple[str, str], set[str] | None]] = {}
    rows = await conn.execute(select(api_key_scopes).where(api_key_scopes.c.key_id.in_(key_ids)))
    for row in rows:
        held = found.setdefault(row.key_id, {})
        key = (row.kind, row.action)
        if row.resource == ALL:
            held[key] = None
        elif key not in held:
            held[key] = {row.resource}
        elif (ids := held[key]) is not None:
            ids.add(row.resource)
    return {
        key_id: [
            Scope(kind, action, None if ids is None else frozenset(ids))  # type: ignore[arg-type]
            for (kind, action), ids in held.items()
        ]
        for key_id, held in found.items()
    }


def check_password(password: str) -> None:
    """The password policy of every password Promos stores: ``WeakPassword`` says what to fix."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")


async def _hash(password: str) -> str:
    # argon2 is deliberately slow; off the event loop it does not stall other requests.
    return await asyncio.to_thread(_hasher.hash, password)


async def create_user(
    conn: AsyncConnection, *, username: str, password: str, role: Role, now: datetime
) -> User:
    """A new user with an argon2 hash of the password."""
    if not USERNAME.fullmatch(username):
        raise InvalidUsername(
            "a user name is 1 to 255 characters without spaces or colons (HTTP Basic needs "
            "that), control characters, direction marks or a byte order mark"
        )
    check_password(password)
    try:
        async with conn.begin_nested():
            result = await conn.execute(
                users.insert()
                .values(
                    username=username,
                    password_hash=await _hash(password),
                    role=role,
                    created_at=now,
                )
                .returning(users.c.id)
            )
    except IntegrityError:
        raise UserExists(f"user {username!r} already exists") from None
    return User(result.scalar_one(), username, role, now, disabled=False)


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def list_users(conn: AsyncConnection) -> list[User]:
    return [_user(row) for row in await conn.execute(_users().order_by(users.c.id))]


async def users_page(
    conn: AsyncConnection, *, limit: int, after_key: Key | None = None
) -> Page[User]:
    """Users, oldest first: a page after ``after_key`` (id)."""
    query = _users().order_by(users.c.id).where(after((users.c.id,), after_key))
    return await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=_user)


async def get_user(conn: AsyncConnection, user_id: int, *, for_update: bool = False) -> User:
    """The user; ``for_update`` locks their row until the transaction ends (PostgreSQL)."""
    query = _users().where(users.c.id == user_id)
    row = (await conn.execute(query.with_for_update(of=users) if for_update else query)).first()
    if row is None:
        raise UserNotFound(f"user {user_id} does not exist")
    return _user(row)


async def get_user_by_name(conn: AsyncConnection, username: str) -> User:
    """The user with that name (disabled or not)."""
    row = (await conn.execute(_users().where(users.c.username == username))).first()
    if row is None:
        raise UserNotFound(f"user {username!r} does not exist")
    return _user(row)


async def disable_user(conn: AsyncConnection, user_id: int, *, now: datetime) -> User:
    """Disable a user, and return them as they were: their tokens and Basic credentials stop
    working. ``LastAdmin`` if they are the last enabled admin: nobody would be left to manage
    users over HTTP."""
    # Every enabled admin is locked, in id order, before anything else: two admins disabling
    # each other at once take turns, and the second sees the first's change (PostgreSQL checks
    # a locked row's condition again once the lock it waited for is released). On SQLite,
    # writers take turns anyway (BEGIN IMMEDIATE).
    enabled_admins = (
        await conn.execute(
            select(users.c.id)
            .where(users.c.role == "admin", users.c.disabled_at.is_(None))
            .order_by(users.c.id)
            .with_for_update()
        )
    ).scalars()
    last_admin = list(enabled_admins) == [user_id]
    before = await get_user(conn, user_id, for_update=True)
    if last_admin:
        raise LastAdmin(
            f"user {user_id} is the last enabled admin: make another admin before disabling it"
        )
    await conn.execute(update(users).where(users.c.id == user_id).values(disabled_at=now))
    return before


async def verify_password(
    conn: AsyncConnection, username: str, password: str, *, lock: bool = False
) -> User:
    """The enabled user with that name and password, or ``InvalidCredentials``.

    ``lock`` holds a share lock on the user's row (PostgreSQL) until the transaction ends, so
    that a password change or a disable committed meanwhile waits, or is seen.
    """
    query = _users().where(users.c.username == username)
    locked = query.with_for_update(read=True, of=users) if lock else query
    row = (await conn.execute(locked)).first()
    try:
        # argon2 is deliberately slow; off the event loop it does not stall other requests.
        await asyncio.to_thread(
            _hasher.verify,
            row.password_hash if row is not None else _dummy_hash(),
            password,
        )
    except (VerificationError, InvalidHashError):
        raise InvalidCredentials("wrong user name or password") from None
    if row is None or row.disabled_at is not None:
        raise InvalidCredentials("wrong user name or password")
    return _user(row)


async def sign_in(
    conn: AsyncConnection,
    *,
    username: str,
    password: str,
    ttl: timedelta,
    now: datetime,
    otp: str | None = None,
) -> IssuedToken:
    """Check a password, and the second factor ``otp`` of a user who has one
    (``twofactor.second_factor``), and hand out an opaque bearer token that expires after
    ``ttl``."""
    # Locked: a token is never handed out for a password that a concurrent change replaced.
    user = await verify_password(conn, username, password, lock=True)
    await twofactor.second_factor(conn, user_id=user.id, role=user.role, otp=otp, now=now)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + ttl
    await conn.execute(
        tokens.insert().values(
            digest=digest(token), user_id=user.id, created_at=now, expires_at=expires_at
        )
    )
    return IssuedToken(token=token, expires_at=expires_at, user=user)


async def revoke_token(conn: AsyncConnection, token: str, *, now: datetime) -> int | None:
    """Revoke the token; its id, or ``None`` if it was unknown or revoked already."""
    revoked: int | None = (
        await conn.execute(
            update(tokens)
            .where(tokens.c.digest == digest(token), tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(tokens.c.id)
        )
    ).scalar_one_or_none()
    return revoked


async def set_password(
    conn: AsyncConnection, user_id: int, *, password: str, now: datetime, keep_token: str | None
) -> int:
    """Give the user a new password and revoke their sign-in tokens, all but ``keep_token``
    (the caller's own, on a change of one's own password); how many were revoked."""
    check_password(password)
    result = await conn.execute(
        update(users).where(users.c.id == user_id).values(password_hash=await _hash(password))
    )
    if result.rowcount == 0:
        raise UserNotFound(f"user {user_id} does not exist")
    revoke = update(tokens).where(
        tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None), tokens.c.expires_at > now
    )
    if keep_token is not None:
        revoke = revoke.where(tokens.c.digest != digest(keep_token))
    return int((await conn.execute(revoke.values(revoked_at=now))).rowcount)


async def change_own_password(
    conn: AsyncConnection,
    principal: Principal,
    *,
    current_password: str,
    new_password: str,
    keep_token: str | None,
    now: datetime,
) -> int:
    """The signed-in user's new password, once the current one is proven; their other tokens
    are revoked (how many is returned). ``InvalidCredentials`` for a wrong current password."""
    if principal.kind != "user" or principal.id == 0:
        raise NoPassword(
            "only a user has a password to change: an API key has none, and the Offers "
            "Basic credential is set in the settings"
        )
    user = await get_user(conn, principal.id, for_update=True)
    await verify_password(conn, user.username, current_password)
    return await set_password(conn, user.id, password=new_password, now=now, keep_token=keep_token)


async def principal_for_token(conn: AsyncConnection, token: str, *, now: datetime) -> Principal:
    row = (
        await conn.execute(
            select(users.c.id, users.c.username, users.c.role)
            .select_from(tokens.join(users, tokens.c.user_id == users.c.id))
            .where(
                tokens.c.digest == digest(token),
                tokens.c.revoked_at.is_(None),
                tokens.c.expires_at > now,
                users.c.disabled_at.is_(None),
            )
        )
    ).first()
    if row is None:
        raise InvalidCredentials("the token is unknown, expired or revoked")
    enrol_only = await twofactor.must_enrol(conn, user_id=row.id, role=row.role)
    return Principal("user", row.id, row.username, row.role, enrol_only=enrol_only)


async def create_api_key(
    conn: AsyncConnection,
    *,
    name: str,
    role: Role,
    now: datetime,
    scopes: Sequence[Scope] | None = None,
    expires_at: datetime | None = None,
) -> NewApiKey:
    """A new key; ``scopes``: all it may do (None: every scope of its role); ``expires_at``:
    when it stops working (None: never)."""
    if expires_at is not None and expires_at <= now:
        raise InvalidExpiry("expires_at must be in the future")
    if scopes is not None:
        if not scopes:
            raise InvalidScope("a scoped key needs at least one scope")
        if not Grants(scopes).within(role):
            raise InvalidScope("only an admin key may hold the people, webhooks and audit scopes")
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = secret[:10]
    key_id = (
        await conn.execute(
            api_keys.insert()
            .values(
                name=name,
                prefix=prefix,
                digest=digest(secret),
                role=role,
                created_at=now,
                expires_at=expires_at,
            )
            .returning(api_keys.c.id)
        )
    ).scalar_one()
    if scopes:
        await conn.execute(api_key_scopes.insert(), _scope_rows(key_id, scopes))
    shown = tuple(str(s) for s in Grants(scopes).scopes) if scopes else None
    made = ApiKey(
        key_id, name, prefix, role, now, revoked=False, scopes=shown, expires_at=expires_at
    )
    return NewApiKey(made, secret)


async def rotate_api_key(
    conn: AsyncConnection, key_id: int, *, grace: timedelta, now: datetime
) -> NewApiKey:
    """Give the key a new secret; the one it had works ``grace`` longer (none: not at all).
    Its scopes, expiry and usage stay. ``ApiKeyRevoked`` for a revoked key."""
    if not timedelta(0) <= grace <= MAX_ROTATION_GRACE:
        raise InvalidGrace(
            f"the grace is 0 to {MAX_ROTATION_GRACE.days} days (in seconds: 0 to "
            f"{int(MAX_ROTATION_GRACE.total_seconds())})"
        )
    row = (
        await conn.execute(select(api_keys).where(api_keys.c.id == key_id).with_for_update())
    ).first()
    if row is None:
        raise ApiKeyNotFound(f"API key {key_id} does not exist")
    if row.revoked_at is not None:
        raise ApiKeyRevoked(f"API key {key_id} is revoked: make a new one")
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    if grace > timedelta(0):
        await conn.execute(
            api_key_old_secrets.insert().values(
                digest=row.digest, key_id=key_id, valid_until=now + grace
            )
        )
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(digest=digest(secret), prefix=secret[:10], rotated_at=now)
    )
    return NewApiKey(await get_api_key(conn, key_id), secret)


async def list_api_keys(
    conn: AsyncConnection, *, limit: int, after_key: Key | None = None
) -> Page[ApiKey]:
    """API keys, oldest first: a page after ``after_key`` (id)."""
    query = select(api_keys).order_by(api_keys.c.id).where(after((api_keys.c.id,), after_key))
    page = await read_page(conn, query, limit=limit, key=lambda row: (row.id,), item=lambda r: r)
    ids = [row.id for row in page.items]
    scopes, previous = await _scopes_of(conn, ids), await _previous_of(conn, ids)
    return Page(
        [_api_key(row, scopes.get(row.id), previous.get(row.id)) for row in page.items],
        page.next_key,
    )


async def get_api_key(conn: AsyncConnection, key_id: int, *, for_update: bool = False) -> ApiKey:
    """The key (never its secret); ``for_update`` locks its row until the transaction ends."""
    query = select(api_keys).where(api_keys.c.id == key_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        raise ApiKeyNotFound(f"API key {key_id} does not exist")
    scopes, previous = await _scopes_of(conn, [key_id]), await _previous_of(conn, [key_id])
    return _api_key(row, scopes.get(key_id), previous.get(key_id))


async def revoke_api_key(conn: AsyncConnection, key_id: int, *, now: datetime) -> None:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if result.rowcount == 0:
        exists = (await conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id))).first()
        if exists is None:
            raise ApiKeyNotFound(f"API key {key_id} does not exist")


async def principal_for_api_key(conn: AsyncConnection, secret: str, *, now: datetime) -> Principal:
    """The key whose secret this is (or was, within a rotation's grace), if it is neither
    revoked nor expired."""
    usable = and_(
        api_keys.c.revoked_at.is_(None),
        or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
    )
    columns = (api_keys.c.id, api_keys.c.name, api_keys.c.role, api_keys.c.expires_at)
    found = digest(secret)
    query = select(*columns).where(api_keys.c.digest == found, usable)
    row: Any = (await conn.execute(query)).first()
    until = None
    if row is None:  # a secret a rotation replaced, within its grace
        old = api_key_old_secrets
        row = (
            await conn.execute(
                select(*columns, old.c.valid_until)
                .select_from(old.join(api_keys, old.c.key_id == api_keys.c.id))
                .where(old.c.digest == found, old.c.valid_until > now, usable)
            )
        ).first()
        until = row.valid_until if row is not None else None
    if row is None:
        raise InvalidCredentials("the API key is unknown, expired or revoked")
    scopes = (await _scopes_of(conn, [row.id])).get(row.id)
    ends = [t for t in (row.expires_at, until) if t is not None]
    return Principal(
        "api_key",
        row.id,
        row.name,
        row.role,
        scopes=Grants(scopes) if scopes else None,
        expires_at=min(ends) if ends else None,
    )


async def bootstrap_admin(
    conn: AsyncConnection, *, username: str, password: str, now: datetime
) -> User | None:
    """Create the first admin, only when no user exists yet."""
    if await count_users(conn) > 0:
        return None
    return await create_user(conn, username=username, password=password, role="admin", now=now)


def same_secret(a: str, b: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())
