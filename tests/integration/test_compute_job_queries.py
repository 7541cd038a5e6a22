"""Integration tests of job queries through the real gateway against the local Slurm: a job the
controller holds is answered from `squeue` filtered by Slurm to the job or the user, an ended one from
accounting; a query never lists another user's jobs unless `allusers` asks; concurrent identical
queries (coalesced into one scheduler call) each get their own correct answer, also when two users
query at once. Jobs are alice's and bob's own; every job left running is cancelled at the end."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.polling import eventually

WAIT = 120  # seconds a job may take to reach a state (a bound, not an assertion on time)
PENDING = "#!/bin/bash\n#SBATCH --begin=now+1hour\ntrue\n"  # stays pending (BeginTime)
SLEEPER = "#!/bin/bash\nsleep 300\n"


@pytest.fixture(scope="module")
def system(config) -> str:
    return config.systems[0].name


@pytest.fixture(scope="module")
def jobs(api, system):
    """submit(user, script, name) -> job id; the module's jobs are cancelled when it ends."""
    submitted: list[tuple[str, str]] = []

    def submit(user: str, script: str, name: str = "queries") -> str:
        resp = api(user).post(f"/compute/{system}/jobs", json={"job": {
            "working_directory": f"/home/{user}", "name": name, "script": script}})
        assert resp.status_code == 201, resp.text
        submitted.append((user, resp.json()["jobId"]))
        return resp.json()["jobId"]
    yield submit
    for user, job_id in submitted:
        api(user).delete(f"/compute/{system}/jobs/{job_id}")


def get_job(client, system, job_id) -> dict:
    resp = client.get(f"/compute/{system}/jobs/{job_id}")
    assert resp.status_code == 200, resp.text
    (job,) = resp.json()["jobs"]
    assert job["jobId"] == job_id
    return job


def wait_for(client, system, job_id, state: str) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        resp = client.get(f"/compute/{system}/jobs/{job_id}")
        if resp.status_code == 200 and resp.json()["jobs"][0]["status"]["state"].startswith(state):
            return resp.json()["jobs"][0]
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached {state}: {resp.text[:300]}")
        time.sleep(0.5)


def listed(client, system, **params) -> dict[str, dict]:
    resp = client.get(f"/compute/{system}/jobs", params=params)
    assert resp.status_code == 200, resp.text
    return {j["jobId"]: j for j in resp.json()["jobs"]}


def test_a_list_never_shows_another_users_jobs_unless_allusers(api, jobs, system):
    alices, bobs = jobs("alice", PENDING), jobs("bob", PENDING)
    alice, bob = api("alice"), api("bob")
    own = listed(alice, system)
    assert alices in own and bobs not in own and {j["user"] for j in own.values()} == {"alice"}
    theirs = listed(bob, system)
    assert bobs in theirs and alices not in theirs and {j["user"] for j in theirs.values()} == {"bob"}
    everyone = listed(alice, system, allusers="true")
    assert {alices, bobs} <= set(everyone) and {"alice", "bob"} <= {j["user"] for j in everyone.values()}
    # One job by id is anyone's (as FirecREST v2 answers), and only that job.
    assert get_job(alice, system, bobs)["user"] == "bob"


def test_a_pending_job_is_the_controllers_record(api, jobs, system):
    job_id = jobs("alice", PENDING, name="pending-one")
    # The controller names the reason on its next scheduling pass (under load a first answer said
    # "Resources" or "None" before it): the controller's record, once it has settled, is what we answer.
    job = eventually(lambda: (j := get_job(api("alice"), system, job_id))["status"]["stateReason"] == "BeginTime"
                     and j, timeout=WAIT) or get_job(api("alice"), system, job_id)
    assert job["status"]["state"] == "PENDING" and job["status"]["stateReason"] == "BeginTime"
    assert job["tasks"] == [] and job["time"]["elapsed"] == 0 and job["time"]["end"] is None
    assert job["name"] == "pending-one" and job["account"] == "proj-a" and job["partition"] == "normal"
    assert listed(api("alice"), system)[job_id] == job  # the list answers it alike


def test_a_running_job_has_its_running_step_and_matches_the_list(api, jobs, system):
    alice = api("alice")
    job_id = jobs("alice", SLEEPER, name="running-one")
    job = wait_for(alice, system, job_id, "RUNNING")
    assert [(t["id"], t["name"], t["status"]["state"]) for t in job["tasks"]] == [(f"{job_id}.batch", "batch",
                                                                                   "RUNNING")]
    assert job["time"]["end"] is None and job["time"]["start"] is not None and job["nodes"] == "node01"
    assert job["group"] == "alice" and job["workingDirectory"] == "/home/alice"
    in_list = listed(alice, system)[job_id]
    for record in (job, in_list):  # elapsed moves between the two queries
        record["time"].pop("elapsed")
        for task in record["tasks"]:
            task["time"].pop("elapsed")
    assert in_list == job


def test_an_ended_job_is_answered_from_accounting(api, jobs, system):
    alice = api("alice")
    job_id = jobs("alice", "#!/bin/bash\nexit 3\n", name="ended-one")
    job = wait_for(alice, system, job_id, "FAILED")
    assert job["status"]["exitCode"] == 3 and [t["id"] for t in job["tasks"]] == [f"{job_id}.batch"]
    # A job the controller no longer holds (the oldest of the week): accounting alone, as the list has it.
    week = listed(alice, system, time_window="7d")
    oldest = min(week, key=int)
    assert get_job(alice, system, oldest) == week[oldest]


def test_concurrent_identical_lists_each_get_their_own_correct_answer(api, jobs, system, token):
    import httpx
    alices = {jobs("alice", PENDING, name="coalesced") for _ in range(2)}
    bobs = {jobs("bob", PENDING, name="coalesced")}
    base = str(api("alice").base_url)
    headers = {user: {"Authorization": f"Bearer {token(user)}"} for user in ("alice", "bob")}

    def one(user: str) -> tuple[str, int, dict]:
        with httpx.Client(base_url=base, timeout=60, headers=headers[user]) as c:
            resp = c.get(f"/compute/{system}/jobs")
            return user, resp.status_code, {j["jobId"]: j["user"] for j in resp.json().get("jobs", [])}

    users = ["alice"] * 32 + ["bob"] * 16
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        answers = list(pool.map(one, users[::2] + users[1::2]))  # interleaved: both users at once
    assert len(answers) == 48 and {status for _, status, _ in answers} == {200}
    for user, _, got in answers:
        mine, others = (alices, bobs) if user == "alice" else (bobs, alices)
        assert mine <= set(got) and not others & set(got), user
        assert set(got.values()) == {user}
