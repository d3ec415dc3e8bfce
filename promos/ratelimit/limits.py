"""Which requests are limited, per what key: the app's rate-limit policy.

Three classes, each off when its limit is 0: the public read routes (per client address),
the Offers player routes (per client address), and sign-in attempts (per client address and
per login name). A sign-in that succeeds is taken back, so only failed attempts add up.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from promos.clock import Clock, utc_now
from promos.errors import TooManyRequests, Unauthenticated
from promos.ratelimit.gcra import MICROS, MemoryStore, Rate, Store, retry_seconds
from promos.ratelimit.redis_store import RedisStore
from promos.settings import Settings


def _rate(limit: int, period: float) -> Rate | None:
    return Rate(limit, period) if limit > 0 else None


class RateLimits:
    """Checks a request against its class's limit; raises ``TooManyRequests`` over it."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        public: Rate | None,
        offers: Rate | None,
        signin_per_client: Rate | None,
        signin_per_login: Rate | None,
    ) -> None:
        self.store = store
        self._clock = clock
        # The clock's time in integer microseconds. The system's is read without building a
        # datetime: that is a third of the hot routes' check.
        self.now: Callable[[], int] = _system_now if clock is utc_now else self._clock_now
        self.public = public
        self.offers = offers
        self._signin_per_client = signin_per_client
        self._signin_per_login = signin_per_login
        self._turns = Turns()
        # In process, the hot routes' check calls the store directly, without a coroutine.
        self._memory = store if isinstance(store, MemoryStore) else None

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> RateLimits:
        """The limits these settings ask for, in Redis if ``PROMOS_REDIS_URL`` is set."""
        memory = MemoryStore(max_keys=settings.rate_limit_max_keys)
        store: Store = memory
        if settings.redis_url:
            store = RedisStore(
                settings.redis_url, prefix=settings.rate_limit_prefix, fallback=memory
            )
        return cls(
            store=store,
            clock=clock,
            public=_rate(settings.rate_limit_public, settings.rate_limit_public_window_seconds),
            offers=_rate(settings.rate_limit_offers, settings.rate_limit_offers_window_seconds),
            signin_per_client=_rate(
                settings.rate_limit_signin_per_client, settings.rate_limit_signin_window_seconds
            ),
            signin_per_login=_rate(
                settings.rate_limit_signin_per_login, settings.rate_limit_signin_window_seconds
            ),
        )

    def _clock_now(self) -> int:
        return int(self._clock().timestamp() * MICROS)

    async def check_public(self, client: str) -> None:
        """One request of ``client`` to a public read route."""
        if self.public is not None:
            await self._check("p:" + client, self.public, "from this address")

    async def check_offers(self, client: str) -> None:
        """One request of ``client`` to an Offers player route."""
        if self.offers is not None:
            await self._check("o:" + client, self.offers, "from this address")

    async def _check(self, key: str, rate: Rate, whose: str) -> None:
        now = self.now()
        memory = self._memory
        if memory is not None:
            wait = memory.hit_one(key, rate, now)
        else:
            wait = await self.store.hit((key,), (rate,), now)
        if wait:
            raise _too_many(f"too many requests {whose}", wait)

    @asynccontextmanager
    async def sign_in_attempt(self, *, client: str | None, login: str) -> AsyncIterator[None]:
        """Count one attempt to prove who ``login`` is; a failed one (``Unauthenticated``) stays.

        Counted before the password is checked, so that concurrent attempts cannot all pass
        a check that none has failed yet; given back when the attempt did not fail. Attempts
        at one login take turns in this process, so that many right ones at once (a fleet of
        services starting) do not use up the budget that only failures should.
        """
        # Hashed: login names (often e-mail addresses) stay out of Redis; one length.
        name = "sl:" + hashlib.sha256(login.casefold().encode()).hexdigest()[:32]
        keys: list[str] = []
        rates: list[Rate] = []
        if self._signin_per_client is not None and client is not None:
            keys.append("sc:" + client)
            rates.append(self._signin_per_client)
        if self._signin_per_login is not None:
            keys.append(name)
            rates.append(self._signin_per_login)
        if not keys:
            yield
            return
        async with self._turns.take(name):
            wait = await self.store.hit(keys, rates, self.now())
            if wait:
                raise _too_many("too many sign-in attempts", wait)
            try:
                yield
            except Unauthenticated:
                raise
            except Exception:
                await self.store.refund(keys, rates, self.now())
                raise
            await self.store.refund(keys, rates, self.now())

    async def close(self) -> None:
        await self.store.close()


class Turns:
    """One holder at a time per key, in this process; a key is kept only while it is held."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def take(self, key: str) -> AsyncIterator[None]:
        """Wait for the key's turn, and hold it."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]


def _system_now() -> int:
    return time.time_ns() // 1000


def _too_many(what: str, wait: int) -> TooManyRequests:
    seconds = retry_seconds(wait)
    return TooManyRequests(f"{what}: retry in {seconds} s", retry_after=seconds)
