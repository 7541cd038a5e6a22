"""Fault tests: stop real processes, check the API degrades with the right answers, start them again."""

from __future__ import annotations

import asyncio
import errno
import os
import pwd
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.common.errors import SshConnectionFailed
from services.common.ssh.certificates import CertificateCache
from services.common.ssh.command import shell_join
from services.common.ssh.pool import SshPool
from tests.faults.processes import eventually, mesh

ROOT = Path(__file__).resolve().parents[2]


def test_service_down_is_503_then_recovers(api):
    alice = api("alice")
    assert alice.get("/status/local/partitions").status_code == 200
    mesh("stop", "status")
    try:
        response = eventually(lambda: (r := alice.get("/status/systems")).status_code == 503 and r)
        assert response.status_code == 503
        body = response.json()
        assert body["errorType"] == "error" and body["user"] == "alice" and body["message"]
    finally:
        mesh("up")
    assert eventually(lambda: alice.get("/status/local/partitions").status_code == 200)


def test_certificator_down_keeps_pooled_connections_and_refuses_new_ones(api, config, caller_of):
    alice = api("alice")
    assert alice.get("/status/local/partitions").status_code == 200  # alice's connection is pooled
    mesh("stop", "certificator")
    try:
        assert alice.get("/status/local/partitions").status_code == 200

        async def fresh_login():
            certificates = CertificateCache.for_service(config, "compute")
            pool = SshPool(certificates)
            try:
                return await pool.run(caller_of("bob"), config.system("local"), shell_join(["true"]))
            finally:
                await pool.close()
                await certificates.close()

        with pytest.raises(Exception) as err:
            asyncio.run(fresh_login())
        assert getattr(err.value, "http_status", None) == 503, err.value
    finally:
        mesh("up")


def test_sshd_down_is_424_then_recovers(config, caller_of):
    caller = caller_of("alice")

    async def run_once():
        certificates = CertificateCache.for_service(config, "compute")
        pool = SshPool(certificates)
        try:
            return await pool.run(caller, config.system("local"), shell_join(["echo", "ok"]))
        finally:
            await pool.close()
            await certificates.close()

    sshd_pid = (config.state("cluster", "sshd", "sshd.pid")).read_text().split()[0]
    subprocess.run(["kill", sshd_pid], check=True)
    try:
        with pytest.raises(SshConnectionFailed) as err:
            eventually(lambda: asyncio.run(run_once()) and False, timeout=5)
        assert err.value.http_status == 424
    finally:
        subprocess.run(["bash", str(ROOT / "cluster" / "up.sh")], check=True, capture_output=True, timeout=300)
    assert asyncio.run(run_once()).text() == "ok\n"


def _squeue_ids(name: str) -> list[str]:
    """Ids of alice's jobs called `name` that slurmctld holds, in any state."""
    env = {"SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["squeue", "-h", "-u", "alice", "-n", name, "-t", "all", "-o", "%i"],
                          capture_output=True, text=True, env=env, check=True, timeout=30).stdout.split()


