"""Integration tests of the compute service through the real gateway, with real tokens, against
the local HPC system's real Slurm: pyfirecrest's v2 client unchanged, plus raw REST for status codes,
permissions and injection attempts. Nothing is mocked.

The local system shares its filesystem with the test process (one machine), so tests read job
output files and prepare script files directly; every job still runs through the API.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from firecrest.FirecrestException import FirecrestException

FINAL_WAIT = 120  # seconds a short job may take to finish (a bound, not an assertion on time)
SLEEPER = "#!/bin/bash\nsleep 300\n"


@pytest.fixture(scope="module")
def system(config) -> str:
    return config.systems[0].name


@pytest.fixture(scope="module")
def alice(firecrest_client):
    return firecrest_client("alice")


@pytest.fixture(scope="module")
def bob(firecrest_client):
    return firecrest_client("bob")


def submit_rest(api, system, user="alice", **job) -> str:
    job.setdefault("working_directory", f"/home/{user}")
    resp = api(user).post(f"/compute/{system}/jobs", json={"job": job})
    assert resp.status_code == 201, resp.text
    return resp.json()["jobId"]


def wait_for_state(client, system, job_id, wanted: str) -> dict:
    """Polls job_info until the state starts with `wanted` (raises after FINAL_WAIT seconds)."""
    deadline = time.monotonic() + FINAL_WAIT
    while True:
        try:
            job = client.job_info(system, job_id)[0]
            if job["status"]["state"].startswith(wanted):
                return job
        except FirecrestException as exc:  # "Job not found" for a moment after submission
            if exc.responses[-1].status_code != 404:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached {wanted}")
        time.sleep(0.5)


def listed_until(client, system, states: dict[str, str]) -> dict[str, dict]:
    """The 1h job listing once it shows every job of `states` in its state (fails after FINAL_WAIT)."""
    deadline = time.monotonic() + FINAL_WAIT
    while True:
        resp = client.get(f"/compute/{system}/jobs", params={"time_window": "1h"})
        assert resp.status_code == 200, resp.text
        listed = {j["jobId"]: j for j in resp.json()["jobs"]}
        if all(listed.get(j, {}).get("status", {}).get("state") == st for j, st in states.items()):
            return listed
        if time.monotonic() > deadline:
            raise AssertionError(f"the listing never showed {states}: {[(j, listed.get(j)) for j in states]}")
        time.sleep(0.5)


def read_when_written(path: str, expected: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(path) and expected in Path(path).read_text():
            break
        time.sleep(0.3)
    return Path(path).read_text()


def write_as(user: str, path: str, text: str) -> None:
    Path(path).write_text(text)
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o755)


# -- pyfirecrest v2 client ---------------------------------------------------------------------------

def test_submit_script_text_completes_and_output_holds_what_it_printed(alice, system):
    token = uuid.uuid4().hex
    job = alice.submit(system, working_dir="/home/alice", script_str=f"#!/bin/bash\necho out-{token}-$GREETING\n",
                       env_vars={"GREETING": "a,b 'c' \"d\""})
    assert job["jobId"].isdigit()
    final = alice.wait_for_job(system, job["jobId"], timeout=FINAL_WAIT)
    assert final[0]["status"]["state"] == "COMPLETED"
    assert final[0]["status"]["exitCode"] == 0 and final[0]["user"] == "alice"
    meta = alice.job_metadata(system, job["jobId"])
    assert meta[0]["jobId"] == job["jobId"]
    assert meta[0]["script"] == f"#!/bin/bash\necho out-{token}-$GREETING\n"
    assert meta[0]["standardOutput"] == f"/home/alice/slurm-{job['jobId']}.out"
    output = read_when_written(meta[0]["standardOutput"], token)
    assert output == f"out-{token}-a,b 'c' \"d\"\n"


def test_submit_script_path_on_the_cluster(alice, system):
    token = uuid.uuid4().hex
    script = f"/home/alice/job-{token}.sh"
    write_as("alice", script, f"#!/bin/bash\necho from-path-{token}\n")
    job = alice.submit(system, working_dir="/home/alice", script_remote_path=script)
    final = alice.wait_for_job(system, job["jobId"], timeout=FINAL_WAIT)
    assert final[0]["status"]["state"] == "COMPLETED"
    assert read_when_written(f"/home/alice/slurm-{job['jobId']}.out", token) == f"from-path-{token}\n"


def test_job_info_one_all_and_allusers(alice, bob, system):
    mine = alice.submit(system, working_dir="/home/alice", script_str="#!/bin/bash\ntrue\n")["jobId"]
    theirs = bob.submit(system, working_dir="/home/bob", script_str="#!/bin/bash\ntrue\n")["jobId"]
    wait_for_state(alice, system, mine, "COMPLETED")
    wait_for_state(bob, system, theirs, "COMPLETED")
    one = alice.job_info(system, mine)
    assert [j["jobId"] for j in one] == [mine]
    required = {"jobId", "name", "status", "time", "allocationNodes", "cluster", "nodes", "partition",
                "workingDirectory", "user", "account", "priority", "tasks"}
    assert required <= set(one[0])
    assert isinstance(one[0]["time"]["start"], int) and one[0]["account"] == "proj-a"
    own = {j["jobId"]: j for j in alice.job_info(system)}
    assert mine in own and theirs not in own
    assert {j["user"] for j in own.values()} == {"alice"}
    everyone = {j["jobId"] for j in alice.job_info(system, allusers=True)}
    assert {mine, theirs} <= everyone
    # Anyone may read one job's status (as in FirecREST v2).
    assert alice.job_info(system, theirs)[0]["user"] == "bob"


def test_cancel_sleeping_job_ends_cancelled(alice, system):
    job_id = alice.submit(system, working_dir="/home/alice", script_str=SLEEPER)["jobId"]
    wait_for_state(alice, system, job_id, "RUNNING")
    assert alice.cancel_job(system, job_id) == {}
    final = alice.wait_for_job(system, job_id, timeout=FINAL_WAIT)
    assert final[0]["status"]["state"].startswith("CANCELLED")


def test_job_cancelled_by_an_operator_names_them(alice, system):
    # scancel as root (the test runs as root on the cluster's machine): sacct says "CANCELLED by 0",
    # and the API names the uid as `killRequestUser` (a uid look-up on the cluster).
    job_id = alice.submit(system, working_dir="/home/alice", script_str=SLEEPER)["jobId"]
    wait_for_state(alice, system, job_id, "RUNNING")
    subprocess.run(["scancel", job_id], check=True)
    job = wait_for_state(alice, system, job_id, "CANCELLED by 0")
    assert job["killRequestUser"] == "root" and job["user"] == "alice"
    assert job["status"]["interruptSignal"] == 0 and job["tasks"][0]["id"] == f"{job_id}.batch"


def test_hostile_job_name_round_trips_and_leaves_other_jobs_alone(api, alice, system):
    # A name with "|" and a would-be record of another job: every field stays exact. (A newline,
    # which would also cut Slurm's own records, is refused: tests/security/test_input_validation.py.)
    other = submit_rest(api, system, name="plain", script="#!/bin/bash\ntrue\n")
    name = f"evil|x {other}|FAILED|9:0|None|proj-b |"
    job_id = submit_rest(api, system, name=name, script="#!/bin/bash\nexit 4\n")
    final = alice.wait_for_job(system, job_id, timeout=FINAL_WAIT)[0]
    assert final["name"] == name and final["status"]["exitCode"] == 4
    plain = wait_for_state(alice, system, other, "COMPLETED")
    assert plain["name"] == "plain" and plain["status"]["exitCode"] == 0
    # The list merges accounting (sacct) with the queue: poll until it shows both finished jobs.
    listed = listed_until(api("alice"), system, {job_id: "FAILED", other: "COMPLETED"})
    assert listed[job_id]["name"] == name and listed[other]["name"] == "plain"
    assert listed[other]["status"]["state"] == "COMPLETED"


def test_attach_runs_a_command_in_a_running_job(alice, system):
    job_id = alice.submit(system, working_dir="/home/alice", script_str=SLEEPER)["jobId"]
    try:
        wait_for_state(alice, system, job_id, "RUNNING")
        target = f"/home/alice/attach-{job_id}.txt"
        assert alice.attach_to_job(system, job_id, f'echo "in job $SLURM_JOB_ID" > {target}') == {}
        assert Path(target).read_text() == f"in job {job_id}\n"
    finally:
        alice.cancel_job(system, job_id)


def test_failing_script_ends_failed_with_its_exit_code(alice, system):
    job_id = alice.submit(system, working_dir="/home/alice", script_str="#!/bin/bash\nexit 3\n")["jobId"]
    final = alice.wait_for_job(system, job_id, timeout=FINAL_WAIT)
    assert final[0]["status"]["state"] == "FAILED"
    assert final[0]["status"]["exitCode"] == 3


# -- status codes and errors on the wire ---------------------------------------------------------------

def test_rest_status_codes(api, system):
    client = api("alice")
    resp = client.post(f"/compute/{system}/jobs", json={"job": {"workingDirectory": "/home/alice", "script": SLEEPER}})
    assert resp.status_code == 201 and isinstance(resp.json()["jobId"], str)
    job_id = resp.json()["jobId"]
    resp = client.delete(f"/compute/{system}/jobs/{job_id}")
    assert resp.status_code == 204 and resp.content == b""
    resp = client.get(f"/compute/{system}/jobs/{job_id}", params={"allusers": "false", "account": ""})
    assert resp.status_code == 200 and resp.json()["jobs"][0]["jobId"] == job_id


def test_bob_cannot_cancel_or_read_metadata_of_alices_job(api, alice, system):
    job_id = alice.submit(system, working_dir="/home/alice", script_str=SLEEPER)["jobId"]
    try:
        wait_for_state(alice, system, job_id, "RUNNING")
        bob = api("bob")
        resp = bob.delete(f"/compute/{system}/jobs/{job_id}")
        assert resp.status_code == 403, resp.text
        assert resp.json()["user"] == "bob"
        resp = bob.get(f"/compute/{system}/jobs/{job_id}/metadata")
        assert resp.status_code == 403, resp.text
        resp = bob.put(f"/compute/{system}/jobs/{job_id}/attach", json={"command": "true"})
        assert resp.status_code == 403, resp.text
        assert alice.job_info(system, job_id)[0]["status"]["state"] == "RUNNING"
    finally:
        alice.cancel_job(system, job_id)


@pytest.mark.parametrize("method,suffix", [("get", ""), ("get", "/metadata"), ("delete", "")])
def test_unknown_job_is_404_job_not_found(api, system, method, suffix):
    resp = getattr(api("alice"), method)(f"/compute/{system}/jobs/987654321{suffix}")
    assert resp.status_code == 404, resp.text
    assert "Job not found" in resp.json()["message"]


@pytest.mark.parametrize("job_id", ["1;id", "1%20id", "..%2F1"])
def test_malformed_job_id_is_400(api, system, job_id):
    resp = api("alice").get(f"/compute/{system}/jobs/{job_id}")
    assert resp.status_code == 400, resp.text


def test_unknown_partition_is_4xx_with_slurms_message(api, system):
    resp = api("alice").post(f"/compute/{system}/jobs", json={"job": {
        "working_directory": "/home/alice", "script": "#!/bin/bash\ntrue\n", "partition": "nosuchpartition"}})
    assert resp.status_code == 400, resp.text
    assert "Invalid partition name specified" in resp.json()["message"]


def test_account_alice_does_not_belong_to_is_4xx(api, system):
    resp = api("alice").post(f"/compute/{system}/jobs", json={"job": {
        "working_directory": "/home/alice", "script": "#!/bin/bash\ntrue\n", "account": "proj-b"}})
    assert resp.status_code == 400 and "Invalid account" in resp.json()["message"]


def test_unknown_system_is_404(api):
    resp = api("alice").get("/compute/nosuchsystem/jobs")
    assert resp.status_code == 404 and resp.json()["message"] == "System not found"


def test_time_window_filters_finished_jobs(api, alice, system):
    job_id = alice.submit(system, working_dir="/home/alice", script_str="#!/bin/bash\ntrue\n")["jobId"]
    alice.wait_for_job(system, job_id, timeout=FINAL_WAIT)
    client = api("alice")
    lists = {}
    for window in ("1h", "7d"):
        resp = client.get(f"/compute/{system}/jobs", params={"time_window": window})
        assert resp.status_code == 200
        lists[window] = {j["jobId"]: j for j in resp.json()["jobs"]}
    assert job_id in lists["1h"] and job_id in lists["7d"]
    assert set(lists["1h"]) <= set(lists["7d"])
    hour_ago = time.time() - 3600 - 60
    for job in lists["1h"].values():
        if job["status"]["state"] not in ("PENDING", "RUNNING") and job["time"]["end"] is not None:
            assert job["time"]["end"] >= hour_ago, job
    resp = client.get(f"/compute/{system}/jobs", params={"time_window": "2h"})
    assert resp.status_code == 400


def test_name_and_account_filters(api, alice, system):
    name = f"filter-{uuid.uuid4().hex[:8]}"
    job_id = submit_rest(api, system, name=name, script="#!/bin/bash\ntrue\n")
    wait_for_state(alice, system, job_id, "COMPLETED")
    client = api("alice")
    assert [j["jobId"] for j in client.get(f"/compute/{system}/jobs", params={"name": name}).json()["jobs"]] == [job_id]
    assert client.get(f"/compute/{system}/jobs", params={"name": name, "account": "shared"}).json()["jobs"] == []
    by_account = client.get(f"/compute/{system}/jobs", params={"name": name, "account": "proj-a"}).json()["jobs"]
    assert [j["jobId"] for j in by_account] == [job_id]


def test_injection_in_name_env_and_paths_runs_nothing(api, alice, system):
    canary = Path(f"/tmp/compute-canary-{uuid.uuid4().hex}")
    evil = f"$(touch {canary});touch {canary}`touch {canary}`|touch {canary}&&touch {canary}"
    name = f"x';{evil}"
    job_id = submit_rest(api, system, name=name, env={"EVIL": evil}, script='#!/bin/bash\nprintf "%s" "$EVIL"\n')
    final = alice.wait_for_job(system, job_id, timeout=FINAL_WAIT)
    assert final[0]["name"] == name
    assert final[0]["status"]["state"] == "COMPLETED"
    out = alice.job_metadata(system, job_id)[0]["standardOutput"]
    assert read_when_written(out, "touch") == evil
    # An output path made of metacharacters (no "/" in them): the file gets exactly that name.
    relative = f"compute-canary-{uuid.uuid4().hex}"
    odd = f"$(touch {relative});`touch {relative}`|touch {relative}&&x' \""
    path_job = submit_rest(api, system, standardOutput=f"/home/alice/inj-{odd}.out",
                           script="#!/bin/bash\necho odd-path\n")
    assert alice.wait_for_job(system, path_job, timeout=FINAL_WAIT)[0]["status"]["state"] == "COMPLETED"
    assert read_when_written(f"/home/alice/inj-{odd}.out", "odd-path") == "odd-path\n"
    # A working directory made of metacharacters: the job cannot chdir there, and nothing runs.
    bad_dir = submit_rest(api, system, working_directory=f"/home/alice/$(touch {canary})",
                          script="#!/bin/bash\ntrue\n")
    alice.wait_for_job(system, bad_dir, timeout=FINAL_WAIT)
    assert not canary.exists()
    assert not Path("/home/alice", relative).exists()


def test_idempotency_key_makes_a_retried_submit_return_the_same_job(api, system):
    client = api("alice")
    body = {"job": {"working_directory": "/home/alice", "script": "#!/bin/bash\ntrue\n"}}
    key = uuid.uuid4().hex
    first = client.post(f"/compute/{system}/jobs", json=body, headers={"Idempotency-Key": key})
    retry = client.post(f"/compute/{system}/jobs", json=body, headers={"Idempotency-Key": key})
    other = client.post(f"/compute/{system}/jobs", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert first.status_code == retry.status_code == other.status_code == 201
    assert first.json()["jobId"] == retry.json()["jobId"] != other.json()["jobId"]
    # The same key from another user is another user's submission.
    bob = api("bob").post(f"/compute/{system}/jobs", headers={"Idempotency-Key": key},
                          json={"job": {"working_directory": "/home/bob", "script": "#!/bin/bash\ntrue\n"}})
    assert bob.status_code == 201 and bob.json()["jobId"] != first.json()["jobId"]


def test_concurrent_submits_with_the_same_key_make_one_job(api, system):
    """Two submits with one Idempotency-Key at the same moment, through the gateway: the same job id
    for both, and exactly one job in Slurm."""
    name = f"concurrent-key-{uuid.uuid4().hex[:8]}"
    body = {"job": {"name": name, "working_directory": "/home/alice", "script": "#!/bin/bash\nsleep 1\n"}}
    key = uuid.uuid4().hex
    clients = [api("alice"), api("alice")]  # two connections: the requests really overlap
    start = threading.Barrier(len(clients))

    def post(client):
        start.wait(10)
        return client.post(f"/compute/{system}/jobs", json=body, headers={"Idempotency-Key": key})
    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(post, clients))
    assert [r.status_code for r in answers] == [201, 201], [r.text for r in answers]
    job_ids = {r.json()["jobId"] for r in answers}
    assert len(job_ids) == 1
    env = {"SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin:/bin"}
    in_slurm = subprocess.run(["squeue", "-h", "-u", "alice", "-n", name, "-t", "all", "-o", "%i"],
                              capture_output=True, text=True, env=env, check=True).stdout.split()
    assert in_slurm == list(job_ids), "exactly one job was submitted"


def test_relative_working_directory_is_400(api, system):
    resp = api("alice").post(f"/compute/{system}/jobs", json={"job": {"workingDirectory": "tmp", "script": "x"}})
    assert resp.status_code == 400 and "absolute" in resp.json()["message"]
