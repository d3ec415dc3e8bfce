"""The generic cell rate algorithm (GCRA), and the in-process store of its state.

Each key keeps one number: its theoretical arrival time (TAT), in integer microseconds.
A request at ``now`` passes if ``max(TAT, now) + interval - period <= now``, and then moves
the TAT on by one interval. A fresh key takes ``limit`` requests at once, then one per
``period / limit``; the wait is known exactly, so ``Retry-After`` is exact too. Integer
microseconds keep the arithmetic exact in Python and in Redis' Lua alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``period`` seconds, all of them at once if they come at once."""

    limit: int
    period: float
    # Microseconds between two requests once the burst is spent, and how far ahead of now
    # a key's TAT may run (the period, a whole number of intervals). Worked out once.
    interval: int = field(init=False)
    span: int = field(init=False)

    def __post_init__(self) -> None:
        interval = max(1, round(self.period * MICROS / self.limit))
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "span", interval * self.limit)


def retry_seconds(wait: int) -> int:
    """A wait in microseconds as whole seconds for ``Retry-After``, rounded up."""
    return -(-wait // MICROS)


class Store(Protocol):
    """Where the TATs live: this process, or Redis for all processes and nodes."""

    async def hit(self, keys: Sequence[str], rates: Sequence[Rate], now: int) -> int:
        """Count one request against every key if all of them allow it: 0, else the wait (µs)."""
        ...

    async def refund(self, keys: Sequence[str], rates: Sequence[Rate], now: int) -> None:
        """Take back one request that ``hit`` counted (a sign-in that succeeded)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """TATs in a dict of this process, at most ``max_keys`` of them."""

    def __init__(self, *, max_keys: int) -> None:
        self._tats: dict[str, int] = {}
        self._max_keys = max_keys

    def __len__(self) -> int:
        return len(self._tats)

    def hit_one(self, key: str, rate: Rate, now: int) -> int:
        """``hit`` for one key, without a coroutine: the cheap check of the hot routes."""
        tats = self._tats
        tat = tats.get(key)
        if tat is None:
            if len(tats) >= self._max_keys:
                self._make_room(now)
            tat = now
        elif tat < now:
            tat = now
        tat += rate.interval
        wait = tat - rate.span - now
        if wait > 0:
            return wait
        tats[key] = tat
        return 0

    async def hit(self, keys: Sequence[str], rates: Sequence[Rate], now: int) -> int:
        if len(keys) == 1:
            return self.hit_one(keys[0], rates[0], now)
        tats = self._tats
        moved = []
        wait = 0
        for key, rate in zip(keys, rates, strict=True):
            tat = max(tats.get(key, now), now) + rate.interval
            wait = max(wait, tat - rate.span - now)
            moved.append(tat)
        if wait > 0:
            return wait
        if len(tats) + len(keys) > self._max_keys:
            self._make_room(now)
        tats.update(zip(keys, moved, strict=True))
        return 0

    async def refund(self, keys: Sequence[str], rates: Sequence[Rate], now: int) -> None:
        tats = self._tats
        for key, rate in zip(keys, rates, strict=True):
            tat = tats.get(key)
            if tat is None:
                continue
            tat -= rate.interval
            if tat <= now:
                del tats[key]  # as good as a fresh key
            else:
                tats[key] = tat

    async def close(self) -> None:
        self._tats.clear()

    def _make_room(self, now: int) -> None:
        """Forget keys whose TAT has passed; if that frees too little, the oldest keys too.

        A key whose TAT has passed is as good as a fresh one, so forgetting it changes
        nothing. Only when the cap is full of live keys (many clients, or an attack from
        many addresses) do the keys made longest ago lose their count. Freeing a tenth at
        a time keeps this O(n) sweep rare.
        """
        tats = self._tats
        for key in [k for k, tat in tats.items() if tat <= now]:
            del tats[key]
        target = self._max_keys - max(1, self._max_keys // 10)
        excess = len(tats) - target
        if excess > 0:
            for key in list(islice(tats, excess)):
                del tats[key]
