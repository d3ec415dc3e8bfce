"""Serve many concurrent callers with few database round trips.

A ``Batcher`` collects the calls that arrive while its previous groups are still running and
hands each group to one ``run(items)`` call (one statement, one round trip). At low load a
call leaves at once, alone; under load, groups grow by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from promos.errors import Unavailable

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Calls ``run`` with groups of up to ``group_size`` items, ``concurrency`` groups at once.

    ``run`` returns one result per item, in order. If it raises, the group is run again in
    halves, down to single items, so that only the item that fails gets the exception; an
    ``Unavailable`` (the database is down) fails the whole group at once. ``run`` must
    therefore be safe to repeat for the items whose first run failed. ``linger`` (seconds)
    lets a call wait that long for company when fewer than ``group_size`` are waiting.
    """

    def __init__(
        self,
        run: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        group_size: int,
        concurrency: int,
        linger: float = 0.0,
        per_turn: bool = False,
    ) -> None:
        self._run = run
        self._group_size = group_size
        self._concurrency = concurrency
        self._linger = linger
        self._per_turn = per_turn
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._turn: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """The result of ``item``, once its group has run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if not self._per_turn:
            self._dispatch()
        elif self._turn is None:
            # The event loop's next turn: by then every request it read in this one has been
            # submitted too, and they leave together instead of the first alone.
            self._turn = loop.call_soon(self._on_turn)
        return await future

    async def drain(self) -> None:
        """Wait until every submitted item has its result (for a graceful shutdown)."""
        while self._pending or self._tasks:
            self._dispatch(force=True)
            if self._tasks:
                await asyncio.wait(set(self._tasks))

    def _dispatch(self, *, force: bool = False) -> None:
        if self._linger and not force and len(self._pending) < self._group_size:
            if self._timer is None and self._pending:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._linger, self._on_timer)
            return
        while self._pending and self._running < self._concurrency:
            group = self._pending[: self._group_size]
            del self._pending[: self._group_size]
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._serve(group))
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _on_turn(self) -> None:
        self._turn = None
        self._dispatch()

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch(force=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._running -= 1
        if self._pending:
            self._dispatch(force=True)

    async def _serve(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in group])
        except Exception as exc:  # noqa: BLE001 - each item's caller gets its own failure
            if len(group) == 1 or isinstance(exc, Unavailable):
                _fail(group, exc)  # an outage fails the whole group alike
                return
            # Something in one item's data, most likely: run the halves again, down to single
            # items, so that its failure is its own and never its neighbours'.
            half = len(group) // 2
            await self._serve(group[:half])
            await self._serve(group[half:])
            return
        except BaseException as exc:
            _fail(group, exc)
            raise
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(group: list[tuple[T, asyncio.Future[R]]], exc: BaseException) -> None:
    for _, future in group:
        if not future.done():
            future.set_exception(exc)
