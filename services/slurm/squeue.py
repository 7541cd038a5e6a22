"""`squeue`: the jobs the controller holds (pending, running, and ended ones for `MinJobAge`), always
filtered by Slurm itself to one job (`--jobs`) or one user (`--user`) unless all users are asked for.

Slurm 22.05 ignores every filter option when `--json` is given (it prints all users' jobs: 1.7 MB
and seconds after a burst of submissions), so this reads the fixed-format output instead: `-O` with
every field unpadded (`Field:0`) and followed by a fresh random delimiter, read like sacct's by
`delimited.records()` (the id first, free text last: `Comment`, `WorkDir`, `Name`). Times are epoch
seconds (`SLURM_TIME_FORMAT=%s`). Steps (`--steps`) are a second query, read the same way.

The jobs built here are what the accounting answer (`sacct`) gives for a pending or running job, field
by field (compared on real jobs of 22.05.8): elapsed is the controller's `TimeUsed`, the end of a
running job is null (sacct: `Unknown`), the time limit is the job's (`TimeLimit` → seconds, null when
unlimited), steps are the job's running steps (id, name, state, elapsed, start). Where they differ
(see `services/slurm/scheduler.py`), the controller's view is the current one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from firecrest_mesh.compute.v1 import compute_pb2
from services.compute.scheduler import SchedulerJob
from services.slurm import delimited
from services.slurm.numbers import duration_seconds, epoch, number, wait_status
from services.slurm.values import set_num, set_text

# JobID first (an anchor: never free text); free text last. `JobID` is the raw id (%A: an array
# task's own id; an array's pending remainder has its base id, as sacct's JobIDRaw).
FIELDS = ("JobID", "ArrayJobID", "ArrayTaskID", "State", "Reason", "Account", "NumNodes", "Cluster", "GroupName", "NodeList", "Partition",
          "PriorityLong", "UserName", "TimeUsed", "StartTime", "EndTime", "TimeLimit", "exit_code",
          "Comment", "WorkDir", "Name")
STEP_FIELDS = ("StepId", "StepState", "TimeUsed", "StartTime", "StepName")
_JOB_ID = re.compile(r"^\d+$")
_STEP_ID = re.compile(r"^(\d+(?:_\d+)?)\.([A-Za-z0-9_+-]+)$")  # "6264.batch", array task "6267_3.0"
# States in which the controller's record is the job's current one (not yet ended). COMPLETING is
# ended: accounting has its final state and exit code.
ACTIVE_STATES = frozenset(("PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD",
                           "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT"))
_NOT_HELD = re.compile(r"Invalid job id")  # "...specified" (not held), "squeue: error: Invalid job id: abc"


def _format(fields: tuple[str, ...], delimiter: str) -> str:
    return ",".join(f"{f}:0{delimiter}" if i < len(fields) - 1 else f"{f}:0" for i, f in enumerate(fields))


def _filters(user: str | None, job_id: str | None, job_ids: Sequence[str] = ()) -> list[str]:
    args = []
    if job_id is not None or job_ids:
        args.append(f"--jobs={','.join([job_id] if job_id is not None else job_ids)}")
    if user is not None:
        args.append(f"--user={user}")
    return args


def command(delimiter: str, *, user: str | None = None, job_id: str | None = None,
            job_ids: Sequence[str] = (), all_states: bool = False) -> list[str]:
    """The jobs of `user` (None: every user's), of those the one job `job_id` or the jobs `job_ids` (the
    ones the controller holds: squeue lists them and skips the others, but one unknown id alone is an
    error); `all_states` adds the ended jobs the controller still holds (squeue's default is pending,
    running, suspended, completing)."""
    states = ["--states=all"] if all_states else []
    return ["env", "SLURM_TIME_FORMAT=%s", "squeue", "--noheader", *states, *_filters(user, job_id, job_ids),
            f"--Format={_format(FIELDS, delimiter)}"]


def steps_command(delimiter: str, *, user: str | None = None, job_id: str | None = None) -> list[str]:
    """The running steps of `user`'s jobs (None: everyone's) or of the job `job_id`."""
    return ["env", "SLURM_TIME_FORMAT=%s", "squeue", "--noheader", "--steps", *_filters(user, job_id),
            f"--Format={_format(STEP_FIELDS, delimiter)}"]


def not_held(stderr: str) -> bool:
    """squeue --jobs=<id> of a job the controller does not hold (or an id it cannot parse) exits 1 so."""
    return bool(_NOT_HELD.search(stderr))


def parse(stdout: str, delimiter: str) -> list[SchedulerJob]:
    """Every job of the output, without steps (`attach_steps`)."""
    jobs = []
    for r in delimited.records(stdout, delimiter, FIELDS, _JOB_ID, "squeue"):
        state = r["State"]
        active = state in ACTIVE_STATES
        pending = state == "PENDING"
        limit = duration_seconds(r["TimeLimit"])
        exit_code, signal = wait_status(number(r["exit_code"]))
        start = epoch(r["StartTime"])
        end = epoch(r["EndTime"])
        job = compute_pb2.Job(job_id=r["JobID"], name=r["Name"], allocation_nodes=number(r["NumNodes"]) or 0,
                              cluster=r["Cluster"], nodes=r["NodeList"], partition=r["Partition"],
                              user=r["UserName"], working_directory=r["WorkDir"])
        job.status.state = state
        set_text(job.status.state_reason, r["Reason"] or None)
        set_num(job.status.exit_code, exit_code)
        set_num(job.status.interrupt_signal, signal)
        time = job.time
        set_num(time.elapsed, duration_seconds(r["TimeUsed"]) or 0)
        set_num(time.start, start)
        set_num(time.end, None if active and not pending else end)  # a running job has no end yet (sacct)
        set_num(time.suspended, 0)
        set_num(time.limit, limit)
        set_text(job.account, r["Account"] or None)
        set_text(job.group, r["GroupName"] or None)
        set_text(job.kill_request_user, None)
        set_num(job.priority, number(r["PriorityLong"]))
        comment = r["Comment"] if r["Comment"] != "(null)" else ""
        task = r["ArrayTaskID"]  # steps of array tasks are named "<array job>_<task>.<step>"
        step_key = f"{r['ArrayJobID']}_{task}" if task.isdigit() else r["JobID"]
        jobs.append(SchedulerJob(job=job, comment=comment, account=r["Account"], extra={"step_key": step_key}))
    return jobs


def _step_order(step: str) -> tuple:
    """sacct's order of a job's steps: batch, extern, then the numbered ones."""
    return (0, 0) if step == "batch" else (1, 0) if step == "extern" else (2, int(step)) if step.isdigit() else (3, 0)


def parse_steps(stdout: str, delimiter: str) -> dict[str, list[tuple[str, compute_pb2.JobTask]]]:
    """Step key (a job id, or "<array job>_<task>") → its running steps as (step name, task)."""
    steps: dict[str, list[tuple[str, compute_pb2.JobTask]]] = {}
    for r in delimited.records(stdout, delimiter, STEP_FIELDS, _STEP_ID, "squeue --steps"):
        key, step = _STEP_ID.match(r["StepId"]).groups()
        task = compute_pb2.JobTask(id=r["StepId"], name=r["StepName"])
        task.status.state = r["StepState"]
        set_text(task.status.state_reason, None)
        set_num(task.status.exit_code, 0)
        set_num(task.status.interrupt_signal, 0)
        for field, value in (("elapsed", duration_seconds(r["TimeUsed"]) or 0), ("start", epoch(r["StartTime"])),
                             ("end", None), ("suspended", 0), ("limit", None)):
            set_num(getattr(task.time, field), value)
        steps.setdefault(key, []).append((step, task))
    return steps


def attach_steps(jobs: list[SchedulerJob], steps: dict[str, list[tuple[str, compute_pb2.JobTask]]]) -> list[SchedulerJob]:
    """The jobs with their running steps as tasks, named by the job's raw id as sacct names them
    ("6270.batch", not squeue's "6267_3.batch"), in sacct's order."""
    for j in jobs:
        for step, task in sorted(steps.get(j.extra.get("step_key", j.job.job_id), ()), key=lambda s: _step_order(s[0])):
            task.id = f"{j.job.job_id}.{step}"
            j.job.tasks.append(task)
    return jobs
