"""Integration tests of the storage service (`/filesystem/{system}/transfer/*`) on the real stack:
the gateway, the storage service, sshd and Slurm (jobs on the transfer partition), the embedded
SeaweedFS; pyfirecrest's v2 client unchanged.

Every test works in its own folder under /scratch/<user>, made and removed through the API. Waiting
for a transfer job is pyfirecrest's own (`wait_for_job` on the compute route, then the success line
in the job's output read through `ops/view`). Hostile paths and names: test_storage_transfer_inputs.py.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pwd
import subprocess
import tarfile
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from firecrest.FirecrestException import TransferJobFailedException

from tests.integration.storage_helpers import MIB, OPS, SYSTEM, TRANSFER, names, put_small

FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


@pytest.fixture
def client(firecrest_client):
    return firecrest_client("alice")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _remote_sha256(api, path: str, user: str = "alice") -> str:
    r = api(user).get(f"{OPS}/checksum", params={"path": path})
    assert r.status_code == 200, r.text
    return r.json()["output"]["checksum"]


def _wait_task(api, task_id: str, user: str = "alice") -> dict:
    """The task once it reached a final state (polls; the job follower records the job's end)."""
    for _ in range(600):
        r = api(user).get(f"/tasks/{task_id}")
        assert r.status_code == 200, r.text
        if r.json()["state"] in FINAL:
            return r.json()
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} did not end: {r.json()}")


def _check_transfer_job(answer: dict, user: str = "alice") -> None:
    job = answer["transferJob"]
    assert isinstance(job["jobId"], str) and job["jobId"].isdigit()
    assert job["system"] == SYSTEM and job["workingDirectory"] == f"/home/{user}"
    assert job["logs"]["outputLog"].startswith(f"/home/{user}/.f7t_file_handling_job_")
    assert job["logs"]["errorLog"].startswith(f"/home/{user}/.f7t_file_handling_job_error_")


# --- pyfirecrest's v2 client, unchanged ------------------------------------------------------------

def test_pyfirecrest_upload_and_download_50_mib_through_s3(client, api, workdir, tmp_path):
    d = workdir()
    data = os.urandom(50 * MIB + 12345)  # 4 parts of 16 MiB (config/local.yaml), the last one short
    local = tmp_path / "big.bin"
    local.write_bytes(data)
    client.upload(SYSTEM, str(local), d, "big.bin")  # ≥ 1 MiB: the S3 transfer route and its job
    assert _remote_sha256(api, f"{d}/big.bin") == _sha256(data)
    assert not [n for n in names(api, d) if n.endswith(".part")]  # the temporary file was renamed
    back = tmp_path / "back.bin"
    client.download(SYSTEM, f"{d}/big.bin", str(back))
    assert back.read_bytes() == data


def test_pyfirecrest_blocking_cp_and_mv(client, api, workdir):
    d = workdir()
    src = put_small(api, d, "a.txt", b"alpha\n")
    client.cp(SYSTEM, src, f"{d}/b.txt")
    client.mv(SYSTEM, f"{d}/b.txt", f"{d}/c.txt")
    assert {"a.txt", "c.txt"} <= names(api, d) and "b.txt" not in names(api, d)
    assert _remote_sha256(api, f"{d}/c.txt") == _sha256(b"alpha\n")
    with pytest.raises(TransferJobFailedException):  # the job fails: no success line in its output
        client.cp(SYSTEM, f"{d}/missing", f"{d}/x")


def test_rm_compress_extract_through_the_transfer_routes(client, api, workdir):
    d = workdir()
    put_small(api, d, "one.txt", b"1\n")
    assert api().post(f"{OPS}/mkdir", json={"path": f"{d}/src/sub", "parent": True}).status_code == 201
    put_small(api, f"{d}/src/sub", "two.dat", b"2\n")
    # pyfirecrest's compress/extract/rm reach these routes after an ops timeout (408); called directly,
    # with pyfirecrest's snake_case keys and a null matchPattern, then waited for as pyfirecrest does.
    r = api().post(f"{TRANSFER}/compress", json={"source_path": f"{d}/src", "target_path": f"{d}/src.tar.gz",
                                                 "match_pattern": None, "dereference": False,
                                                 "compression": "gzip"})
    assert r.status_code == 201, r.text
    _check_transfer_job(r.json())
    client._wait_for_transfer_job(r.json())
    assert api().post(f"{OPS}/mkdir", json={"path": f"{d}/out"}).status_code == 201
    r = api().post(f"{TRANSFER}/extract", json={"source_path": f"{d}/src.tar.gz", "target_path": f"{d}/out",
                                                "compression": "gzip"})
    assert r.status_code == 201, r.text
    client._wait_for_transfer_job(r.json())
    assert _remote_sha256(api, f"{d}/out/src/sub/two.dat") == _sha256(b"2\n")
    r = api().delete(f"{TRANSFER}/rm", params={"path": f"{d}/src", "account": ""})
    assert r.status_code == 200, r.text  # 200, not 201, as FirecREST v2
    client._wait_for_transfer_job(r.json())
    assert "src" not in names(api, d)
    out = client.view(SYSTEM, r.json()["transferJob"]["logs"]["outputLog"])
    assert out.strip() == "Files were successfully deleted."


