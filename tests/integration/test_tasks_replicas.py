"""Two tasks-service replicas sharing Redis really both serve (the scale-out form of issue 10, on the
deployment of `redis_tasks_deployment`, tests/integration/conftest.py):
- the gateway spreads users' reads over both: each replica's own /metrics counts GetTask calls;
- the compute service's mesh client spreads its task records over both (ListActiveTasks of the
  follower on each replica's metrics);
- a watch held on one replica sees a change made through the other (Redis is the one store, its
  notifications wake the watcher), asked of each replica directly with the gateway's mesh identity;
- issue 10's restarts on this form: a replica killed mid-job (the other serves on), both replicas
  stopped and started again, compute stopped and started again: the task still ends SUCCEEDED with its
  job. These stop only the deployment's own processes, never the shared mesh's.
Tests wait for what they check; they never assert on time."""

from __future__ import annotations

import re
import signal
import threading
import time

import grpc
import httpx
import pytest

from firecrest_mesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from services.common import mesh_pki, mesh_tls
from tests.integration.tasks_helpers import FINAL, ends_succeeded, events, held_job, submit_async, until_running

TASKS = "/firecrest_mesh.tasks.v1.TasksService/"
RECORDS = "/firecrest_mesh.tasks.v1.TaskRecordsService/"
WAIT_SECONDS = 120  # bound on waiting for a counter or a state, not an assertion on time


@pytest.fixture(scope="module")
def deployment(redis_tasks_deployment):
    return redis_tasks_deployment


@pytest.fixture(scope="module")
def system(config) -> str:
    return config.systems[0].name


def served(metrics_url: str, method: str) -> float:
    """How many calls of `method` a replica served with OK (its firecrest_rpc_requests_total)."""
    text = httpx.get(metrics_url, timeout=10).text
    pattern = re.compile(r'^firecrest_rpc_requests_total\{(?=[^}]*method="%s")(?=[^}]*code="OK")[^}]*\} (\S+)$'
                         % re.escape(method), re.M)
    return sum(float(value) for value in pattern.findall(text))


def replica_channel(deployment, replica: int) -> grpc.Channel:
    """A channel to one tasks replica, as the gateway (mesh identity `envoy`) would call it."""
    address = deployment.config.addresses("tasks")[replica]
    return grpc.secure_channel(str(address), mesh_tls.channel_credentials(deployment.config, mesh_pki.GATEWAY),
                               options=[("grpc.ssl_target_name_override", "tasks")])


def test_the_gateway_spreads_reads_over_both_replicas(deployment, redis_tasks_api, system):
    alice = redis_tasks_api("alice")
    task = submit_async(alice, system, "#!/bin/bash\ntrue\n")
    before = [served(url, TASKS + "GetTask") for url in deployment.tasks_exporters]
    for _ in range(20):
        resp = alice.get(f"/tasks/{task['id']}")
        assert resp.status_code == 200 and resp.json()["id"] == task["id"]  # whichever replica answered
    after = [served(url, TASKS + "GetTask") for url in deployment.tasks_exporters]
    gained = [b - a for a, b in zip(before, after)]
    assert sum(gained) >= 20 and all(g > 0 for g in gained), gained
    assert events(alice, task["id"])[-1]["state"] == "SUCCEEDED"


def test_compute_records_tasks_through_both_replicas(deployment, redis_tasks_api, system):
    """The follower's rounds (ListActiveTasks every follow interval) reach each replica in turn."""
    events(redis_tasks_api("alice"), submit_async(redis_tasks_api("alice"), system, "#!/bin/bash\ntrue\n")["id"])
    deadline = time.monotonic() + WAIT_SECONDS
    while not all(served(url, RECORDS + "ListActiveTasks") > 0 for url in deployment.tasks_exporters):
        assert time.monotonic() < deadline, [served(url, RECORDS + "ListActiveTasks")
                                             for url in deployment.tasks_exporters]
        time.sleep(1)
    assert sum(served(url, RECORDS + "CreateTask") for url in deployment.tasks_exporters) >= 1


@pytest.mark.parametrize("watched, changed", [(0, 1), (1, 0)])
def test_a_watch_on_one_replica_sees_a_delete_through_the_other(deployment, redis_tasks_api, token, system,
                                                                 watched, changed):
    alice = redis_tasks_api("alice")
    task = submit_async(alice, system, "#!/bin/bash\nsleep 600\n")
    # wait until compute recorded the job id (written through either replica)
    seen = events(alice, task["id"], until=lambda t: bool(t["result"]["jobId"]) or t["state"] in FINAL)
    assert seen[-1]["result"]["jobId"] and seen[-1]["state"] not in FINAL, seen[-1]
    metadata = (("authorization", f"Bearer {token('alice')}"),)
    watch_channel, change_channel = replica_channel(deployment, watched), replica_channel(deployment, changed)
    try:
        stream = tasks_pb2_grpc.TasksServiceStub(watch_channel).WatchTask(
            tasks_pb2.WatchTaskRequest(task_id=task["id"]), metadata=metadata, timeout=WAIT_SECONDS)
        states: list[str] = []
        first = threading.Event()

        def read() -> None:
            for update in stream:
                states.append(update.state)
                first.set()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert first.wait(WAIT_SECONDS), "the watch sent no current state"
        assert states[0] in ("QUEUED", "RUNNING")
        tasks_pb2_grpc.TasksServiceStub(change_channel).DeleteTask(
            tasks_pb2.DeleteTaskRequest(task_id=task["id"]), metadata=metadata, timeout=60)
        reader.join(WAIT_SECONDS)
        assert not reader.is_alive(), f"replica {watched}'s watch did not end: {states}"
        assert states[-1] == "CANCELLED", states  # the stream ended after the other replica's change
    finally:
        watch_channel.close()
        change_channel.close()
    assert alice.get(f"/tasks/{task['id']}").json()["state"] == "CANCELLED"


@pytest.mark.parametrize("stopped", [["tasks-0"], ["tasks-0", "tasks-1"], ["compute"]],
                         ids=["one-replica-killed", "both-replicas", "compute"])
def test_task_completes_across_a_restart(deployment, redis_tasks_api, system, stopped):
    alice = redis_tasks_api("alice")
    script, release = held_job()  # runs until released below, once the stopped processes are back
    task = submit_async(alice, system, script)
    try:
        running = until_running(alice, task["id"])
        try:
            for name in stopped:  # one replica: killed outright; otherwise a clean stop
                deployment.stop(name, signal.SIGKILL if len(stopped) == 1 and name.startswith("tasks")
                                else signal.SIGTERM)
            if stopped == ["tasks-0"]:  # the other replica serves meanwhile, from the same Redis
                for _ in range(6):
                    resp = alice.get(f"/tasks/{task['id']}")
                    assert resp.status_code == 200 and resp.json()["state"] in ("RUNNING", "SUCCEEDED"), resp.text
        finally:
            for name in stopped:
                deployment.start(name)
    finally:
        release.touch()  # the job ends now (also when the test failed: no job left waiting)
    ends_succeeded(alice, task["id"], running["result"]["jobId"])
