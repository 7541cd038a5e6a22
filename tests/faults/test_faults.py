"""Fault tests: stop real processes, check the API degrades with the right answers, start them again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.errors import SshConnectionFailed
from services.common.ssh.certificates import CertificateCache
from services.common.ssh.command import shell_join
from services.common.ssh.pool import SshPool

ROOT = Path(__file__).resolve().parents[2]


def mesh(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "mesh.py"), *args], check=True,
                   capture_output=True, timeout=120)


def eventually(check, timeout: float = 60.0):
    """Polls `check` until it returns a truthy value (or raises on timeout with the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


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


def test_submit_while_the_scheduler_hangs_is_408_and_a_keyed_retry_submits_once(api, config):
    """slurmctld frozen (SIGSTOP): sbatch cannot answer, the service answers 408 instead of hanging.
    After the scheduler resumes, a retry with the same Idempotency-Key yields exactly one job, whether
    or not the first, timed-out sbatch reached the controller."""
    import uuid
    alice = api("alice")
    name = f"frozen-{uuid.uuid4().hex[:8]}"
    body = {"job": {"name": name, "script": "#!/bin/bash\nsleep 1\n", "workingDirectory": "/home/alice"}}
    key = uuid.uuid4().hex
    ctld_pid = config.state("cluster", "slurm", "run", "slurmctld.pid").read_text().split()[0]
    subprocess.run(["kill", "-STOP", ctld_pid], check=True)
    try:
        first = alice.post("/compute/local/jobs", json=body, headers={"Idempotency-Key": key}, timeout=120)
    finally:
        subprocess.run(["kill", "-CONT", ctld_pid], check=True)
    assert first.status_code in (408, 201), first.text
    if first.status_code == 408:
        assert first.json()["message"]
    retry = eventually(lambda: (r := alice.post("/compute/local/jobs", json=body, timeout=120,
                                                headers={"Idempotency-Key": key})).status_code == 201 and r)
    assert retry and retry.status_code == 201, retry
    if first.status_code == 201:
        assert retry.json()["jobId"] == first.json()["jobId"]
    env = {"SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/usr/bin:/bin"}
    listed = subprocess.run(["squeue", "-h", "-u", "alice", "-n", name, "-t", "all", "-o", "%i"],
                            capture_output=True, text=True, env=env, check=True).stdout.split()
    assert listed == [retry.json()["jobId"]], "exactly one job was submitted"


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
