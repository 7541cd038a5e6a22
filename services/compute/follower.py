"""Asynchronous jobs: the submission behind `POST /compute/{system}/jobs/async` and the `JobFollower`
that records each job's progress in its task until it ends (tasks of kind "job", and the storage
service's "transfer" tasks, whose killed job makes the task FAILED rather than CANCELLED).

Why here, in compute, and not in the tasks service: following a job means asking the scheduler, and
the scheduler (Slurm over SSH, its parsers, the certificator, the SSH pool) is compute's; the tasks
service stays a store that knows no scheduler, as in FirecREST's design (compute → tasks).

Who asks: the follower acts long after the user's token expired (tokens live minutes, jobs hours), and
the certificator signs only for a verified token. So it queries as the mesh's service account (the
health checker's OIDC client, `health.service_account`), whose Slurm view of other users' jobs
requires that jobs are not PrivateData (or that the account is a Slurm operator). Each query is
scoped to one owner (`sacct --user=<owner> --jobs=<their ids>`), so a task only ever receives its
owner's job. User actions (submit, cancel) still run as the user with their token.

Cost: per `tasks.follow_interval_seconds`, one `squeue --user=<owner> --jobs=<their ids>` per (user,
system) with unfinished job tasks, never one per task, and one `sacct` for those of their jobs the
controller no longer holds as pending or running. The controller answers first because it knows at
once: accounting learns of a job's start from slurmctld a moment later (~2 s here), and not at all
while slurmdbd or its database is down (a task then still shows RUNNING); only the end's record (exit
code, final state) is accounting's.

Resuming after a restart of compute or tasks needs nothing kept in memory: each round starts from the
tasks service's list of unfinished job tasks. A task left without a job id (compute stopped during
`sbatch`) is resolved by its marker (the job's `--comment`, derived from the task id) once it is older
than ORPHAN_GRACE_SECONDS: the job if it exists, else FAILED.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

import grpc

from firecrest_mesh.compute.v1 import compute_pb2
from firecrest_mesh.tasks.v1 import tasks_pb2
from services.common.config import Config, SystemConfig
from services.common.errors import ApiError
from services.common.identity import Caller
from services.common.token_verifier import TokenVerifier
from services.compute.scheduler import JobSpec, Scheduler, SchedulerJob
from services.compute.submissions import MARKER_PREFIX
from services.compute.task_records import TaskEnded, TaskRecords
from services.slurm import delimited, sacct, squeue
from services.slurm.client import SlurmClient

log = logging.getLogger(__name__)
JOB_KIND = "job"
TRANSFER_KIND = "transfer"  # the storage service's transfer jobs, followed the same way
FOLLOWED_KINDS = (JOB_KIND, TRANSFER_KIND)
ORPHAN_GRACE_SECONDS = 120  # longer than any sbatch of a live submission (scheduler timeout + settling)
UPDATE_RETRY_SECONDS = 60  # how long a submission retries recording its job id while tasks restarts
TOKEN_MARGIN_SECONDS = 60
UNSETTLED_ROUNDS = 3  # rounds an ended job's inconsistent record waits for accounting to complete it
# A round that lasts longer is stuck on something (every command and call has a timeout of its own,
# far shorter): it is cancelled and the next one starts, so nothing can stop the following for good.
ROUND_LIMIT_SECONDS = 300

_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "RESIZING",
            "STOPPED"}


def task_state(scheduler_state: str, exit_code: int | None) -> str:
    """The task state for a job's scheduler state ("CANCELLED by 1001" → CANCELLED)."""
    base = scheduler_state.split(" ")[0].rstrip("+")
    if base in _QUEUED or not base:
        return "QUEUED"
    if base in _RUNNING:
        return "RUNNING"
    if base == "COMPLETED":
        return "SUCCEEDED" if not exit_code else "FAILED"
    if base == "CANCELLED":
        return "CANCELLED"
    return "FAILED"  # FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, PREEMPTED...


def progress(task: tasks_pb2.Task, job_id: str, scheduler_state: str,
             exit_code: int | None) -> tasks_pb2.UpdateTaskRequest | None:
    """The update that records the job's state in its task; None when the task says so already. A job
    not yet ended has no exit code (accounting shows 0 meanwhile)."""
    state = task_state(scheduler_state, exit_code)
    if state in ("QUEUED", "RUNNING"):
        exit_code = None
    if task.kind == TRANSFER_KIND and state == "CANCELLED":
        state = "FAILED"  # a transfer whose job was killed did not happen; cancelling the task itself
        #                   ends it CANCELLED before the job's end is recorded (final states stay)
    unchanged = (task.state == state and task.result.scheduler_state == scheduler_state
                 and task.result.HasField("exit_code") == (exit_code is not None)
                 and (exit_code is None or task.result.exit_code == exit_code))
    if unchanged:
        return None
    result = tasks_pb2.TaskResult(job_id=job_id, scheduler_state=scheduler_state)
    if exit_code is not None:
        result.exit_code = exit_code
    update = tasks_pb2.UpdateTaskRequest(task_id=task.id, state=state, result=result,
                                         message=f"Job {job_id} {scheduler_state}")
    if state == "FAILED":
        update.error.CopyFrom(tasks_pb2.TaskError(
            code=500, message=f"Job {job_id} ended {scheduler_state} with exit code {exit_code}"))
    return update


