"""Fault test of `GET /status/services`: a stopped service is reported unhealthy within a check
interval (polled until a deadline, never timed), and healthy again once it is back."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STOPPED = "utilities"  # a shared service: started again in `finally`

pytestmark = pytest.mark.faults


def mesh(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "mesh.py"), *args], check=True,
                   capture_output=True, timeout=300)


def component(api, name: str) -> dict:
    body = api("alice").get("/status/services").json()
    return next(s for s in body["services"] if s["name"] == name)


def eventually(check, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_a_stopped_service_shows_unhealthy_then_healthy_again(api, config):
    # Up to two intervals: the round in progress when it stopped may have seen it up, the next one not.
    wait = 2 * config.health.components_interval_seconds + 10
    assert eventually(lambda: component(api, STOPPED)["healthy"], wait), component(api, STOPPED)
    try:
        mesh("stop", STOPPED)
        down = eventually(lambda: (c := component(api, STOPPED)) and not c["healthy"] and c, wait)
        assert down, f"{STOPPED} still reported healthy: {component(api, STOPPED)}"
        assert down["message"] and down["lastChecked"].endswith("Z")
        # The other components are unaffected.
        assert component(api, "compute")["healthy"]
    finally:
        mesh("up")
    assert eventually(lambda: component(api, STOPPED)["healthy"], wait), component(api, STOPPED)
