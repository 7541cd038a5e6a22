"""The task store interface, one for every backend: SQLite (`sqlite_store`, the embedded default) and
Redis (`redis_store`, shared by several tasks-service replicas). `open_store(config)` picks one.

A store keeps serialized `Task` messages plus what it needs to find them: owner and creation time
(lists, newest first), state (the unfinished tasks a follower resumes), expiry (retention). Updates are
read-modify-write under the store's own atomicity (an SQLite transaction, a Redis WATCH), so two
replicas never lose each other's changes. Expired tasks are invisible at once and deleted by `purge`.

Watchers wait on `changes`: every update made through this process wakes them at once; the Redis
store also relays other replicas' updates (pub/sub); otherwise a watcher re-reads the task every
`watch_poll_seconds` (another process writing the same SQLite file).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Callable

from firecrest_mesh.tasks.v1 import tasks_pb2
from services.common.config import TasksConfig
from services.tasks.model import PageCursor, TaskFilter

Change = Callable[[tasks_pb2.Task], tasks_pb2.Task]


class ChangeSignals:
    """Wakes the watchers of a task in this process when it changes."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, task_id: str) -> None:
        for event in self._waiters.get(task_id, ()):
            event.set()

    async def wait(self, task_id: str, timeout: float) -> None:
        """Returns when `task_id` changed or after `timeout` seconds, whichever comes first."""
        event = asyncio.Event()
        waiters = self._waiters.setdefault(task_id, set())
        waiters.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(task_id, None)


class TaskStore(ABC):
    def __init__(self) -> None:
        self.changes = ChangeSignals()

    async def start(self) -> None:
        """Opens connections and background work (called once the event loop runs)."""

    @abstractmethod
    async def create(self, task: tasks_pb2.Task) -> None:
        """Stores a new task (its id is fresh: never an existing one)."""

    @abstractmethod
    async def get(self, task_id: str, now_us: int) -> tasks_pb2.Task | None:
        """The task, or None when there is none or it expired before `now_us`."""

    @abstractmethod
    async def update(self, task_id: str, change: Change, now_us: int) -> tasks_pb2.Task | None:
        """Atomically replaces the task with `change(task)` and returns the result; None when the task
        does not exist (or expired). Exceptions of `change` propagate and leave the task unchanged."""

    @abstractmethod
    async def delete(self, task_id: str) -> bool:
        """Removes the task; False when there was none."""

    @abstractmethod
    async def list_owned(self, owner: str, where: TaskFilter, limit: int, after: PageCursor | None,
                         now_us: int) -> list[tasks_pb2.Task]:
        """Up to `limit` of `owner`'s unexpired tasks matching `where`, newest first (then id
        descending), starting after `after`."""

    @abstractmethod
    async def list_active(self, kind: str) -> list[tasks_pb2.Task]:
        """Unfinished tasks (QUEUED, RUNNING) of `kind` (empty: any), oldest first."""

    @abstractmethod
    async def purge(self, now_us: int) -> int:
        """Deletes tasks that expired before `now_us`; returns how many."""

    async def close(self) -> None:
        """Releases connections."""


def open_store(config: TasksConfig) -> TaskStore:
    if config.store == "redis":
        from services.tasks.redis_store import RedisTaskStore
        return RedisTaskStore(config.redis_url)
    from services.tasks.sqlite_store import SqliteTaskStore
    return SqliteTaskStore(config.sqlite_path)
