"""`squeue --json`: jobs the controller holds (pending, running, and recently ended ones).

Slurm 22.05 ignores every filter option when `--json` is given (it prints all users' jobs), so
filtering happens here, on parsed values; the same code works with releases that do filter.
"""

from __future__ import annotations

import json

from firecrest_mesh.compute.v1 import compute_pb2
from services.compute.scheduler import SchedulerJob
from services.slurm.numbers import epoch, limit_seconds, number, wait_status
from services.slurm.values import num, text


def command() -> list[str]:
    return ["squeue", "--json"]


def _state(value) -> str:
    return ",".join(value) if isinstance(value, list) else str(value or "")


def parse(stdout: str, now: int) -> list[SchedulerJob]:
    """Every job in the output; `now` (epoch seconds) gives the elapsed time of running jobs."""
    jobs = []
    for j in json.loads(stdout).get("jobs", []):
        state = _state(j.get("job_state"))
        start, end = epoch(j.get("start_time")), epoch(j.get("end_time"))
        if state in ("PENDING", "CONFIGURING") or start is None:
            elapsed = 0
        elif state in ("RUNNING", "COMPLETING", "SUSPENDED") or end is None:
            elapsed = max(0, now - start)
        else:
            elapsed = max(0, end - start)
        exit_code, signal = wait_status(number(j.get("exit_code")))
        job = compute_pb2.Job(
            job_id=str(j.get("job_id")), name=j.get("name") or "",
            status=compute_pb2.JobStatus(state=state, state_reason=text(j.get("state_reason")),
                                         exit_code=num(exit_code), interrupt_signal=num(signal)),
            time=compute_pb2.JobTime(elapsed=num(elapsed), start=num(start), end=num(end), suspended=num(0),
                                     limit=num(limit_seconds(j.get("time_limit")))),
            account=text(j.get("account")), allocation_nodes=number(j.get("node_count")) or 0,
            cluster=j.get("cluster") or "", group=text(j.get("group_name")), nodes=j.get("nodes") or "",
            partition=j.get("partition") or "", kill_request_user=text(None), user=j.get("user_name") or "",
            working_directory=j.get("current_working_directory") or "", priority=num(number(j.get("priority"))))
        jobs.append(SchedulerJob(job=job, comment=j.get("comment") or "", account=j.get("account") or ""))
    return jobs
