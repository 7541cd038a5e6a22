"""`SlurmScheduler`: compute's `Scheduler` interface implemented with Slurm's CLI (`SlurmClient`).

The client runs and parses each command; this adds what a job operation needs on top: resolving an
ambiguous submission by its marker, answering a job query from the controller (squeue, filtered by
Slurm to the job or the user) and from accounting (sacct) only for what has ended, naming the uid that
cancelled a job, and sharing one in-flight query among identical concurrent ones of a user
(`SingleFlight`, keyed by user, system, query and the user's submit/cancel generation). Requests
arrive validated (`services.compute.validation`).

Where the controller's answer for a pending or running job differs from accounting's (compared field
by field on real jobs of 22.05.8, tests/unit/test_slurm_squeue.py): nowhere for a running job, except
that its tasks are its running steps (steps that already ended appear once the job has ended, from
accounting) and that accounting lagging behind the controller no longer shows (right after it starts,
accounting still said PENDING, group root, no partition). A pending job was answered from squeue
--json already; its `time.end` is now null where the JSON gave the expected start plus Slurm's
"no limit" sentinel (136 years ahead), as accounting's `Unknown` is.
"""

from __future__ import annotations

import asyncio
import logging
import time

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.config import SystemConfig
from services.common.errors import ApiError, NotFound
from services.common.identity import Caller
from services.compute.scheduler import TIME_WINDOWS, JobQuery, JobSpec, Scheduler, SchedulerJob
from services.compute.single_flight import SingleFlight
from services.slurm import sacct, squeue
from services.slurm.client import OutcomeUnknown, SlurmClient
from services.slurm.errors import JOB_NOT_FOUND
from services.slurm.ended_jobs import EndedJobs

log = logging.getLogger(__name__)
SETTLE_SECONDS = 2.0  # after an ambiguous sbatch, time for the controller to finish the RPC
_ACTIVE_STATES = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING")
_ACCOUNTING_NAME_BYTES = 255  # accounting cuts job names there; the controller's name is whole
_UID_CACHE_SIZE = 4096  # uid → user name (or None: unknown) per system; uids are not re-used in practice


def _active(job: compute_pb2.Job) -> bool:
    return job.status.state.split(" ")[0] in _ACTIVE_STATES


def _ignore_outcome(task: asyncio.Future) -> None:
    """For a query whose answer is no longer needed: its outcome is retrieved, never raised."""
    if not task.cancelled():
        task.exception()


