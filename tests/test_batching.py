"""How concurrent calls are grouped (promos.batching): groups follow the load.

Issuing gathers every request that the event loop read in one turn into one group, and starts
it at once when a statement slot is free, so that a request alone never lingers and requests
never wait for a running group while another slot idles.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from promos.batching import Batcher


def recording(runs: list[list[int]], hold: asyncio.Event | None = None):
    async def run(items: Sequence[int]) -> list[int]:
        runs.append(list(items))
        if hold is not None and 0 in items:
            await hold.wait()
        return [10 * i for i in items]

    return run


async def test_calls_made_in_one_turn_of_the_event_loop_leave_as_one_group():
    runs: list[list[int]] = []
    batcher: Batcher[int, int] = Batcher(
        recording(runs), group_size=64, concurrency=4, per_turn=True
    )

    answers = await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    assert answers == [0, 10, 20, 30, 40]
    assert runs == [[0, 1, 2, 3, 4]]


async def test_without_per_turn_the_first_call_leaves_alone():
    runs: list[list[int]] = []
    batcher: Batcher[int, int] = Batcher(recording(runs), group_size=64, concurrency=1)

    await asyncio.gather(*(batcher.submit(i) for i in range(5)))

    assert runs == [[0], [1, 2, 3, 4]]


async def test_a_call_leaves_at_once_while_another_group_runs_if_a_slot_is_free():
    runs: list[list[int]] = []
    hold = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(
        recording(runs, hold), group_size=64, concurrency=2, per_turn=True
    )
    first = asyncio.ensure_future(batcher.submit(0))
    while not runs:
        await asyncio.sleep(0)

    assert await batcher.submit(1) == 10  # served while the first group still runs

    assert not first.done()
    hold.set()
    assert await first == 0
    assert runs == [[0], [1]]


async def test_calls_wait_for_a_slot_and_then_leave_together():
    runs: list[list[int]] = []
    hold = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(
        recording(runs, hold), group_size=64, concurrency=1, per_turn=True
    )
    first = asyncio.ensure_future(batcher.submit(0))
    while not runs:
        await asyncio.sleep(0)
    waiting = asyncio.gather(*(batcher.submit(i) for i in range(1, 4)))
    await asyncio.sleep(0.01)

    assert runs == [[0]]
    hold.set()
    assert await waiting == [10, 20, 30]
    await first
    assert runs == [[0], [1, 2, 3]]
