"""Benchmark of the tasks service and non-blocking compute, through the running mesh (`make up`).

1. Tasks read per second through the gateway: `GET /tasks/{id}` of one of alice's tasks at
   concurrency 1 and 32 (harness.measure: one httpx client per worker thread).
2. Submission latency: `POST /compute/{system}/jobs/async` (202 + task, sbatch runs afterwards)
   beside the synchronous v2 `POST /compute/{system}/jobs` (201 after sbatch), at concurrency 1.
3. Scheduler query rate of compute's job follower with 5 active job tasks (one per user) and with 500
   (100 per user, 5 users): the follower's own count per round (`job follower round` lines of
   state/logs/compute.log, field `queries`), over the same number of rounds. The 500 tasks are made
   through the internal TaskRecordsService (as `compute`, with the mesh certificate) with job ids no
   job has, so that they stay active without loading Slurm; they are cancelled and deleted afterwards.
   Such ids are the follower's dearest case: the controller does not hold them, so each round asks
   accounting too (`squeue` + `sacct` per user); a job that runs costs the `squeue` alone.
4. How long after the controller runs a job its task says RUNNING: async submissions of a job that
   waits for a file, one at a time; a loop reads squeue (as root, on this machine) and the task
   (`GET /tasks/{id}`) every POLL_SECONDS and notes when each first says running.

    .venv/bin/python bench/tasks.py [--rounds N]
Results: bench/results/tasks.md and tasks.json. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import RESULTS, Row, measure, percentile, table  # noqa: E402
from firecrest_mesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc  # noqa: E402
from services.common import mesh_tls  # noqa: E402
from services.common.config import load_config  # noqa: E402
from services.common.oidc_client import fetch_token  # noqa: E402

USERS = ("alice", "bob", "user01", "user02", "user03")
DEV_SECRETS = {"alice": "alice-secret", "bob": "bob-secret"}
FAKE_JOB_BASE = 900_000_000  # job ids far above what the local Slurm hands out
PACE_SECONDS = 0.3  # between submissions: below the gateway's per-user submission rate limit
POLL_SECONDS = 0.05  # the RUNNING-lag loop's period (its resolution)
RUNNING_SAMPLES = 8


def secret(config, user: str) -> str:
    return DEV_SECRETS.get(user) or config.state("idp", "clients", f"firecrest-{user}.secret").read_text().strip()


def client_for(config, user: str) -> httpx.Client:
    token = fetch_token(config.identity.token_url, f"firecrest-{user}", secret(config, user))
    return httpx.Client(base_url=f"http://{config.gateway.listen}", timeout=60,
                        headers={"Authorization": f"Bearer {token}"})


def follower_rounds(log: Path, offset: int) -> list[dict]:
    rounds = []
    with open(log, "rb") as f:
        f.seek(offset)
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("message") == "job follower round":
                rounds.append(record)
    return rounds


def query_rate(config, records, tasks_per_user: int, rounds: int) -> dict:
    """Makes `tasks_per_user` active job tasks for each of USERS, watches `rounds` follower rounds
    that saw all of them, removes them; returns queries per round and per second."""
    made = []
    for u, user in enumerate(USERS):
        for i in range(tasks_per_user):
            task = records.CreateTask(tasks_pb2.CreateTaskRequest(owner=user, system=config.systems[0].name,
                                                                  kind="job", message="bench")).task
            records.UpdateTask(tasks_pb2.UpdateTaskRequest(task_id=task.id, result=tasks_pb2.TaskResult(
                job_id=str(FAKE_JOB_BASE + u * 10_000 + i), scheduler_state="PENDING")))
            made.append(task.id)
    log = config.state("logs", "compute.log")
    offset = log.stat().st_size
    wanted = len(made)
    try:
        while True:
            seen = [r for r in follower_rounds(log, offset) if r.get("tasks", 0) >= wanted]
            if len(seen) >= rounds + 1:
                break
            time.sleep(0.5)
    finally:
        for task_id in made:
            records.UpdateTask(tasks_pb2.UpdateTaskRequest(task_id=task_id, state="CANCELLED",
                                                           message="bench: removed"))
    seen = seen[1:rounds + 1]  # the first round may have begun before the last task existed
    span = (time.mktime(time.strptime(seen[-1]["time"][:19], "%Y-%m-%dT%H:%M:%S"))
            - time.mktime(time.strptime(seen[0]["time"][:19], "%Y-%m-%dT%H:%M:%S")))
    queries = sum(r["queries"] for r in seen)
    return {"active_tasks": wanted, "users": len(USERS), "rounds": len(seen), "queries": queries,
            "queries_per_round": round(queries / len(seen), 2),
            "queries_per_s": round(queries / span, 3) if span > 0 else None, "task_ids": made}


def running_lag(client: httpx.Client, system: str, samples: int) -> list[float]:
    """Seconds from the controller's RUNNING to the task's, for `samples` jobs one after the other."""
    lags = []
    for _ in range(samples):
        release = Path(f"/home/alice/bench-held-{uuid.uuid4().hex[:10]}")
        script = (f"#!/bin/bash\ntimeout 120 bash -c 'until [ -e {release} ]; do sleep 0.1; done'\n"
                  f"rm -f {release}\n")
        resp = client.post(f"/compute/{system}/jobs/async",
                           json={"job": {"working_directory": "/home/alice", "script": script}})
        resp.raise_for_status()
        task_id = resp.json()["id"]
        controller = task = None
        deadline = time.monotonic() + 120
        try:
            while (controller is None or task is None) and time.monotonic() < deadline:
                now = time.perf_counter()
                current = client.get(f"/tasks/{task_id}").json()
                job_id = current["result"]["jobId"] if current.get("result") else ""
                if task is None and current["state"] == "RUNNING":
                    task = now
                if controller is None and job_id:
                    state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True,
                                           text=True).stdout.strip()
                    if state == "RUNNING":
                        controller = now
                time.sleep(POLL_SECONDS)
        finally:
            release.touch()
        if controller is not None and task is not None:
            lags.append(task - controller)
        while client.get(f"/tasks/{task_id}").json()["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return lags


def paced_submits(scenarios: dict, client, count: int) -> list[Row]:
    """Latency of each scenario at concurrency 1, interleaved, paced below the gateway's per-user rate
    limit of submissions (config gateway.policies: 10/s); req/s is therefore not a capacity figure."""
    latencies: dict[str, list[float]] = {name: [] for name in scenarios}
    errors = dict.fromkeys(scenarios, 0)
    for _ in range(count):
        for name, request in scenarios.items():
            start = time.perf_counter()
            try:
                request(client)
                latencies[name].append((time.perf_counter() - start) * 1000)
            except Exception:
                errors[name] += 1
            time.sleep(PACE_SECONDS)
    rows = []
    for name, values in latencies.items():
        values.sort()
        rows.append(Row(name, 1, count, errors[name], round(percentile(values, 0.5), 2),
                        round(percentile(values, 0.99), 2), round(statistics.fmean(values), 2) if values else 0,
                        float("nan")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="follower rounds per query-rate scenario")
    args = parser.parse_args()
    config = load_config()
    system = config.systems[0].name
    alice = client_for(config, "alice")
    token = alice.headers["Authorization"]

    def make_client():
        return httpx.Client(base_url=f"http://{config.gateway.listen}", timeout=60, headers={"Authorization": token})

    # 1. reads
    resp = alice.post(f"/compute/{system}/jobs/async",
                      json={"job": {"working_directory": "/home/alice", "script": "#!/bin/bash\ntrue\n"}})
    resp.raise_for_status()
    task_id = resp.json()["id"]

    def read(client):
        r = client.get(f"/tasks/{task_id}")
        if r.status_code != 200:
            raise RuntimeError(r.status_code)
    rows = [measure("GET /tasks/{id}", read, make_client, 1, 500),
            measure("GET /tasks/{id}", read, make_client, 32, 4000)]

    # 2. submit latency, async beside sync
    body = {"job": {"working_directory": "/home/alice", "script": "#!/bin/bash\ntrue\n"}}

    def submit_async(client):
        r = client.post(f"/compute/{system}/jobs/async", json=body)
        if r.status_code != 202:
            raise RuntimeError(r.status_code)

    def submit_sync(client):
        r = client.post(f"/compute/{system}/jobs", json=body)
        if r.status_code != 201:
            raise RuntimeError(r.status_code)
    rows += paced_submits({"POST /compute/{system}/jobs/async (202)": submit_async,
                           "POST /compute/{system}/jobs (201, sync v2)": submit_sync}, make_client(), 40)

    # 4. (first: the query-rate scenarios' fake tasks would share its rounds) RUNNING lag
    lags = sorted(running_lag(alice, system, RUNNING_SAMPLES))

    # 3. scheduler query rate of the follower
    with mesh_tls.channel(config, "compute", "tasks") as channel:
        records = tasks_pb2_grpc.TaskRecordsServiceStub(channel)
        few = query_rate(config, records, 1, args.rounds)
        many = query_rate(config, records, 100, args.rounds)
    few.pop("task_ids")
    many.pop("task_ids")
    for user in USERS:  # the bench's tasks are removed by their owners (finished: DELETE removes)
        owner = client_for(config, user)
        for t in owner.get("/tasks", params={"pageSize": 1000, "state": "CANCELLED"}).json()["tasks"]:
            if t["message"] == "bench: removed":
                owner.delete(f"/tasks/{t['id']}")

    interval = config.tasks.follow_interval_seconds
    notes = (f"Through the gateway on the shared machine (other engineers' load present). Follower interval "
             f"{interval} s.\n\nFrom the controller's RUNNING to the task's ({len(lags)} jobs, polled every "
             f"{POLL_SECONDS} s): p50 {percentile(lags, 0.5):.2f} s, max {max(lags, default=float('nan')):.2f} s.\n\n"
             f"Scheduler queries of compute's job follower (`squeue --user=U --jobs=...`, then `sacct --user=U --jobs=...` for "
             f"the jobs the controller no longer holds; these tasks' job ids are no job's: both, every round):\n\n"
             f"| active job tasks | users | rounds | queries | queries/round | queries/s |\n|---:|---:|---:|---:|---:|---:|\n"
             f"| {few['active_tasks']} | {few['users']} | {few['rounds']} | {few['queries']} | "
             f"{few['queries_per_round']} | {few['queries_per_s']} |\n"
             f"| {many['active_tasks']} | {many['users']} | {many['rounds']} | {many['queries']} | "
             f"{many['queries_per_round']} | {many['queries_per_s']} |\n")
    text = f"# tasks\n\n{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n\n{notes}\n{table(rows)}\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tasks.md").write_text(text)
    (RESULTS / "tasks.json").write_text(json.dumps({"rows": [r.__dict__ for r in rows],
                                                    "follower": {"5": few, "500": many},
                                                    "running_lag_s": [round(v, 3) for v in lags]}, indent=1))


if __name__ == "__main__":
    main()
