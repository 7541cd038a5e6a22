"""Captures the squeue outputs of tests/data/slurm-22.05/squeue_*.txt (and the sacct records of the same
jobs, to compare field by field) from the local Slurm, as alice, with the fixed delimiter DELIMITER.

    sudo .venv/bin/python tests/data/slurm-22.05/capture_squeue.py   # with jobs of alice pending/running

Run from the repository root while alice has pending, running (with steps) and just-ended jobs.
"""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from services.slurm import sacct, squeue  # noqa: E402

DELIMITER = "|Sq7dLm2x|"
HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "SLURM_CONF": str(HERE.parents[2] / "state/cluster/etc/slurm.conf")}


def run(user: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", "env", f"SLURM_CONF={ENV['SLURM_CONF']}", *argv],
                          capture_output=True, cwd="/tmp")


def save(name: str, data: bytes) -> None:
    (HERE / name).write_bytes(data)
    print(name, len(data))


jobs = run("alice", squeue.command(DELIMITER, user="alice"))
save("squeue_jobs_alice.txt", jobs.stdout)
save("squeue_jobs_alice_all_states.txt", run("alice", squeue.command(DELIMITER, user="alice", all_states=True)).stdout)
save("squeue_steps_alice.txt", run("alice", squeue.steps_command(DELIMITER, user="alice")).stdout)
save("squeue_held.json", run("alice", ["squeue", "--json"]).stdout)
save("squeue_not_held.stderr.txt", run("alice", squeue.command(DELIMITER, job_id="1")).stderr)
ids = [line.split(DELIMITER)[0] for line in jobs.stdout.decode().split("\n") if line.split(DELIMITER)[0].isdigit()]
save("sacct_parsable_held.txt", run("alice", [*sacct.command("alice", DELIMITER, job_id=",".join(ids))]).stdout)
