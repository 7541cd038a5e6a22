"""Task logic and the SQLite store (a temporary file): ids, page tokens, updates and final states,
retention, and lists newest first through pages with filters. The Redis store runs the same checks
in tests/integration/test_tasks_redis.py against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest

from firecrest_mesh.tasks.v1 import tasks_pb2
from services.common.errors import BadRequest, NotFound
from services.tasks import model
from services.tasks.sqlite_store import SqliteTaskStore

HOUR_US = 3600 * 1_000_000


def run(coro):
    return asyncio.run(coro)


def test_ids_are_unguessable_and_url_safe():
    ids = {model.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(model.ID_RE.match(i) for i in ids)
    with pytest.raises(NotFound):
        model.check_id("../etc/passwd")


def test_page_token_round_trip_and_garbage():
    cursor = model.PageCursor(1234567, model.new_id())
    assert model.PageCursor.parse(cursor.token()) == cursor
    assert model.PageCursor.parse("") is None
    for bad in ("x", "!!!", model.PageCursor(1, "short").token()):
        with pytest.raises(BadRequest):
            model.PageCursor.parse(bad)


def test_page_size_bounds():
    assert model.page_size(0) == model.DEFAULT_PAGE_SIZE
    assert model.page_size(5) == 5
    for bad in (-1, model.MAX_PAGE_SIZE + 1):
        with pytest.raises(BadRequest):
            model.page_size(bad)


def test_final_state_stamps_expiry_and_never_changes():
    task = model.new_task("alice", "local", "job", "", at_us=10)
    running = model.updated(task, tasks_pb2.UpdateTaskRequest(state="RUNNING"), 60, at_us=20)
    assert running.state == "RUNNING" and not running.HasField("expire_time")
    done = model.updated(running, tasks_pb2.UpdateTaskRequest(
        state="SUCCEEDED", result=tasks_pb2.TaskResult(job_id="7", exit_code=0)), 60, at_us=30)
    assert model.expire_us(done) == 30 + 60 * 1_000_000
    assert done.result.HasField("exit_code") and done.result.exit_code == 0
    with pytest.raises(model.TaskFinal):
        model.updated(done, tasks_pb2.UpdateTaskRequest(state="FAILED"), 60)
    with pytest.raises(BadRequest):
        model.updated(running, tasks_pb2.UpdateTaskRequest(state="DONE"), 60)
    # nothing to change: the same task, no new update_time
    assert model.updated(running, tasks_pb2.UpdateTaskRequest(state="RUNNING"), 60, at_us=99) is running


@pytest.fixture
def store(tmp_path):
    s = SqliteTaskStore(tmp_path / "tasks.db")
    run(s.start())
    yield s
    run(s.close())


def _seed(store, owner, count, *, start_us=0, same_time_every=1, **fields):
    tasks = []
    for i in range(count):
        t = model.new_task(owner, fields.get("system", "local"), fields.get("kind", "job"), "",
                           at_us=start_us + (i // same_time_every))
        run(store.create(t))
        tasks.append(t)
    return tasks


def _all_pages(store, owner, size, where=model.TaskFilter(), now=HOUR_US):
    seen, after = [], None
    while True:
        page = run(store.list_owned(owner, where, size + 1, after, now))
        seen += page[:size]
        if len(page) <= size:
            return seen
        after = model.PageCursor(model.created_us(page[size - 1]), page[size - 1].id)


def test_list_newest_first_through_pages_with_ties(store):
    mine = _seed(store, "alice", 11, same_time_every=3)  # groups of three share a creation time
    _seed(store, "bob", 4)
    listed = _all_pages(store, "alice", 4)
    assert len(listed) == 11 and {t.id for t in listed} == {t.id for t in mine}
    keys = [(model.created_us(t), t.id) for t in listed]
    assert keys == sorted(keys, reverse=True)


def test_filters_and_owner_scope(store):
    _seed(store, "alice", 3, kind="job")
    _seed(store, "alice", 2, kind="transfer", system="other")
    assert len(_all_pages(store, "alice", 2, model.TaskFilter(kind="transfer"))) == 2
    assert len(_all_pages(store, "alice", 2, model.TaskFilter(system="local"))) == 3
    assert _all_pages(store, "carol", 2) == []


def test_update_retention_purge_and_active(store):
    a, b = _seed(store, "alice", 2)
    done = tasks_pb2.UpdateTaskRequest(state="FAILED", error=tasks_pb2.TaskError(code=500, message="x"))
    run(store.update(a.id, lambda t: model.updated(t, done, 60, at_us=100), 100))
    assert [t.id for t in run(store.list_active("job"))] == [b.id]
    assert run(store.get(a.id, 200)).state == "FAILED"
    after_expiry = 100 + 61 * 1_000_000
    assert run(store.get(a.id, after_expiry)) is None  # invisible at once
    assert run(store.purge(after_expiry)) == 1
    assert run(store.update(a.id, lambda t: t, after_expiry)) is None
    assert run(store.delete(b.id)) and not run(store.delete(b.id))


def test_failed_change_leaves_task_unchanged(store):
    (a,) = _seed(store, "alice", 1)

    def broken(task):
        raise model.TaskFinal("no")
    with pytest.raises(model.TaskFinal):
        run(store.update(a.id, broken, 1))
    assert run(store.get(a.id, 1)) == a