class SlurmScheduler(Scheduler):
    def __init__(self, slurm: SlurmClient):
        self._slurm = slurm
        self._uid_names: dict[str, dict[int, str | None]] = {}
        self._flights = SingleFlight()
        self._generations: dict[tuple[str, str], int] = {}
        self._ended = EndedJobs()

    # -- submit ----------------------------------------------------------------------------------

    async def submit(self, caller: Caller, system: SystemConfig, spec: JobSpec, marker: str) -> str:
        try:
            return await self._slurm.submit(caller, system, spec, marker)
        except OutcomeUnknown as unknown:
            return await self._settle(caller, system, marker, unknown.error)
        finally:
            self._changed(caller, system)

    async def _settle(self, caller: Caller, system: SystemConfig, marker: str, error: ApiError) -> str:
        """After an ambiguous submission: the job's id if it exists, else the original error."""
        await asyncio.sleep(SETTLE_SECONDS)
        try:
            job_id = await self.find_by_marker(caller, system, marker)
        except ApiError:
            raise error from None
        if job_id is None:
            raise error
        log.info("ambiguous submission resolved by its marker", extra={"fields": {"job_id": job_id}})
        return job_id

    async def find_by_marker(self, caller: Caller, system: SystemConfig, marker: str) -> str | None:
        # sacct (22.05) does not record comments; the controller keeps ended jobs for MinJobAge.
        for j in await self._slurm.queue(caller, system, user=caller.username, all_states=True):
            if j.comment == marker and j.job.user == caller.username:
                return j.job.job_id
        return None

    # -- queries ---------------------------------------------------------------------------------

    def _changed(self, caller: Caller, system: SystemConfig) -> None:
        """The caller changed their jobs (submit, cancel): queries from now on must not join a call that
        began before (read your own writes)."""
        key = (caller.username, system.name)
        self._generations[key] = self._generations.get(key, 0) + 1

    def _coalesced(self, caller: Caller, system: SystemConfig, query, make):
        """`make()`, shared with the identical in-flight query of the same user on the same system."""
        generation = self._generations.get((caller.username, system.name), 0)
        return self._flights.run((caller.username, system.name, generation, query), make)

    async def _history(self, caller: Caller, system: SystemConfig, query: JobQuery | None,
                       job_id: str | None, into: compute_pb2.ListJobsResponse | None = None) -> list[SchedulerJob]:
        """Accounting records (sacct) as jobs (entries of `into`), made while sacct's output arrives
        (`SlurmClient.history`), the uids that cancelled them named."""
        built = await self._slurm.history(caller, system, query, job_id, into)
        built.name_cancellers(await self._user_names(caller, system, built))
        return built.jobs()

    async def _user_names(self, caller: Caller, system: SystemConfig, built: sacct.JobsBuilder) -> dict[int, str]:
        """Names of the uids that cancelled the jobs `built` holds: from the records themselves (a user
        cancelling their own job), from earlier look-ups, else one `getent passwd` for the rest."""
        wanted = built.kill_request_users()
        if not wanted:
            return {}
        names = dict(built.known_users)
        cache = self._uid_names.setdefault(system.name, {})
        missing = wanted - names.keys() - cache.keys()
        if missing:
            try:
                found = await self._slurm.user_names(caller, system, missing)
            except ApiError as exc:  # a missing name is not worth failing the request for
                log.warning("uid look-up failed: %s", exc.message)
                found = None
            if found is not None:
                if len(cache) > _UID_CACHE_SIZE:
                    cache.clear()
                cache.update({uid: found.get(uid) for uid in missing})
        names.update({uid: name for uid, name in cache.items() if uid in wanted and name is not None})
        return names

    @staticmethod
    def _merge(history: list[SchedulerJob], queue: list[SchedulerJob]) -> list[compute_pb2.Job]:
        """`_merged` of a few jobs (a job by id), as a list."""
        return list(SlurmScheduler._merged(compute_pb2.ListJobsResponse(jobs=[j.job for j in history]), queue).jobs)

    @staticmethod
    def _merged(answer: compute_pb2.ListJobsResponse, queue: list[SchedulerJob]) -> compute_pb2.ListJobsResponse:
        """Accounting's jobs (the entries of `answer`) and the controller's merged by id, in `answer`:
        the controller's record of a job it still runs or queues (the current one; accounting lags),
        accounting's of an ended job (final state, exit code, every step, who cancelled it), the
        controller's of an ended job accounting does not know yet (with the controller's name of the
        job). Newest first. In place: a list of thousands of jobs is not copied into a new message."""
        entries = {job.job_id: job for job in answer.jobs}
        for j in queue:
            known = entries.get(j.job.job_id)
            if known is None:
                entries[j.job.job_id] = known = answer.jobs.add()
                known.CopyFrom(j.job)
            elif j.job.status.state in squeue.ACTIVE_STATES:
                known.CopyFrom(j.job)
            elif j.job.name:
                known.name = j.job.name  # the controller's: accounting cuts names at 255 bytes
        answer.jobs.sort(key=lambda job: (len(job.job_id), job.job_id), reverse=True)
        return answer

    async def list_jobs(self, caller: Caller, system: SystemConfig, query: JobQuery) -> compute_pb2.ListJobsResponse:
        return await self._coalesced(caller, system, ("list", query),
                                     lambda: self._list_jobs(caller, system, query))

    async def _list_jobs(self, caller: Caller, system: SystemConfig, query: JobQuery) -> compute_pb2.ListJobsResponse:
        """The controller's jobs (squeue, filtered by Slurm to the caller unless `allusers`) and the
        window's accounting (sacct), queried concurrently; a list without the accounting history would
        silently miss jobs, so its failure fails the list."""
        answer = compute_pb2.ListJobsResponse()  # accounting's jobs are made in it (sacct.jobs)
        history, queue = await asyncio.gather(
            self._history(caller, system, query, None, into=answer),
            self._slurm.held_jobs(caller, system, user=None if query.allusers else caller.username,
                                  all_states=True))  # ended jobs too: accounting lags by a second or two
        oldest = int(time.time()) - TIME_WINDOWS[query.time_window]

        def wanted(j: SchedulerJob) -> bool:  # what Slurm could not filter exactly (see sacct._filters)
            job = j.job
            if not query.allusers and job.user != caller.username:
                return False
            if query.account and j.account != query.account:
                return False
            if query.name and job.name != query.name:
                return False
            ended = not _active(job)
            end = job.time.end.number_value if job.time.end.HasField("number_value") else None
            return not ended or end is None or end >= oldest
        if not all(wanted(j) for j in history):  # filters Slurm could not apply exactly: a copy of the rest
            answer = compute_pb2.ListJobsResponse(jobs=[j.job for j in history if wanted(j)])
        return self._merged(answer, [j for j in queue if wanted(j)])

    async def get_job(self, caller: Caller, system: SystemConfig, job_id: str) -> list[compute_pb2.Job]:
        return await self._coalesced(caller, system, ("job", job_id), lambda: self._get_job(caller, system, job_id))

    async def _get_job(self, caller: Caller, system: SystemConfig, job_id: str) -> list[compute_pb2.Job]:
        """A job the controller still queues or runs: its answer (one squeue of that job, with its
        steps), no accounting. Otherwise (ended, or no longer held) accounting's record (sacct); a job
        accounting has already answered as ended goes straight to accounting (`EndedJobs`)."""
        if (system.name, job_id) in self._ended:
            return await self._ended_job(caller, system, job_id)
        # The job and its steps concurrently; a job that has ended does not wait for its steps.
        steps = asyncio.ensure_future(self._slurm.steps(caller, system, job_id=job_id))
        try:
            queued = [j for j in await self._slurm.queue(caller, system, job_id=job_id, all_states=True)
                      if j.job.job_id == job_id]
            if queued and queued[0].job.status.state in squeue.ACTIVE_STATES:
                return [squeue.attach_steps(queued, await steps)[0].job]
        finally:
            steps.add_done_callback(_ignore_outcome)  # when not awaited (ended job, or squeue failed)
        try:
            history = [j for j in await self._history(caller, system, None, job_id) if j.job.job_id == job_id]
        except ApiError as exc:
            # Accounting unavailable: the controller's view of the job is still right; without it,
            # "not found" would be a lie (pyfirecrest would give up on a job that exists).
            if not queued:
                raise
            log.warning("sacct failed, answering from squeue: %s", exc.message)
            history = []
        jobs = self._merge(history, queued)
        if not jobs:
            raise NotFound(f"{JOB_NOT_FOUND}.")
        if history and not any(_active(j.job) for j in history) and not any(_active(j.job) for j in queued) \
                and all(len(j.job.name.encode()) < _ACCOUNTING_NAME_BYTES for j in history):
            self._ended.add(system.name, job_id)
        return jobs

    async def _ended_job(self, caller: Caller, system: SystemConfig, job_id: str) -> list[compute_pb2.Job]:
        """A job accounting has answered as ended before: accounting alone, unless its answer changed."""
        try:
            history = [j for j in await self._history(caller, system, None, job_id) if j.job.job_id == job_id]
        except ApiError:
            history = []
        if not history or any(_active(j.job) for j in history):
            # Not what was recorded (accounting failed or lost it, a requeue, a reused id): ask both.
            self._ended.discard(system.name, job_id)
            return await self._get_job(caller, system, job_id)
        return self._merge(history, [])

    async def job_metadata(self, caller: Caller, system: SystemConfig, job_id: str) -> compute_pb2.JobMetadata:
        return await self._slurm.job_metadata(caller, system, job_id)

    async def cancel(self, caller: Caller, system: SystemConfig, job_id: str) -> None:
        try:
            await self._slurm.cancel(caller, system, job_id)
        finally:
            self._changed(caller, system)

    async def attach(self, caller: Caller, system: SystemConfig, job_id: str, command: str) -> None:
        await self._slurm.attach(caller, system, job_id, command)
