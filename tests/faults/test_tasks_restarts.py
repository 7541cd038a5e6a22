"""A task survives restarts: the tasks service, and separately the compute service (where the job
follower lives), are stopped while the task's job runs and started again; the task still reaches
SUCCEEDED with its job's exit code and stays readable. Real processes, stopped and started with the
launcher (`mesh.py stop NAME` / `up`), like the other fault tests.

The job runs until the test releases it once the service is back (`held_job`): it certainly runs
across the restart, and the test waits no longer than the restart itself (a fixed `sleep 20` did
both less surely and more slowly)."""

from __future__ import annotations

import pytest

from tests.faults.processes import mesh
from tests.integration.tasks_helpers import FINAL, ends_succeeded, events, held_job, submit_async


@pytest.mark.parametrize("service", ["tasks", "compute"])
def test_task_completes_across_a_restart(api, config, service):
    alice = api("alice")
    script, release = held_job()
    task = submit_async(alice, config.systems[0].name, script)
    try:
        running = events(alice, task["id"], until=lambda t: t["state"] == "RUNNING" or t["state"] in FINAL)[-1]
        assert running["state"] == "RUNNING", running
        mesh("stop", service)  # the job goes on running in Slurm meanwhile
        mesh("up")
    finally:
        release.touch()  # the job ends now (also when the test failed: no job left waiting)
    ends_succeeded(alice, task["id"], running["result"]["jobId"])
