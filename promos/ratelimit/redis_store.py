"""TATs in Redis, shared by every worker and node: one Lua script, one round trip per check.

If Redis fails, limits are kept in this process instead (the ``fallback`` store) for
``PAUSE_SECONDS``, with a warning, and Redis is tried again after that: a Redis outage
neither takes the service down nor switches the limits off, it only makes them per process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from promos.ratelimit.gcra import MICROS, MemoryStore, Rate

log = logging.getLogger(__name__)

# A check waits at most this long for Redis before the request is limited in process.
TIMEOUT_SECONDS = 0.25
# After a failure, Redis is left alone this long (so that no request waits on a dead one).
PAUSE_SECONDS = 5.0

# KEYS: the keys; ARGV: now, then interval and span of each key (integer microseconds).
# All keys pass, or none is counted. Returns 0, or the wait in microseconds.
_HIT = """
local now = tonumber(ARGV[1])
local wait = 0
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local span = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tat = tat + interval
  if tat - span - now > wait then wait = tat - span - now end
  tats[i] = tat
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%d', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
end
return 0
"""

# KEYS: the keys; ARGV: now, then the interval of each key. Takes one request back.
_REFUND = """
local now = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key))
  if tat then
    tat = tat - tonumber(ARGV[i + 1])
    if tat <= now then
      redis.call('DEL', key)
    else
      redis.call('SET', key, string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
    end
  end
end
return 0
"""


class RedisStore:
    """GCRA state in Redis under ``prefix``; each key expires once its TAT has passed."""

    def __init__(self, url: str, *, prefix: str, fallback: MemoryStore) -> None:
        self._redis = Redis.from_url(
            url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            # One immediate retry, for a pooled connection that Redis closed meanwhile.
            retry=Retry(NoBackoff(), 1),
        )
        self._prefix = prefix
        self._hit = self._redis.register_script(_HIT)
        self._refund = self._redis.register_script(_REFUND)
        self._fallback = fallback
        self._down_until = 0  # microseconds, on the limiter's clock

    async def hit(self, keys: Sequence[str], rates: Sequence[Rate], now: int) -> int:
        if now < self._down_until:
            return await self._fallback.hit(keys, rates, now)
        args = [now]
        for rate in rates:
            args += (rate.interval, rate.span)
        try:
            wait = await self._hit(keys=[self._prefix + k for k in keys], args=args)
        except (RedisError, OSError) as exc:
            self._failed(exc, now)
            return await self._fallback.hit(keys, rates, now)
        return int(wait)

    async def refund(self, keys: Sequence[str], rates: Sequence[Rate], now: int) -> None:
        if now < self._down_until:
            await self._fallback.refund(keys, rates, now)
            return
        args = [now, *(rate.interval for rate in rates)]
        try:
            await self._refund(keys=[self._prefix + k for k in keys], args=args)
        except (RedisError, OSError) as exc:
            self._failed(exc, now)
            await self._fallback.refund(keys, rates, now)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._fallback.close()

    def _failed(self, exc: Exception, now: int) -> None:
        self._down_until = now + int(PAUSE_SECONDS * MICROS)
        log.warning(
            "rate limits: Redis failed (%s: %s); limiting in this process for %.0f s",
            type(exc).__name__,
            exc,
            PAUSE_SECONDS,
        )