def _alice_job_mentioning(text: str) -> str | None:
    """The id of a queued or running job of alice's whose batch script contains `text` (as root)."""
    ids = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i"], capture_output=True, text=True).stdout.split()
    for job_id in ids:
        script = subprocess.run(["scontrol", "write", "batch_script", job_id, "-"], capture_output=True,
                                text=True).stdout
        if text in script:
            return job_id
    return None


def _write_fifo_when_read(path: str, data: bytes) -> None:
    """Writes `data` into the FIFO once a reader has opened it."""
    for _ in range(1200):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            time.sleep(0.1)
            continue
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return
    raise AssertionError(f"nobody opened {path} for reading")


def test_pyfirecrest_extract_falls_back_to_a_transfer_job_after_an_ops_timeout(client, api, workdir):
    d = workdir()
    # The archive is a FIFO: the ops route's tar waits on it until its command limit (408); pyfirecrest
    # then submits the transfer job, whose tar receives the archive once the job is queued.
    fifo = f"{d}/archive.tar"
    os.mkfifo(fifo, 0o600)
    alice = pwd.getpwnam("alice")
    os.chown(fifo, alice.pw_uid, alice.pw_gid)
    assert api().post(f"{OPS}/mkdir", json={"path": f"{d}/out"}).status_code == 201
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    outcome = {}

    def extract():
        try:
            outcome["result"] = client.extract(SYSTEM, fifo, f"{d}/out", compression="none")
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc
    worker = threading.Thread(target=extract)
    worker.start()
    for _ in range(1200):
        if _alice_job_mentioning(fifo) or not worker.is_alive():
            break
        time.sleep(0.25)
    assert worker.is_alive(), outcome  # the ops route did not answer: it waited, then the job came
    _write_fifo_when_read(fifo, buffer.getvalue())
    worker.join(600)
    assert "error" not in outcome, outcome
    assert _remote_sha256(api, f"{d}/out/hello.txt") == _sha256(b"hello\n")


def test_account_and_transfer_method(api, workdir):
    d = workdir()
    src = put_small(api, d, "a.txt", b"a")
    r = api().post(f"{TRANSFER}/cp", json={"sourcePath": src, "targetPath": f"{d}/b", "account": "shared"})
    assert r.status_code == 201, r.text
    job = api().get(f"/compute/{SYSTEM}/jobs/{r.json()['transferJob']['jobId']}").json()["jobs"][0]
    assert job["account"] == "shared" and job["partition"] == "xfer" and job["name"] == "CopyFiles"
    r = api().post(f"{TRANSFER}/cp", json={"sourcePath": src, "targetPath": f"{d}/c", "account": "x;id"})
    assert r.status_code == 400, r.text
    r = api().post(f"{TRANSFER}/upload", json={"path": f"{d}/u", "transfer_directives": {
        "transfer_method": "wormhole", "file_size": 1}})
    assert r.status_code == 400 and r.json()["message"] == "Requested transfer method is not available."


def test_upload_answer_and_max_part_size_is_a_number(api, workdir):
    d = workdir()
    r = api().post(f"{TRANSFER}/upload", json={"path": f"{d}/f.bin", "transfer_directives": {
        "file_size": 40 * MIB, "transfer_method": "s3"}})
    assert r.status_code == 201, r.text
    answer = r.json()
    _check_transfer_job(answer)
    directives = answer["transferDirectives"]
    assert directives["transferMethod"] == "s3" and directives["maxPartSize"] == 16 * MIB
    assert len(directives["partsUploadUrls"]) == 3
    key = urlsplit(directives["completeUploadUrl"]).path.split("/")
    assert key[1] == "alice" and len(key[2]) == 36 and key[3] == "f.bin"  # /<user>/<uuid>/<basename>
    api().delete(f"/compute/{SYSTEM}/jobs/{answer['transferJob']['jobId']}")


