"""Single flight: concurrent identical calls share one in-flight call; nothing outlives it.

`SingleFlight.run(key, make)` starts `make()` as a task unless a call of the same key is in flight,
in which case the caller waits for that one. The key is forgotten the moment the call ends, so no
answer is ever served from memory to a caller who arrived after it was produced: a cache this is not.
Every waiter gets the call's result (or its exception); a waiter that is cancelled (its client went
away) leaves the call running for the others. Used by `SlurmScheduler` for job queries, keyed by
(user, system, query), so a burst of identical queries of one user costs one scheduler round trip.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Hashable


class SingleFlight:
    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Task] = {}

    def in_flight(self) -> int:
        return len(self._calls)

    async def run(self, key: Hashable, make: Callable[[], Awaitable[Any]]) -> Any:
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._calls[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, task: asyncio.Task) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" when every waiter left