def settled(scheduler_state: str, exit_code: int | None, signal: int | None) -> bool:
    """Whether accounting's record of an ended job is complete enough to be final: Slurm records FAILED
    for a non-zero exit or a signal, so FAILED with no exit code, or with exit 0 and no signal, is a
    record caught half-written (seen once: a script that exits 3 recorded FAILED with exit code 0).
    The follower waits up to UNSETTLED_ROUNDS rounds for the rest before it takes such a record."""
    if scheduler_state.split(" ")[0].rstrip("+") != "FAILED":
        return True
    return exit_code is not None and (exit_code != 0 or bool(signal))


def live_jobs(held: list[SchedulerJob], owner: str) -> dict[str, compute_pb2.Job]:
    """Job id → job, of the jobs in the controller's answer (`squeue`) that are `owner`'s and not yet
    ended: their state is the controller's (an ended job's record is accounting's: `sacct`)."""
    return {j.job.job_id: j.job for j in held if j.job.user == owner and j.job.status.state in squeue.ACTIVE_STATES}


def marker_for_task(task_id: str) -> str:
    """The job marker (Slurm `--comment`) of a task's submission."""
    return MARKER_PREFIX + hashlib.sha256(f"task\0{task_id}".encode()).hexdigest()[:32]


def _number(value) -> int | None:
    return int(value.number_value) if value.HasField("number_value") else None


def _exit_code(job) -> int | None:
    return _number(job.status.exit_code)


