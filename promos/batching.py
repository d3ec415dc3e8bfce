"""Serve many concurrent callers with few database round trips.

A ``Batcher`` collects the calls that arrive while its previous groups are still running and
hands each group to one ``run(items)`` call (one statement, one round trip). At low load a
call leaves at once, alone; under load, groups grow by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Calls ``run`` with groups of up to ``group_size`` items, ``concurrency`` groups at once.

    ``run`` returns one result per item, in order. If it raises, every call of that group
    gets the exception.
    """

    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        group_size: int,
        concurrency: int,
    ) -> None:
        self._run = run
        self._group_size = group_size
        self._concurrency = concurrency
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._pending and self._running < self._concurrency:
            group = self._pending[: self._group_size]
            del self._pending[: self._group_size]
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._serve(group))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running -= 1
        self._dispatch()

    async def _serve(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - handed to the callers it concerns
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
