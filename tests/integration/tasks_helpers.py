"""Helpers of the tasks tests: submit asynchronously through the gateway, follow a task's server-sent
events with a plain HTTP client, ask accounting (sacct) directly, and a job that runs until the test
lets it end (`held_job`)."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from services.common.config import REPO_ROOT

STREAM_TIMEOUT = httpx.Timeout(30, read=600)  # a bound on a hung stream, never an assertion on time
FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
HELD_AT_MOST = 300  # s: a held job's own bound, should the test never release it


def held_job(user: str = "alice") -> tuple[str, Path]:
    """(script, release): a job script that runs until the file `release` exists (the test creates it,
    e.g. once a restarted service is back; the job removes it), then exits 0; exit 3 if never released
    within HELD_AT_MOST s. It certainly runs across what the test does meanwhile, and ends right after."""
    release = Path(f"/home/{user}/held-job-{uuid.uuid4().hex[:10]}.go")
    quoted = shlex.quote(str(release))
    wait = f"until [ -e {quoted} ]; do sleep 0.2; done"
    return (f"#!/bin/bash\ntimeout {HELD_AT_MOST} bash -c {shlex.quote(wait)} || exit 3\nrm -f {quoted}\nexit 0\n",
            release)


def submit_async(client: httpx.Client, system: str, script: str, user: str = "alice") -> dict:
    resp = client.post(f"/compute/{system}/jobs/async",
                       json={"job": {"working_directory": f"/home/{user}", "script": script}})
    assert resp.status_code == 202, resp.text
    task = resp.json()
    assert resp.headers["location"] == f"/tasks/{task['id']}"
    return task


def events(client: httpx.Client, task_id: str, until=None, seen: list | None = None) -> list[dict]:
    """The task's SSE events until the stream ends (or `until(task)` is true); checks the framing.
    `seen` (optional) collects them as they come, for a caller that wants them after an error."""
    seen = [] if seen is None else seen
    with client.stream("GET", f"/tasks/{task_id}/events", timeout=STREAM_TIMEOUT) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if not line:
                continue
            assert line.startswith("data: "), line
            seen.append(json.loads(line[len("data: "):]))
            if until is not None and until(seen[-1]):
                break
    return seen


def until_running(client: httpx.Client, task_id: str) -> dict:
    """The task's first event in RUNNING; a task that ends first, or a stream silent past its bound,
    fails with what the cluster says of the task's job (`cluster_view`)."""
    seen: list[dict] = []
    try:
        events(client, task_id, until=lambda t: t["state"] == "RUNNING" or t["state"] in FINAL, seen=seen)
    except httpx.TimeoutException as exc:
        raise AssertionError(f"task {task_id} did not reach RUNNING\n{cluster_view(seen)}") from exc
    assert seen and seen[-1]["state"] == "RUNNING", f"task {task_id}\n{cluster_view(seen)}"
    return seen[-1]


def cluster_view(seen: list[dict]) -> str:
    """What a failed wait on a task's job needs to be understood: the task as last seen, its job in the
    controller and in accounting, the node, and the queue."""
    task = seen[-1] if seen else {}
    job = str((task.get("result") or {}).get("jobId") or "")
    commands = [["sinfo", "-h", "-o", "%P %N %T %E"], ["squeue", "-h", "-t", "PD,R,CG", "-o", "%i %u %j %T %r"]]
    if job:
        commands += [["squeue", "-h", "-t", "all", "-j", job, "-o", "%i %T %r %M %S"],
                     ["sacct", "-X", "-n", "-P", "-j", job, "-o", "JobID,State,ExitCode,Submit,Start"]]
    lines = [f"task: {json.dumps(task)}"]
    for argv in commands:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        out = run.stdout.splitlines()
        shown = "\n  ".join(out[:15] + ([f"... {len(out) - 15} more lines"] if len(out) > 15 else []))
        lines.append(f"$ {shlex.join(argv)} (exit {run.returncode}) {run.stderr.strip()[:300]}\n  {shown}")
    log = REPO_ROOT / "state" / "logs" / "compute.log"  # the embedded default's: is the follower going?
    if log.exists():
        rounds = [line[:300] for line in log.read_text(errors="replace").splitlines()[-5000:] if "follower" in line]
        lines.append("compute's last follower lines:\n  " + "\n  ".join(rounds[-6:]))
    return "\n".join(lines)


def sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().splitlines()[0] if out.strip() else ""


def watch_to_end(client: httpx.Client, task_id: str, attempts: int = 20) -> dict:
    """The task's final state, watching again after a dropped stream (a gateway or service restart),
    as an EventSource reconnects: each new watch starts with the current state."""
    for attempt in range(attempts):
        try:
            seen = events(client, task_id)
            if seen and seen[-1]["state"] in FINAL:
                return seen[-1]
        except (httpx.TransportError, AssertionError):
            if attempt == attempts - 1:
                raise
        time.sleep(1)
    raise AssertionError(f"task {task_id} did not end")


def ends_succeeded(client: httpx.Client, task_id: str, job_id: str) -> None:
    """After a restart: a new watch (the current state first, then to the end) sees the task SUCCEEDED
    with job `job_id`'s exit code 0, and the task stays readable."""
    last = watch_to_end(client, task_id)
    assert last["state"] == "SUCCEEDED" and last["result"]["exitCode"] == 0
    assert last["result"]["jobId"] == job_id
    assert client.get(f"/tasks/{task_id}").json()["state"] == "SUCCEEDED"
