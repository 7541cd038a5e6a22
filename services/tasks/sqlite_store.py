"""`SqliteTaskStore`: the embedded default task store, one SQLite file in WAL mode (state/tasks/).

One connection, used by one worker thread (SQLite calls block; the event loop never waits on the
file). The task itself is its serialized `Task`; the columns beside it are what queries filter and
sort on. An update is one IMMEDIATE transaction (read, change, write), so a second process on the
same file cannot interleave. Watchers in this process are woken by `changes`; the service re-reads
every `watch_poll_seconds` for writes by other processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from firecrest_mesh.tasks.v1 import tasks_pb2
from services.tasks import model
from services.tasks.model import PageCursor, TaskFilter
from services.tasks.store import Change, TaskStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    system TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expire_us INTEGER,            -- NULL while unfinished
    data BLOB NOT NULL            -- the serialized firecrest_mesh.tasks.v1.Task
);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks (owner, created_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS tasks_by_expiry ON tasks (expire_us) WHERE expire_us IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_active ON tasks (kind, created_us) WHERE expire_us IS NULL;
"""


def _row(task: tasks_pb2.Task) -> tuple:
    return (task.owner, task.system, task.kind, task.state, model.created_us(task), model.expire_us(task),
            task.SerializeToString())


def _task(data: bytes) -> tasks_pb2.Task:
    return tasks_pb2.Task.FromString(data)


class SqliteTaskStore(TaskStore):
    def __init__(self, path: Path):
        super().__init__()
        self._path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tasks-sqlite")
        self._db: sqlite3.Connection | None = None

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across a process crash, fsync at checkpoints
        db.executescript(SCHEMA)
        self._db = db

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        await self._call(self._open)

    async def close(self) -> None:
        if self._db is not None:
            await self._call(self._db.close)
        self._executor.shutdown(wait=False)

    # -- blocking parts, on the store's thread ------------------------------------------------------

    def _create(self, task: tasks_pb2.Task) -> None:
        self._db.execute("INSERT INTO tasks (id, owner, system, kind, state, created_us, expire_us, data) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (task.id, *_row(task)))

    def _get(self, task_id: str, now_us: int) -> tasks_pb2.Task | None:
        row = self._db.execute("SELECT data FROM tasks WHERE id = ? AND (expire_us IS NULL OR expire_us > ?)",
                               (task_id, now_us)).fetchone()
        return _task(row[0]) if row else None

    def _update(self, task_id: str, change: Change, now_us: int) -> tasks_pb2.Task | None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT data FROM tasks WHERE id = ? AND (expire_us IS NULL OR expire_us > ?)",
                             (task_id, now_us)).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            old = _task(row[0])
            new = change(old)
            if new is not old and new != old:
                db.execute("UPDATE tasks SET owner = ?, system = ?, kind = ?, state = ?, created_us = ?, "
                           "expire_us = ?, data = ? WHERE id = ?", (*_row(new), task_id))
            db.execute("COMMIT")
            return new
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _delete(self, task_id: str) -> bool:
        return self._db.execute("DELETE FROM tasks WHERE id = ?", (task_id,)).rowcount > 0

    def _list_owned(self, owner: str, where: TaskFilter, limit: int, after: PageCursor | None,
                    now_us: int) -> list[tasks_pb2.Task]:
        sql = ["SELECT data FROM tasks WHERE owner = ? AND (expire_us IS NULL OR expire_us > ?)"]
        args: list = [owner, now_us]
        for column, value in (("state", where.state), ("kind", where.kind), ("system", where.system)):
            if value:
                sql.append(f"AND {column} = ?")
                args.append(value)
        if after is not None:
            sql.append("AND (created_us < ? OR (created_us = ? AND id < ?))")
            args += [after.created_us, after.created_us, after.task_id]
        sql.append("ORDER BY created_us DESC, id DESC LIMIT ?")
        args.append(limit)
        return [_task(r[0]) for r in self._db.execute(" ".join(sql), args)]

    def _list_active(self, kind: str) -> list[tasks_pb2.Task]:
        if kind:
            rows = self._db.execute("SELECT data FROM tasks WHERE expire_us IS NULL AND kind = ? "
                                    "ORDER BY created_us", (kind,))
        else:
            rows = self._db.execute("SELECT data FROM tasks WHERE expire_us IS NULL ORDER BY created_us")
        return [t for t in (_task(r[0]) for r in rows) if not model.is_final(t)]

    def _purge(self, now_us: int) -> int:
        return self._db.execute("DELETE FROM tasks WHERE expire_us IS NOT NULL AND expire_us <= ?",
                                (now_us,)).rowcount

    # -- the interface --------------------------------------------------------------------------------

    async def create(self, task):
        await self._call(self._create, task)

    async def get(self, task_id, now_us):
        return await self._call(self._get, task_id, now_us)

    async def update(self, task_id, change, now_us):
        task = await self._call(self._update, task_id, change, now_us)
        if task is not None:
            self.changes.notify(task_id)
        return task

    async def delete(self, task_id):
        deleted = await self._call(self._delete, task_id)
        self.changes.notify(task_id)
        return deleted

    async def list_owned(self, owner, where, limit, after, now_us):
        return await self._call(self._list_owned, owner, where, limit, after, now_us)

    async def list_active(self, kind):
        return await self._call(self._list_active, kind)

    async def purge(self, now_us):
        return await self._call(self._purge, now_us)
