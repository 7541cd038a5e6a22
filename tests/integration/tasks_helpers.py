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


def events(client: httpx.Client, task_id: str, until=None) -> list[dict]:
    """The task's SSE events until the stream ends (or `until(task)` is true); checks the framing."""
    seen = []
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
