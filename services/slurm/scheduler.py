"""`SlurmScheduler`: compute's `Scheduler` interface implemented with Slurm's CLI (`SlurmClient`).

The client runs and parses each command; this adds what a job operation needs on top: resolving an
ambiguous submission by its marker, merging accounting (sacct) with the controller's queue (squeue),
filtering the listing (squeue --json of 22.05 ignores filters), naming the uid that cancelled a job.
Requests arrive validated (`services.compute.validation`).
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
from services.slurm import sacct
from services.slurm.client import OutcomeUnknown, SlurmClient
from services.slurm.errors import JOB_NOT_FOUND

log = logging.getLogger(__name__)
SETTLE_SECONDS = 2.0  # after an ambiguous sbatch, time for the controller to finish the RPC
_ACTIVE_STATES = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING")
_UID_CACHE_SIZE = 4096  # uid → user name (or None: unknown) per system; uids are not re-used in practice


class SlurmScheduler(Scheduler):
    def __init__(self, slurm: SlurmClient):
        self._slurm = slurm
        self._uid_names: dict[str, dict[int, str | None]] = {}

    # -- submit ----------------------------------------------------------------------------------

    async def submit(self, caller: Caller, system: SystemConfig, spec: JobSpec, marker: str) -> str:
        try:
            return await self._slurm.submit(caller, system, spec, marker)
        except OutcomeUnknown as unknown:
            return await self._settle(caller, system, marker, unknown.error)

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
        for j in await self._slurm.queue(caller, system):
            if j.comment == marker and j.job.user == caller.username:
                return j.job.job_id
        return None

    # -- queries ---------------------------------------------------------------------------------

    async def _history_and_queue(self, caller: Caller, system: SystemConfig, query: JobQuery | None,
                                 job_id: str | None) -> tuple[list[SchedulerJob] | ApiError, list[SchedulerJob]]:
        """Accounting (sacct, or the error it raised) and the controller's queue (squeue), queried
        concurrently on the caller's pooled connection."""
        history, queue = await asyncio.gather(self._slurm.history(caller, system, query, job_id),
                                              self._slurm.queue(caller, system), return_exceptions=True)
        for outcome in (history, queue):
            if isinstance(outcome, BaseException) and not isinstance(outcome, ApiError):
                raise outcome
        if isinstance(queue, ApiError):
            raise queue
        if isinstance(history, ApiError):
            return history, queue
        return sacct.jobs(history, await self._user_names(caller, system, history)), queue

    async def _user_names(self, caller: Caller, system: SystemConfig, rows: list[dict[str, str]]) -> dict[int, str]:
        """Names of the uids that cancelled the jobs in `rows`: from the rows themselves (a user
        cancelling their own job), from earlier look-ups, else one `getent passwd` for the rest."""
        wanted = sacct.kill_request_users(rows)
        if not wanted:
            return {}
        names = sacct.known_users(rows)
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
        """sacct and squeue merged by id: accounting wins, except a PENDING state from the queue
        (FirecREST v2's rule) and jobs accounting does not know yet."""
        merged: dict[str, compute_pb2.Job] = {j.job.job_id: j.job for j in history}
        for j in queue:
            known = merged.get(j.job.job_id)
            if known is None or j.job.status.state == "PENDING":
                merged[j.job.job_id] = j.job
            elif j.job.name:
                known.name = j.job.name  # the controller's; accounting can lag (shows "allocation")
        return sorted(merged.values(), key=lambda job: (len(job.job_id), job.job_id), reverse=True)

    async def list_jobs(self, caller: Caller, system: SystemConfig, query: JobQuery) -> list[compute_pb2.Job]:
        history, queue = await self._history_and_queue(caller, system, query, None)
        if isinstance(history, ApiError):
            raise history  # a list without the accounting history would silently miss jobs
        oldest = int(time.time()) - TIME_WINDOWS[query.time_window]

        def wanted(j: SchedulerJob) -> bool:  # squeue --json (22.05) ignores every filter: filter here
            job = j.job
            if not query.allusers and job.user != caller.username:
                return False
            if query.account and j.account != query.account:
                return False
            if query.name and job.name != query.name:
                return False
            ended = job.status.state.split(" ")[0] not in _ACTIVE_STATES
            end = job.time.end.number_value if job.time.end.HasField("number_value") else None
            return not ended or end is None or end >= oldest
        return self._merge([j for j in history if wanted(j)], [j for j in queue if wanted(j)])

    async def get_job(self, caller: Caller, system: SystemConfig, job_id: str) -> list[compute_pb2.Job]:
        history, queue = await self._history_and_queue(caller, system, None, job_id)
        queued = [j for j in queue if j.job.job_id == job_id]
        if isinstance(history, ApiError):
            # Accounting unavailable: the controller's view of the job is still right; without it,
            # "not found" would be a lie (pyfirecrest would give up on a job that exists).
            if not queued:
                raise history
            log.warning("sacct failed, answering from squeue: %s", history.message)
            history = []
        jobs = self._merge([j for j in history if j.job.job_id == job_id], queued)
        if not jobs:
            raise NotFound(f"{JOB_NOT_FOUND}.")
        return jobs

    async def job_metadata(self, caller: Caller, system: SystemConfig, job_id: str) -> compute_pb2.JobMetadata:
        return await self._slurm.job_metadata(caller, system, job_id)

    async def cancel(self, caller: Caller, system: SystemConfig, job_id: str) -> None:
        await self._slurm.cancel(caller, system, job_id)

    async def attach(self, caller: Caller, system: SystemConfig, job_id: str, command: str) -> None:
        await self._slurm.attach(caller, system, job_id, command)
