"""Fault tests: stop real processes, check the API degrades with the right answers, start them again."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.errors import SshConnectionFailed
from services.common.identity import Caller
from services.common.ssh.certificates import CertificateCache
from services.common.ssh.command import shell_join
from services.common.ssh.pool import SshPool

ROOT = Path(__file__).resolve().parents[1]


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


def test_certificator_down_keeps_pooled_connections_and_refuses_new_ones(api, config, token):
    alice = api("alice")
    assert alice.get("/status/local/partitions").status_code == 200  # alice's connection is pooled
    mesh("stop", "certificator")
    try:
        assert alice.get("/status/local/partitions").status_code == 200

        async def fresh_login():
            certificates = CertificateCache(str(config.services["certificator"]))
            pool = SshPool(certificates)
            try:
                return await pool.run(Caller("bob", token("bob")), config.system("local"), shell_join(["true"]))
            finally:
                await pool.close()
                await certificates.close()

        with pytest.raises(Exception) as err:
            asyncio.run(fresh_login())
        assert getattr(err.value, "http_status", None) == 503, err.value
    finally:
        mesh("up")


def test_sshd_down_is_424_then_recovers(config, token):
    caller = Caller("alice", token("alice"))

    async def run_once():
        certificates = CertificateCache(str(config.services["certificator"]))
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