def _open_for_writing(fifo: str, timeout: float) -> int | None:
    """A write end of `fifo` once a reader has opened it (None if none did within `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        time.sleep(0.01)
    return None


def test_sbatch_timed_out_is_408_and_a_keyed_retry_returns_its_job_once(api, config):
    """The ambiguous submission: sbatch reaches a frozen slurmctld and is killed by the remote `timeout`
    before any answer. The service answers 408 (its look-up by marker times out too); the controller,
    resumed, then processes the queued submission; a retry with the same Idempotency-Key returns that
    job: exactly one job.

    Deterministic: the script is a FIFO on the system, so sbatch waits for it after the service's
    look-up by marker (answered by the running controller: no job yet). The test freezes slurmctld
    (SIGSTOP) only once sbatch has opened the FIFO, then writes the script: sbatch certainly submits
    to the frozen controller."""
    import uuid
    alice = api("alice")
    name = f"frozen-{uuid.uuid4().hex[:8]}"
    script, script_text = f"/home/alice/{name}.sh", b"#!/bin/bash\nsleep 1\n"
    pw = pwd.getpwnam("alice")
    os.mkfifo(script, 0o600)
    os.chown(script, pw.pw_uid, pw.pw_gid)
    body = {"job": {"name": name, "scriptPath": script, "workingDirectory": "/home/alice"}}
    key = uuid.uuid4().hex
    ctld_pid = config.state("cluster", "slurm", "run", "slurmctld.pid").read_text().split()[0]
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(alice.post, "/compute/local/jobs", json=body, timeout=120,
                                  headers={"Idempotency-Key": key})
            fd = _open_for_writing(script, timeout=60)
            if fd is None:
                raise AssertionError(f"sbatch never opened its script: {pending.result(120).text}")
            subprocess.run(["kill", "-STOP", ctld_pid], check=True)
            try:
                os.write(fd, script_text)
                os.close(fd)
                first = pending.result(120)
            finally:
                subprocess.run(["kill", "-CONT", ctld_pid], check=True)
        # From here on a (wrong) second sbatch would find a plain script, not wait for the FIFO.
        os.unlink(script)
        Path(script).write_bytes(script_text)
        os.chown(script, pw.pw_uid, pw.pw_gid)

        assert first.status_code == 408, first.text
        assert first.json()["message"] == "Remote process failed with exit status:124 (sbatch timed out)"
        created = eventually(lambda: _squeue_ids(name), timeout=60)
        assert len(created) == 1, "the timed-out sbatch reached the controller, which created the job"
        retry = alice.post("/compute/local/jobs", json=body, headers={"Idempotency-Key": key}, timeout=120)
        assert retry.status_code == 201, retry.text
        assert retry.json()["jobId"] == created[0]
        assert _squeue_ids(name) == created, "exactly one job was submitted"
    finally:
        Path(script).unlink(missing_ok=True)


def test_scheduler_down_is_503_then_recovers(api, config):
    """slurmctld stopped: job queries and submissions answer 503 with Slurm's reason, not 500."""
    alice = api("alice")
    ctld_pid = config.state("cluster", "slurm", "run", "slurmctld.pid").read_text().split()[0]
    subprocess.run(["kill", ctld_pid], check=True)
    try:
        eventually(lambda: subprocess.run(["kill", "-0", ctld_pid], capture_output=True).returncode != 0, 30)
        submit = alice.post("/compute/local/jobs", json={"job": {
            "script": "#!/bin/bash\ntrue\n", "workingDirectory": "/home/alice"}}, timeout=120)
        assert submit.status_code == 503, submit.text
        assert "slurm" in submit.json()["message"].lower()
        partitions = alice.get("/status/local/partitions", timeout=120)
        assert partitions.status_code == 503, partitions.text
    finally:
        subprocess.run(["bash", str(ROOT / "cluster" / "up.sh")], check=True, capture_output=True, timeout=300)
    assert eventually(lambda: alice.get("/compute/local/jobs", timeout=120).status_code == 200)


def _supervised(name: str) -> dict:
    """`name`'s line of `mesh.py status` (what `make status` prints): state text, pid and restarts."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "mesh.py"), "status"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    line = next(line for line in out.splitlines() if line.split()[:1] == [name])
    fields = dict(part.strip().split(" ", 1) for part in line[line.rindex("(") + 1:line.rindex(")")].split(","))
    return {"line": line, "pid": int(fields.get("pid", 0)) or None, "restarts": int(fields["restarts"])}


def test_a_service_killed_with_sigkill_comes_back_by_itself(api):
    """kill -9 utilities: the supervisor restarts it without anyone running `mesh.py up`, the next
    request through the gateway succeeds, and `mesh.py status` counts the restart."""
    alice = api("alice")
    ls = lambda: alice.get("/filesystem/local/ops/ls", params={"path": "/home/alice"}, timeout=60)
    assert ls().status_code == 200
    before = _supervised("utilities")
    assert before["pid"], before["line"]
    os.kill(before["pid"], 9)
    back = eventually(lambda: (now := _supervised("utilities"))["pid"] not in (None, before["pid"])
                      and "healthy" in now["line"] and now, timeout=60)
    assert back, f"utilities was not restarted: {_supervised('utilities')['line']}"
    assert back["restarts"] > before["restarts"], back["line"]
    assert eventually(lambda: ls().status_code == 200, timeout=30), "the gateway routes to the new process"
    response = ls()
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["output"], list), response.text
