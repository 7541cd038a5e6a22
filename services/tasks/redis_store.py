"""`RedisTaskStore`: the task store shared by several tasks-service replicas (Redis 7, redis-py asyncio).

Keys (prefix `fm:tasks:`):
- `t:<id>`: the serialized `Task`; a finished task's key expires at its `expire_time` (PXAT);
- `owner:<owner>`: sorted set of the owner's task ids scored by creation time (µs): lists, newest first;
- `active`: sorted set of unfinished task ids (creation time): what followers resume;
- `expiry`: sorted set of `<owner>\\n<id>` scored by expiry: `purge` drops the owners' index entries
  of tasks whose key Redis already expired.
An update is optimistic (WATCH the task's key, MULTI/EXEC, retry on a concurrent write), then published
on `changed` so that watchers on every replica wake at once.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from firecrest_mesh.tasks.v1 import tasks_pb2
from services.tasks import model
from services.tasks.model import PageCursor, TaskFilter
from services.tasks.store import Change, TaskStore

log = logging.getLogger(__name__)
PREFIX = "fm:tasks:"
ACTIVE = PREFIX + "active"
EXPIRY = PREFIX + "expiry"
CHANNEL = PREFIX + "changed"
LIST_BATCH = 200


def _key(task_id: str) -> str:
    return f"{PREFIX}t:{task_id}"


def _owner_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}"


class RedisTaskStore(TaskStore):
    def __init__(self, url: str):
        super().__init__()
        self._redis = aioredis.from_url(url)
        self._listener: asyncio.Task | None = None

    async def start(self) -> None:
        await self._redis.ping()
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        """Relays every replica's `changed` messages to this process's watchers; reconnects."""
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.changes.notify(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: watchers still poll meanwhile
                log.warning("task change notifications interrupted: %s", exc)
                await asyncio.sleep(1)

    async def close(self) -> None:
        if self._listener:
            self._listener.cancel()
        await self._redis.aclose()

    async def _changed(self, task_id: str) -> None:
        self.changes.notify(task_id)
        await self._redis.publish(CHANNEL, task_id)

    async def create(self, task):
        created = model.created_us(task)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_key(task.id), task.SerializeToString())
            pipe.zadd(_owner_key(task.owner), {task.id: created})
            if not model.is_final(task):
                pipe.zadd(ACTIVE, {task.id: created})
            await pipe.execute()

    @staticmethod
    def _visible(data: bytes | None, now_us: int) -> tasks_pb2.Task | None:
        if data is None:
            return None
        task = tasks_pb2.Task.FromString(data)
        expires = model.expire_us(task)
        return None if expires is not None and expires <= now_us else task

    async def get(self, task_id, now_us):
        return self._visible(await self._redis.get(_key(task_id)), now_us)

    async def update(self, task_id, change, now_us):
        key = _key(task_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    old = self._visible(await pipe.get(key), now_us)
                    if old is None:
                        await pipe.reset()
                        return None
                    new = change(old)
                    if new is old or new == old:
                        await pipe.reset()
                        return new
                    pipe.multi()
                    expires = model.expire_us(new)
                    if expires is not None:
                        pipe.set(key, new.SerializeToString(), pxat=max(1, expires // 1000))
                        pipe.zrem(ACTIVE, task_id)
                        pipe.zadd(EXPIRY, {f"{new.owner}\n{task_id}": expires})
                    else:
                        pipe.set(key, new.SerializeToString())
                    await pipe.execute()
                    break
                except WatchError:
                    continue  # another replica wrote the task meanwhile: read it again
        await self._changed(task_id)
        return new

    async def delete(self, task_id):
        key = _key(task_id)
        data = await self._redis.get(key)
        if data is None:
            return False
        owner = tasks_pb2.Task.FromString(data).owner
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zrem(_owner_key(owner), task_id)
            pipe.zrem(ACTIVE, task_id)
            pipe.zrem(EXPIRY, f"{owner}\n{task_id}")
            deleted, *_ = await pipe.execute()
        await self._changed(task_id)
        return bool(deleted)

    async def list_owned(self, owner, where, limit, after, now_us):
        found: list[tasks_pb2.Task] = []
        top = "+inf" if after is None else after.created_us
        offset = 0
        while len(found) < limit:
            batch = await self._redis.zrevrangebyscore(_owner_key(owner), top, "-inf", start=offset,
                                                       num=LIST_BATCH, withscores=True)
            if not batch:
                break
            offset += len(batch)
            ids = [(m.decode(), int(score)) for m, score in batch]
            ids = [(i, s) for i, s in ids if after is None or after.before(s, i)]
            if not ids:
                continue
            for data in await self._redis.mget([_key(i) for i, _ in ids]):
                task = self._visible(data, now_us)
                if task is not None and where.matches(task):
                    found.append(task)
        # Equal creation times come from Redis in reverse member order, which is the list's order.
        return found[:limit]

    async def list_active(self, kind):
        ids = [m.decode() for m in await self._redis.zrange(ACTIVE, 0, -1)]
        tasks = []
        for start in range(0, len(ids), LIST_BATCH):
            chunk = ids[start:start + LIST_BATCH]
            for data in await self._redis.mget([_key(i) for i in chunk]):
                if data is not None:
                    task = tasks_pb2.Task.FromString(data)
                    if not model.is_final(task) and (not kind or task.kind == kind):
                        tasks.append(task)
        return tasks

    async def purge(self, now_us):
        members = [m.decode() for m in await self._redis.zrangebyscore(EXPIRY, "-inf", now_us)]
        if not members:
            return 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in members:
                owner, task_id = member.split("\n", 1)
                pipe.zrem(_owner_key(owner), task_id)
                pipe.delete(_key(task_id))
                pipe.zrem(EXPIRY, member)
            await pipe.execute()
        return len(members)