# --- tasks ---------------------------------------------------------------------------------------

def test_each_transfer_has_a_task_that_follows_its_job(api, workdir):
    d = workdir()
    src = put_small(api, d, "a.txt", b"a")
    r = api().post(f"{TRANSFER}/cp", json={"sourcePath": src, "targetPath": f"{d}/b"})
    assert r.status_code == 201, r.text
    job = r.json()["transferJob"]
    task = _wait_task(api, job["taskId"])
    assert task["kind"] == "transfer" and task["state"] == "SUCCEEDED" and task["owner"] == "alice"
    assert task["result"]["jobId"] == job["jobId"] and task["result"]["exitCode"] == 0
    r = api("bob").get(f"/tasks/{job['taskId']}")
    assert r.status_code == 404  # another user's task does not exist for bob


def test_a_killed_transfer_job_marks_its_task_failed(api, workdir):
    d = workdir()
    # An upload's job waits for its object, which never arrives: it runs until killed.
    r = api().post(f"{TRANSFER}/upload", json={"path": f"{d}/never.bin", "transfer_directives": {
        "file_size": 10, "transfer_method": "s3"}})
    assert r.status_code == 201, r.text
    job = r.json()["transferJob"]
    assert api().delete(f"/compute/{SYSTEM}/jobs/{job['jobId']}").status_code == 204
    task = _wait_task(api, job["taskId"])
    assert task["state"] == "FAILED" and task["result"]["schedulerState"].startswith("CANCELLED")
    assert "never.bin" not in names(api, d)


# --- isolation ---------------------------------------------------------------------------------

def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def test_bob_cannot_read_alices_staged_objects_or_use_her_urls(client, api, workdir, config, tmp_path):
    d = workdir()
    data = os.urandom(2 * MIB)
    src = tmp_path / "secret.bin"
    src.write_bytes(data)
    client.upload(SYSTEM, str(src), d, "secret.bin")
    r = api().post(f"{TRANSFER}/download", json={"source_path": f"{d}/secret.bin",
                                                 "transfer_directives": {"transferMethod": "s3"}})
    assert r.status_code == 201, r.text
    client._wait_for_transfer_job(r.json())
    url = r.json()["transferDirectives"]["downloadUrl"]
    assert httpx.get(url).content == data  # alice's URL works
    object_path = urlsplit(url).path  # /alice/<uuid>/secret.bin
    s3 = urlsplit(url).netloc
    # Without the signature, or with it on another object, S3 refuses.
    assert httpx.get(f"http://{s3}{object_path}").status_code == 403
    bob_path = object_path.replace("/alice/", "/bob/", 1)
    assert httpx.get(_with_path(url, bob_path)).status_code == 403
    # bob's own upload URLs cannot write into alice's bucket, nor read from it.
    r = api("bob").post(f"{TRANSFER}/upload", json={"path": "/scratch/bob/x.bin", "transfer_directives": {
        "file_size": 10, "transfer_method": "s3"}})
    assert r.status_code == 201, r.text
    bob_part = r.json()["transferDirectives"]["partsUploadUrls"][0]
    api("bob").delete(f"/compute/{SYSTEM}/jobs/{r.json()['transferJob']['jobId']}")
    assert httpx.put(_with_path(bob_part, object_path), content=b"overwritten").status_code == 403
    assert httpx.get(_with_path(bob_part, object_path)).status_code == 403
    assert httpx.get(url).content == data
    # bob cannot have alice's file staged for him: the job-side stat runs as bob.
    r = api("bob").post(f"{TRANSFER}/download", json={"source_path": f"{d}/secret.bin",
                                                      "transfer_directives": {"transferMethod": "s3"}})
    assert r.status_code == 403, r.text
    # SeaweedFS's own ports on this machine (where bob's jobs run) serve nothing without its keys.
    embedded = {"filer": 39888, "volume": 39340}
    filer = httpx.get(f"http://127.0.0.1:{embedded['filer']}/buckets{object_path}")
    assert filer.status_code == 401 and data not in filer.content
    listing = httpx.get(f"http://127.0.0.1:{embedded['filer']}/buckets/alice/")
    assert listing.status_code == 401 and b"secret.bin" not in listing.content
