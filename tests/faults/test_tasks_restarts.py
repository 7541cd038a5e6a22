"""A task survives restarts: the tasks service, and separately the compute service (where the job
follower lives), are stopped while the task's job runs and started again; the task still reaches
SUCCEEDED with its job's exit code and stays readable. Real processes, stopped and started with the
launcher (`mesh.py stop NAME` / `up`), like the other fault tests.

The job runs until the test releases it once the service is back (`held_job`): it certainly runs
across the restart, and the test waits no longer than the restart itself (a fixed `sleep 20` did
both less surely and more slowly).

Accounting down (slurmdbd stopped) is the other fault a task lives through: the controller still runs
the job and says so, and the job's end is recorded once accounting is back."""

from __future__ import annotations

import subprocess

import pytest

from services.common.config import REPO_ROOT
from tests.faults.processes import eventually, mesh
from tests.integration.tasks_helpers import ends_succeeded, held_job, submit_async, until_running


@pytest.mark.parametrize("service", ["tasks", "compute"])
def test_task_completes_across_a_restart(api, config, service):
    alice = api("alice")
    script, release = held_job()
    task = submit_async(alice, config.systems[0].name, script)
    try:
        running = until_running(alice, task["id"])
        mesh("stop", service)  # the job goes on running in Slurm meanwhile
        mesh("up")
    finally:
        release.touch()  # the job ends now (also when the test failed: no job left waiting)
    ends_succeeded(alice, task["id"], running["result"]["jobId"])


def test_a_task_shows_its_job_running_while_accounting_is_down(api, config):
    alice = api("alice")
    dbd_pid = config.state("cluster", "slurm", "run", "slurmdbd.pid").read_text().split()[0]
    script, release = held_job()
    subprocess.run(["kill", dbd_pid], check=True)
    try:
        assert eventually(lambda: subprocess.run(["kill", "-0", dbd_pid], capture_output=True).returncode != 0, 30)
        task = submit_async(alice, config.systems[0].name, script)
        running = until_running(alice, task["id"])  # the controller's word: accounting cannot answer
        job_id = running["result"]["jobId"]
        sacct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job_id, "-o", "State"], capture_output=True,
                               text=True, timeout=120)
        assert sacct.returncode != 0 or not sacct.stdout.strip(), f"accounting answered: {sacct.stdout}"
    finally:
        release.touch()  # the job ends while accounting is still down
        subprocess.run(["bash", str(REPO_ROOT / "cluster" / "up.sh")], check=True, capture_output=True, timeout=300)
    ends_succeeded(alice, task["id"], job_id)  # its end reached accounting once slurmdbd was back
