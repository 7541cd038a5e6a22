"""Fault test of `GET /status/services`: a stopped service is reported unhealthy within a check
interval (polled until a deadline, never timed), and healthy again once it is back."""

from __future__ import annotations

import pytest

from tests.faults.processes import eventually, mesh

STOPPED = "utilities"  # a shared service: started again in `finally`

pytestmark = pytest.mark.faults


def component(api, name: str) -> dict:
    body = api("alice").get("/status/services").json()
    return next(s for s in body["services"] if s["name"] == name)


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
