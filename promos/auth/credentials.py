"""Turn an ``Authorization`` (or ``X-API-Key``) header into a ``Principal``, cheaply.

Bearer tokens and API keys are looked up by SHA-256 digest; Basic passwords go through
argon2 once. A verified header is then trusted for ``cache_seconds`` without asking the
database again, and concurrent first requests with the same header share one check.
Checking a Basic password is a sign-in attempt: failed ones are rate limited like sign-ins.
Every caller names the route being called, and a credential restricted to some routes
(``Principal.routes``) is refused on any other one here, whoever asked.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext

from sqlalchemy.ext.asyncio import AsyncConnection

from promos.auth import service, twofactor
from promos.auth.errors import (
    BasicRefusedForTwoFactor,
    CredentialNotForRoute,
    CredentialRequired,
    InvalidCredentials,
    TwoFactorEnrolmentRequired,
)
from promos.auth.service import Principal, Route
from promos.auth.usage import KeyUsage
from promos.clock import Clock
from promos.db import Database
from promos.ratelimit import RateLimits

MAX_CACHED = 10_000


class Authenticator:
    """Checks credentials for every router, with a short-lived cache of verified ones."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        cache_seconds: float,
        seed_basic: tuple[str, str] | None = None,
        seed_routes: frozenset[Route] = frozenset(),
        limits: RateLimits | None = None,
        usage: KeyUsage | None = None,
    ) -> None:
        self._database = database
        # Each request made with an API key is counted here (in memory, flushed in batches).
        self.usage = usage
        self._limits = limits
        # The Offers seed's OFFERS_BASICAUTH_USERNAME/PASSWORD: one more Basic credential,
        # which opens ``seed_routes`` (the Offers management routes) and nothing else.
        self._seed_basic = seed_basic
        self._seed_routes = seed_routes
        self._clock = clock
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        # Bumped by forget_all: a check begun before it may not fill the cache after it.
        self._generation = 0
        self._inflight: dict[str, asyncio.Future[Principal]] = {}

    async def authenticate(
        self,
        authorization: str | None,
        api_key: str | None = None,
        *,
        route: Route,
        client: str | None = None,
    ) -> Principal:
        """The caller of ``route``, or ``CredentialRequired`` / ``InvalidCredentials``, or
        ``CredentialNotForRoute`` for a credential that does not open that route.

        ``client`` (the caller's address) counts failed Basic passwords per address too.
        """
        principal = await self._principal(authorization, api_key, client)
        if principal.kind == "api_key" and self.usage is not None:
            self.usage.record(principal.id, client)
        if principal.routes is not None and route not in principal.routes:
            raise CredentialNotForRoute(
                "this credential (the Offers seed's OFFERS_BASICAUTH_* pair) opens the Offers "
                "management routes only (games and offers): use a Promos user or API key here"
            )
        if principal.enrol_only and route not in twofactor.ENROL_ROUTES:
            raise TwoFactorEnrolmentRequired(
                "admins must sign in with a second factor, and this user has none yet: enrol "
                "first (POST /v1/auth/two-factor, then POST /v1/auth/two-factor/confirm), "
                "then sign in again"
            )
        return principal

    async def _principal(
        self, authorization: str | None, api_key: str | None, client: str | None
    ) -> Principal:
        if not authorization and api_key and not api_key.startswith(service.API_KEY_PREFIX):
            # The header names what it carries: a person's sign-in token is not a service's
            # key, and is refused there rather than taken for one.
            raise InvalidCredentials(
                f"X-API-Key takes an API key ({service.API_KEY_PREFIX}...) only: send a "
                "sign-in token as 'Authorization: Bearer <token>'"
            )
        header = authorization or (f"Bearer {api_key}" if api_key else None)
        if not header:
            raise CredentialRequired(
                "this route needs a credential: a Bearer token or API key, or HTTP Basic"
            )
        key = hashlib.sha256(header.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        waiting = self._inflight.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        generation = self._generation
        try:
            principal = await self._verify(header, client)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(principal)
            if generation == self._generation:
                self._remember(key, principal)
            return principal
        finally:
            del self._inflight[key]

    def forget_all(self) -> None:
        """Drop every cached credential (after a revocation or a password change made in this
        process), and what checks under way would cache."""
        self._cache.clear()
        self._generation += 1

    def _remember(self, key: str, principal: Principal) -> None:
        ttl = self._ttl
        if principal.expires_at is not None:
            # Trusted no longer than it works (a key's expiry, an old secret's grace).
            ttl = min(ttl, (principal.expires_at - self._clock()).total_seconds())
        if ttl <= 0:
            return
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + ttl, principal)

    async def _verify(self, header: str, client: str | None) -> Principal:
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "basic":
            username, password = _basic_pair(value)
            async with self._attempt(client, username):
                seed = self._seed_basic
                if seed is not None and _same_pair((username, password), seed):
                    return Principal("user", 0, username, "sales", routes=self._seed_routes)
                return await self._with_conn(lambda conn: _basic(conn, username, password))
        if scheme == "bearer" and value.startswith(service.API_KEY_PREFIX):
            now = self._clock()
            return await self._with_conn(
                lambda conn: service.principal_for_api_key(conn, value, now=now)
            )
        if scheme == "bearer" and value.startswith(service.TOKEN_PREFIX):
            now = self._clock()
            return await self._with_conn(
                lambda conn: service.principal_for_token(conn, value, now=now)
            )
        raise InvalidCredentials(
            "unsupported credential: send 'Authorization: Bearer <token or API key>' "
            "or 'Authorization: Basic <base64 user:password>'"
        )

    def _attempt(self, client: str | None, login: str) -> AbstractAsyncContextManager[None]:
        if self._limits is None:
            return nullcontext()
        return self._limits.sign_in_attempt(client=client, login=login)

    async def _with_conn(
        self, check: Callable[[AsyncConnection], Awaitable[Principal]]
    ) -> Principal:
        # Checks only read: on SQLite they do not queue behind a writer.
        async with self._database.read() as conn:
            return await check(conn)


async def _basic(conn: AsyncConnection, username: str, password: str) -> Principal:
    user = await service.verify_password(conn, username, password)
    if user.two_factor:
        # Basic carries no second factor, and a password alone is not enough for this user.
        raise BasicRefusedForTwoFactor(
            f"user {user.username!r} signs in with a second factor, which HTTP Basic cannot "
            "carry: sign in for a token (POST /v1/auth/tokens with otp) and send it as "
            "'Authorization: Bearer <token>'; a machine uses an API key"
        )
    enrol_only = await twofactor.must_enrol(conn, user_id=user.id, role=user.role)
    return Principal("user", user.id, user.username, user.role, enrol_only=enrol_only)


def _same_pair(given: tuple[str, str], expected: tuple[str, str]) -> bool:
    # Both compared, always, in constant time.
    same_user = hmac.compare_digest(given[0].encode(), expected[0].encode())
    same_password = hmac.compare_digest(given[1].encode(), expected[1].encode())
    return same_user and same_password


def _basic_pair(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidCredentials(
            "the Basic credential is not valid base64 of user:password"
        ) from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise InvalidCredentials("the Basic credential must be user:password")
    return username, password
