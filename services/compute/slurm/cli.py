"""`SlurmCli`: the Slurm implementation of the scheduler interface, over pooled SSH as the caller.

Every command line is built as an argument list by its module and quoted by `shell_join`; every
command is wrapped in coreutils `timeout` (Slurm's timeout from the config), so a stuck controller
gives exit 124 → 408 while the SSH channel stays usable.
"""

from __future__ import annotations

import asyncio
import logging
import time

from firecrest_mesh.compute.v1 import compute_pb2
from services.common.config import SystemConfig
from services.common.errors import ApiError, BadRequest, InternalError, NotFound, RequestTimeout, SshConnectionFailed
from services.common.identity import Caller
from services.common.ssh.command import CommandResult, shell_join, with_timeout
from services.common.ssh.pool import SshPool
from services.compute.scheduler import JobQuery, JobSpec, Scheduler, SchedulerJob
from services.common import slurm_errors as errors
from services.compute.slurm import getent, sacct, sbatch, scancel, scontrol, squeue, srun
from services.common.slurm_errors import JOB_NOT_FOUND

log = logging.getLogger(__name__)
SETTLE_SECONDS = 2.0  # after an ambiguous sbatch, time for the controller to finish the RPC
_ACTIVE_STATES = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING")
_WINDOW_SECONDS = {"1h": 3600, "8h": 8 * 3600, "24h": 86400, "3d": 3 * 86400, "7d": 7 * 86400}
_UID_CACHE_SIZE = 4096  # uid → user name (or None: unknown) per system; uids are not re-used in practice
# sshd runs the command line as one argument of the user's shell (`sh -c <line>`), which Linux limits to
# 128 KiB; longer lines (a huge job environment) are refused before they reach the system.
MAX_COMMAND_LINE = 64 * 1024


class SlurmCli(Scheduler):
    def __init__(self, pool: SshPool):
        self._pool = pool
        self._uid_names: dict[str, dict[int, str | None]] = {}

    async def _exec(self, caller: Caller, system: SystemConfig, argv: list[str], *, stdin: bytes | None = None,
                    timeout: int | None = None) -> CommandResult:
        seconds = timeout or system.scheduler.timeout
        line = shell_join(with_timeout(seconds, argv))
        if len(line.encode("utf-8", errors="surrogatepass")) > MAX_COMMAND_LINE:
            raise BadRequest(f"The request's parameters are too long (more than {MAX_COMMAND_LINE} bytes in "
                             f"the command they make); a large job environment belongs in the job's script.")
        # The SSH-side deadline is later than the remote `timeout`, so the remote one fires first.
        return await self._pool.run(caller, system, line, stdin=stdin, timeout=seconds + 5)

    async def _run(self, caller: Caller, system: SystemConfig, argv: list[str], name: str, **kw) -> CommandResult:
        result = await self._exec(caller, system, argv, **kw)
        if errors.failed(result):
            raise errors.error_for(result, name)
        return result

    # -- submit ----------------------------------------------------------------------------------

    async def submit(self, caller: Caller, system: SystemConfig, spec: JobSpec, marker: str) -> str:
        stdin = spec.script.encode() if spec.script is not None else None
        try:
            result = await self._exec(caller, system, sbatch.argv(spec, marker), stdin=stdin)
        except (RequestTimeout, SshConnectionFailed) as exc:
            # The SSH side gave up: sbatch may or may not have reached the controller.
            return await self._settle(caller, system, marker, exc)
        job_id = sbatch.parse(result.text()) if result.ok else None
        if job_id is not None:
            return job_id
        if result.exit_status == 124:  # remote `timeout` killed sbatch: the RPC may have gone through
            return await self._settle(caller, system, marker, errors.error_for(result, "sbatch"))
        if errors.failed(result):
            raise errors.error_for(result, "sbatch")
        raise InternalError(f"Unexpected sbatch output: {result.text().strip()!r}")

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
        result = await self._run(caller, system, squeue.ARGV, "squeue")
        for j in squeue.parse(result.text(), int(time.time())):
            if j.comment == marker and j.job.user == caller.username:
                return j.job.job_id
        return None

    # -- queries ---------------------------------------------------------------------------------

    async def _history_and_queue(self, caller: Caller, system: SystemConfig, query: JobQuery | None,
                                 job_id: str | None) -> tuple[list[SchedulerJob] | ApiError, list[SchedulerJob]]:
        """Accounting (sacct, or the error it raised) and the controller's queue (squeue), queried
        concurrently on the caller's pooled connection."""
        delimiter = sacct.new_delimiter()
        history, queue = await asyncio.gather(
            self._run(caller, system, sacct.argv(caller.username, delimiter, query, job_id), "sacct"),
            self._run(caller, system, squeue.ARGV, "squeue"), return_exceptions=True)
        for outcome in (history, queue):
            if isinstance(outcome, BaseException) and not isinstance(outcome, ApiError):
                raise outcome
        if isinstance(queue, ApiError):
            raise queue
        jobs = squeue.parse(queue.text(), int(time.time()))
        if isinstance(history, ApiError):
            return history, jobs
        rows = sacct.records(history.text(), delimiter)
        return sacct.jobs(rows, await self._user_names(caller, system, rows)), jobs

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
                result = await self._exec(caller, system, getent.argv(missing))
            except ApiError as exc:  # a missing name is not worth failing the request for
                log.warning("uid look-up failed: %s", exc.message)
                result = None
            if result is not None and result.exit_status in getent.ANSWERED:
                found = getent.parse(result.text())
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
        oldest = int(time.time()) - _WINDOW_SECONDS[query.time_window]

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
        # The script first: Slurm gives it to the job's owner (and operators) only → 403 otherwise.
        script, show = await asyncio.gather(
            self._exec(caller, system, scontrol.script_argv(job_id)),
            self._exec(caller, system, scontrol.show_argv(job_id)))
        for result, name in ((script, "scontrol"), (show, "scontrol")):
            if errors.failed(result):
                raise errors.error_for(result, name)
        return scontrol.parse_metadata(job_id, show.text(), script.text())

    async def cancel(self, caller: Caller, system: SystemConfig, job_id: str) -> None:
        await self._run(caller, system, scancel.argv(job_id), "scancel")

    async def attach(self, caller: Caller, system: SystemConfig, job_id: str, command: str) -> None:
        await self._run(caller, system, srun.argv(job_id, command), "srun",
                        timeout=system.ssh.timeouts.command_execution)
