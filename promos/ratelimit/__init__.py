"""Rate limits: GCRA per key, kept in process or shared through Redis.

``RateLimits`` is the app's policy (which class of route is limited per what key);
``MemoryStore`` and ``RedisStore`` keep the counters.
"""

from __future__ import annotations

from promos.ratelimit.gcra import MemoryStore, Rate, Store
from promos.ratelimit.limits import RateLimits
from promos.ratelimit.redis_store import RedisStore

__all__ = ["MemoryStore", "Rate", "RateLimits", "RedisStore", "Store"]