class JobFollower:
    def __init__(self, config: Config, scheduler: Scheduler, slurm: SlurmClient, records: TaskRecords):
        self._config = config
        self._scheduler = scheduler
        self._slurm = slurm
        self._records = records
        self._verifier = TokenVerifier(config.identity)
        self._account: Caller | None = None
        self._submitting: set[str] = set()  # task ids whose sbatch runs in this process
        self._unsettled: dict[str, int] = {}  # task id → rounds its job's ended record looked incomplete
        self._background: set[asyncio.Task] = set()
        self._loop_task: asyncio.Task | None = None
        self.queries = 0  # scheduler queries made by the follower (logged per round)

    # -- asynchronous submission --------------------------------------------------------------------

    def submit(self, who: Caller, system: SystemConfig, spec: JobSpec, task: tasks_pb2.Task) -> None:
        """Submits in the background as `who`, then records the job id (or the failure) in `task`."""
        self._submitting.add(task.id)
        job = asyncio.get_running_loop().create_task(self._submit(who, system, spec, task))
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _submit(self, who: Caller, system: SystemConfig, spec: JobSpec, task: tasks_pb2.Task) -> None:
        try:
            try:
                job_id = await self._scheduler.submit(who, system, spec, marker_for_task(task.id))
            except ApiError as exc:
                await self._record(tasks_pb2.UpdateTaskRequest(
                    task_id=task.id, state="FAILED", message="The scheduler refused the job",
                    error=tasks_pb2.TaskError(code=exc.http_status, message=exc.message)))
                return
            try:
                await self._record(tasks_pb2.UpdateTaskRequest(
                    task_id=task.id, message=f"Submitted as job {job_id}",
                    result=tasks_pb2.TaskResult(job_id=job_id, scheduler_state="PENDING")))
            except TaskEnded:  # its owner cancelled the task while sbatch ran: cancel the job too
                await self._scheduler.cancel(who, system, job_id)
        except Exception:
            log.exception("asynchronous submission failed", extra={"fields": {"task": task.id}})
        finally:
            self._submitting.discard(task.id)

    async def _record(self, update: tasks_pb2.UpdateTaskRequest) -> None:
        """Records `update`, retrying while the tasks service is unavailable (e.g. restarting)."""
        deadline = time.monotonic() + UPDATE_RETRY_SECONDS
        while True:
            try:
                await self._records.update(update)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    # -- following ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run_forever())

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()

    async def _run_forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.follow_once(), ROUND_LIMIT_SECONDS)
            except asyncio.CancelledError:
                raise
            except asyncio.TimeoutError:
                log.warning("job follower round cancelled after %d s", ROUND_LIMIT_SECONDS)
            except Exception as exc:  # tasks or the identity provider restarting: next round
                log.warning("job follower round failed: %s", exc)
            await asyncio.sleep(self._config.tasks.follow_interval_seconds)

    async def _service_account(self) -> Caller:
        if self._account is None or self._account.expires_at - time.time() < TOKEN_MARGIN_SECONDS:
            from services.status.health import service_account  # the same OIDC client as the health checker
            self._account = await service_account(self._config, self._verifier)
        return self._account

    async def follow_once(self) -> int:
        """One round: one scheduler query per (owner, system) with unfinished job tasks. Returns the
        number of queries made."""
        groups: dict[tuple[str, str], list[tasks_pb2.Task]] = {}
        for task in await self._records.active(""):
            if task.kind not in FOLLOWED_KINDS:
                continue
            groups.setdefault((task.owner, task.system), []).append(task)
        active = {t.id for tasks in groups.values() for t in tasks}
        self._unsettled = {task_id: n for task_id, n in self._unsettled.items() if task_id in active}
        if not groups:
            return 0
        account = await self._service_account()
        counts = await asyncio.gather(*(self._follow(account, owner, system, tasks)
                                        for (owner, system), tasks in groups.items()), return_exceptions=True)
        made = 0
        for count in counts:
            if isinstance(count, BaseException):
                log.warning("following jobs failed: %s", count)
            else:
                made += count
        log.info("job follower round", extra={"fields": {"queries": made, "tasks": sum(map(len, groups.values())),
                                                         "groups": len(groups)}})
        return made

    def _settled(self, task_id: str, job) -> bool:
        """Whether to record the job's state now (see `settled`): an incomplete record waits a few rounds."""
        if settled(job.status.state, _exit_code(job), _number(job.status.interrupt_signal)):
            self._unsettled.pop(task_id, None)
            return True
        rounds = self._unsettled.get(task_id, 0) + 1
        if rounds <= UNSETTLED_ROUNDS:
            self._unsettled[task_id] = rounds
            return False
        self._unsettled.pop(task_id, None)
        return True

    async def _follow(self, account: Caller, owner: str, system_name: str, tasks: list[tasks_pb2.Task]) -> int:
        system = self._config.system(system_name)
        if system is None:
            return 0
        with_job = [t for t in tasks if t.result.job_id]
        now_us = time.time_ns() // 1000
        orphans = [t for t in tasks if not t.result.job_id and t.id not in self._submitting
                   and now_us - t.create_time.ToMicroseconds() > ORPHAN_GRACE_SECONDS * 1_000_000]
        if not with_job and not orphans:
            return 0
        # The controller first: of the owner's jobs it holds, the followed ones (all of them when an
        # orphan's marker is looked for: orphans are rare, a user's queue can be long).
        followed = () if orphans else sorted({t.result.job_id for t in with_job})
        held = await self._slurm.queue(account, system, user=owner, job_ids=followed, all_states=True)
        made = 1
        self.queries += 1
        live = live_jobs(held, owner)
        ended = []
        for task in with_job:
            job = live.get(task.result.job_id)
            if job is None:
                ended.append(task)  # ended, or long gone from the controller: accounting has its record
            else:
                await self._apply(progress(task, job.job_id, job.status.state, None))
        if ended:
            made += 1
            self.queries += 1
            delimiter = delimited.new_delimiter()
            argv = sacct.follow_command(owner, delimiter, sorted({t.result.job_id for t in ended}))
            rows = sacct.parse((await self._slurm.run(account, system, argv)).text(), delimiter)
            jobs = {j.job.job_id: j.job for j in sacct.jobs(rows, {}) if j.job.user == owner}
            for task in ended:
                job = jobs.get(task.result.job_id)
                if job is None:
                    continue  # accounting has not seen it yet (it lags the controller by a moment)
                if not self._settled(task.id, job):
                    continue
                await self._apply(progress(task, job.job_id, job.status.state, _exit_code(job)))
        if orphans:
            by_marker = {j.comment: j.job.job_id for j in held if j.job.user == owner}
            for task in orphans:
                job_id = by_marker.get(marker_for_task(task.id))
                await self._apply(
                    tasks_pb2.UpdateTaskRequest(task_id=task.id, message=f"Submitted as job {job_id}",
                                                result=tasks_pb2.TaskResult(job_id=job_id, scheduler_state="PENDING"))
                    if job_id else
                    tasks_pb2.UpdateTaskRequest(task_id=task.id, state="FAILED",
                                                message="The submission was interrupted",
                                                error=tasks_pb2.TaskError(
                                                    code=500, message="The compute service stopped before "
                                                                      "the scheduler accepted the job")))
        return made

    async def _apply(self, update: tasks_pb2.UpdateTaskRequest | None) -> None:
        """Records a follower's `update` (None: nothing changed); a task its owner cancelled meanwhile
        keeps that end."""
        if update is None:
            return
        try:
            await self._records.update(update)
        except TaskEnded:
            pass
