"""The Redis task store against a real redis-server (Debian's), started here on loopback with its own
port and data folder and stopped afterwards: the same pages, filters, updates, retention and purge as
the SQLite store's unit tests, plus a change on one store waking a watcher on another (two replicas)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import pytest

from firecrest_mesh.tasks.v1 import tasks_pb2
from services.tasks import model
from services.tasks.redis_store import RedisTaskStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = shutil.which("redis-server")
    assert server, "redis-server is installed by cluster/install-packages.sh (make up)"
    port, folder = _free_port(), tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                             "--save", "", "--appendonly", "yes"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_redis_store(redis_url):
    async def scenario():
        a, b = RedisTaskStore(redis_url), RedisTaskStore(redis_url)  # two replicas
        await a.start()
        await b.start()
        made = []
        for i in range(7):
            t = model.new_task("alice", "local", "job" if i % 2 else "transfer", "", at_us=1000 + i // 3)
            await a.create(t)
            made.append(t)
        await a.create(model.new_task("bob", "local", "job", "", at_us=5))
        seen, after = [], None
        while True:
            page = await b.list_owned("alice", model.TaskFilter(), 3, after, 10_000)
            seen += page[:2]
            if len(page) <= 2:
                break
            after = model.PageCursor(model.created_us(page[1]), page[1].id)
        keys = [(model.created_us(t), t.id) for t in seen]
        assert keys == sorted(keys, reverse=True) and {t.id for t in seen} == {t.id for t in made}
        assert len(await b.list_owned("alice", model.TaskFilter(kind="job"), 100, None, 10_000)) == 3

        target = made[0]
        waiter = asyncio.ensure_future(b.changes.wait(target.id, 30))
        await asyncio.sleep(0.2)
        done = tasks_pb2.UpdateTaskRequest(state="SUCCEEDED", result=tasks_pb2.TaskResult(job_id="1", exit_code=0))
        now = model.now_us()
        await a.update(target.id, lambda t: model.updated(t, done, 1, at_us=now), now)
        await asyncio.wait_for(waiter, 10)  # woken by the other replica's change, not by the timeout
        assert (await b.get(target.id, now)).state == "SUCCEEDED"
        assert target.id not in {t.id for t in await b.list_active("")}
        assert await b.get(target.id, now + 2_000_000) is None  # expired for readers at once
        assert await a.purge(now + 2_000_000) == 1
        assert await a.delete(made[1].id) and not await a.delete(made[1].id)
        await a.close()
        await b.close()
    asyncio.run(scenario())
