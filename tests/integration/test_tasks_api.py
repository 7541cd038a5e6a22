"""Tasks and non-blocking compute through the real gateway, Slurm and the tasks service's store:
async submission (202 + Location), the task's server-sent events read with httpx until a final state,
failures with their exit code, cancellation by DELETE (Slurm's accounting shows CANCELLED), owner-only
access (bob gets 404 for everything of alice's), listing with pages. Nothing is mocked; tests wait for
states, they never assert on time.

Every test runs on two deployments: the running mesh (one tasks service on SQLite), and the scale-out
form, two tasks-service replicas sharing Redis behind a gateway of their own with a compute of its own
(`redis_tasks_deployment`, tests/integration/conftest.py)."""

from __future__ import annotations

import time

import pytest

from tests.integration.tasks_helpers import FINAL, events, sacct_state, submit_async


@pytest.fixture(scope="module", params=["sqlite", "redis-two-replicas"])
def api(request, api):
    """api(user): the running mesh's gateway (the session's `api`), or the Redis deployment's."""
    return api if request.param == "sqlite" else request.getfixturevalue("redis_tasks_api")


@pytest.fixture(scope="module")
def system(config) -> str:
    return config.systems[0].name


def test_async_submit_is_watched_to_success(api, system):
    alice = api("alice")
    task = submit_async(alice, system, "#!/bin/bash\nsleep 2\necho done\n")
    assert task["state"] == "QUEUED" and task["kind"] == "job" and task["owner"] == "alice"
    seen = events(alice, task["id"])
    states = [e["state"] for e in seen]
    assert states[0] in ("QUEUED", "RUNNING")
    assert states[-1] == "SUCCEEDED" and states.count("SUCCEEDED") == 1  # the stream ends after it
    assert set(states) <= {"QUEUED", "RUNNING", "SUCCEEDED"}
    last = seen[-1]
    assert last["result"]["jobId"] and last["result"]["exitCode"] == 0
    assert last["result"]["schedulerState"] == "COMPLETED" and "expireTime" in last
    # a watcher that comes back gets the final state at once, and the stream ends
    assert [e["state"] for e in events(alice, task["id"])] == ["SUCCEEDED"]
    assert alice.get(f"/tasks/{task['id']}").json() == last


def test_failing_script_ends_failed_with_its_exit_code(api, system):
    alice = api("alice")
    task = submit_async(alice, system, "#!/bin/bash\nexit 3\n")
    last = events(alice, task["id"])[-1]
    assert last["state"] == "FAILED"
    assert last["result"]["exitCode"] == 3 and last["result"]["schedulerState"] == "FAILED"
    assert "exit code 3" in last["error"]["message"]


def test_invalid_job_is_refused_before_any_task(api, system):
    resp = api("alice").post(f"/compute/{system}/jobs/async",
                             json={"job": {"working_directory": "relative", "script": "true"}})
    assert resp.status_code == 400


def test_refused_submission_fails_the_task(api, system):
    alice = api("alice")
    resp = alice.post(f"/compute/{system}/jobs/async", json={"job": {
        "working_directory": "/home/alice", "script": "#!/bin/bash\ntrue\n", "partition": "no-such-partition"}})
    assert resp.status_code == 202
    last = events(alice, resp.json()["id"])[-1]
    assert last["state"] == "FAILED" and last["error"]["code"] == 400 and not last["result"]["jobId"]


def test_delete_of_a_running_task_cancels_its_job(api, system):
    alice = api("alice")
    task = submit_async(alice, system, "#!/bin/bash\nsleep 600\n")
    running = events(alice, task["id"], until=lambda t: t["state"] == "RUNNING" or t["state"] in FINAL)[-1]
    assert running["state"] == "RUNNING", running
    job_id = running["result"]["jobId"]
    resp = alice.delete(f"/tasks/{task['id']}")
    assert resp.status_code == 204 and resp.content == b""
    assert alice.get(f"/tasks/{task['id']}").json()["state"] == "CANCELLED"
    deadline = time.monotonic() + 120
    while not sacct_state(job_id).startswith("CANCELLED"):
        assert time.monotonic() < deadline, sacct_state(job_id)
        time.sleep(1)
    # a finished task is removed by a second DELETE
    assert alice.delete(f"/tasks/{task['id']}").status_code == 204
    assert alice.get(f"/tasks/{task['id']}").status_code == 404


def test_bob_gets_404_for_everything_of_alices(api, system):
    alice, bob = api("alice"), api("bob")
    task = submit_async(alice, system, "#!/bin/bash\nsleep 30\n")
    path = f"/tasks/{task['id']}"
    for resp in (bob.get(path), bob.get(path + "/events"), bob.delete(path)):
        assert resp.status_code == 404, resp.text
        assert resp.json()["message"] == "Task not found"
    assert task["id"] not in {t["id"] for t in bob.get("/tasks", params={"pageSize": 1000}).json()["tasks"]}
    assert alice.get(path).json()["state"] != "CANCELLED"  # bob's DELETE did nothing
    assert alice.delete(path).status_code == 204


def test_list_pages_newest_first_and_filters(api, system):
    alice = api("alice")
    for _ in range(3):
        submit_async(alice, system, "#!/bin/bash\ntrue\n")
    first = alice.get("/tasks", params={"pageSize": 2, "kind": "job"}).json()
    assert len(first["tasks"]) == 2 and first["nextPageToken"]
    second = alice.get("/tasks", params={"pageSize": 2, "kind": "job", "pageToken": first["nextPageToken"]}).json()
    listed = first["tasks"] + second["tasks"]
    assert len({t["id"] for t in listed}) == len(listed)
    times = [t["createTime"] for t in listed]
    assert times == sorted(times, reverse=True)
    assert alice.get("/tasks", params={"state": "DONE"}).status_code == 400
    assert alice.get("/tasks", params={"pageToken": "garbage"}).status_code == 400
    assert all(t["state"] == "FAILED" for t in alice.get("/tasks", params={"state": "FAILED"}).json()["tasks"])
