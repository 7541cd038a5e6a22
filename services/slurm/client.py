"""`SlurmClient`: Slurm's commands run on a system as the caller, through the one `CommandRunner`.

Each method builds its command with the command's module, runs it under the system's scheduler
timeout (`scheduler.timeout`; `scheduler.accounting_timeout` for sacct; exit 124 → 408), turns a
failure into the API error `errors` gives for Slurm's message, and returns what the module parses.
Callers: the status servicer (nodes, partitions, reservations, userinfo) and compute's
`SlurmScheduler` (jobs), which adds the policy on top.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from firecrest_mesh.compute.v1 import compute_pb2
from firecrest_mesh.status.v1 import status_pb2
from services.common.config import SystemConfig
from services.common.errors import ApiError, InternalError, RequestTimeout, SshConnectionFailed
from services.common.identity import Caller
from services.common import offload
from services.common.offload import parsed
from services.common.ssh.command import CommandResult
from services.common.ssh.runner import CommandRunner, FailureTest, exited_non_zero
from services.compute.scheduler import JobQuery, JobSpec, SchedulerJob
from services.slurm.timed_runner import TimedRunner
from services.slurm import (delimited, errors, getent, posix_id, sacct, sacctmgr, sbatch, scancel, scontrol_batch_script,
                            scontrol_job, scontrol_partitions, scontrol_reservations, sinfo, squeue, srun)


class OutcomeUnknown(Exception):
    """sbatch may or may not have reached the controller (the SSH side or the remote `timeout` gave
    up first): whether the job exists is for its marker to tell. `error` is what to answer otherwise."""

    def __init__(self, error: ApiError):
        super().__init__(error.message)
        self.error = error


def default_timeout(system: SystemConfig, argv: list[str]) -> int:
    """The remote timeout of `argv` when its caller gives none: `scheduler.accounting_timeout` for
    sacct (its cost grows with the jobs in its window), `scheduler.timeout` for every other command."""
    scheduler = system.scheduler
    return scheduler.accounting_timeout if errors.program(argv) == "sacct" else scheduler.timeout


class SlurmClient:
    def __init__(self, runner: CommandRunner):
        self._runner = TimedRunner(runner)  # each command's latency and outcome in the metrics

    async def execute(self, caller: Caller, system: SystemConfig, argv: list[str], *, stdin: bytes | None = None,
                      timeout: int | None = None, read: bool = False) -> CommandResult:
        """The result of `argv` whatever its exit status (for commands whose outcome needs a closer look).
        `read`: a query, which the pool may run again (idempotent); never for sbatch, scancel, srun."""
        return await self._runner.execute(caller, system, argv, timeout=timeout or default_timeout(system, argv),
                                          stdin=stdin, idempotent=read)

    async def run(self, caller: Caller, system: SystemConfig, argv: list[str], *, failed: FailureTest = errors.failed,
                  timeout: int | None = None, read: bool = False, stdout_sink=None) -> CommandResult:
        """The result of `argv`; a failure (by default: non-zero exit or an `error:` line on stderr, as
        `scancel` and `scontrol write batch_script` refuse with exit 0) raises Slurm's API error."""
        name = errors.program(argv)
        return await self._runner.run(caller, system, argv, timeout=timeout or default_timeout(system, argv),
                                      error_for=lambda result: errors.error_for(result, name), failed=failed,
                                      idempotent=read, stdout_sink=stdout_sink)

    async def _query(self, caller: Caller, system: SystemConfig, argv: list[str]) -> str:
        """The output of a status query; it failed only when it exited non-zero (these commands may print
        `error:` warnings, e.g. about slurm.conf, and still answer)."""
        return (await self.run(caller, system, argv, failed=exited_non_zero, read=True)).text()

    # -- the system: status's queries --------------------------------------------------------------

    async def nodes(self, caller: Caller, system: SystemConfig) -> list[status_pb2.Node]:
        return sinfo.parse(await self._query(caller, system, sinfo.command()))

    async def partitions(self, caller: Caller, system: SystemConfig, show_hidden: bool) -> list[status_pb2.Partition]:
        return scontrol_partitions.parse(await self._query(caller, system, scontrol_partitions.command()), show_hidden)

    async def reservations(self, caller: Caller, system: SystemConfig) -> list[status_pb2.Reservation]:
        return scontrol_reservations.parse(await self._query(caller, system, scontrol_reservations.command()))

    async def userinfo(self, caller: Caller, system: SystemConfig) -> status_pb2.GetUserInfoResponse:
        """The caller's POSIX identity (`id`) and Slurm accounts (`sacctmgr`), queried concurrently."""
        ids, accounts = await asyncio.gather(self._query(caller, system, posix_id.command()),
                                             self._query(caller, system, sacctmgr.command(caller.username)))
        user, group, groups = posix_id.parse(ids)
        return status_pb2.GetUserInfoResponse(user=user, group=group, groups=groups, accounts=sacctmgr.parse(accounts))

    # -- jobs: compute's commands ------------------------------------------------------------------

    async def submit(self, caller: Caller, system: SystemConfig, spec: JobSpec, marker: str) -> str:
        """The new job's id; `OutcomeUnknown` when sbatch may have submitted it without saying so."""
        stdin = spec.script.encode() if spec.script is not None else None
        try:
            result = await self.execute(caller, system, sbatch.command(spec, marker), stdin=stdin)
        except (RequestTimeout, SshConnectionFailed) as exc:
            raise OutcomeUnknown(exc) from None  # the SSH side gave up: sbatch may have reached the controller
        job_id = sbatch.parse(result.text()) if result.ok else None
        if job_id is not None:
            return job_id
        if result.exit_status == 124:  # remote `timeout` killed sbatch: the RPC may have gone through
            raise OutcomeUnknown(errors.error_for(result, "sbatch"))
        if errors.failed(result):
            if errors.unreachable(result) and errors.maybe_delivered(result):
                # slurmctld reset, hung up or went silent after the request left: the job may exist.
                raise OutcomeUnknown(errors.error_for(result, "sbatch"))
            raise errors.error_for(result, "sbatch")  # never run again here: a 503 is the caller's to retry
        raise InternalError(f"Unexpected sbatch output: {result.text().strip()!r}")

    async def queue(self, caller: Caller, system: SystemConfig, *, user: str | None = None,
                    job_id: str | None = None, job_ids: Sequence[str] = (),
                    all_states: bool = False) -> list[SchedulerJob]:
        """The jobs the controller holds of `user` (None: every user's), of those the one job `job_id` or
        the jobs `job_ids`, without their steps; empty when it holds none of them. Slurm filters
        (fixed-format squeue: the `--json` of 22.05 ignores filters)."""
        delimiter = delimited.new_delimiter()
        argv = squeue.command(delimiter, user=user, job_id=job_id, job_ids=job_ids, all_states=all_states)
        by_job = job_id is not None or bool(job_ids)
        return await parsed(squeue.parse, await self._squeue(caller, system, argv, by_job), delimiter)

    async def steps(self, caller: Caller, system: SystemConfig, *, user: str | None = None,
                    job_id: str | None = None) -> dict[str, list]:
        """The running steps of `user`'s jobs (None: everyone's) or of the job `job_id`, by step key
        (`squeue.attach_steps` gives them to their jobs)."""
        delimiter = delimited.new_delimiter()
        argv = squeue.steps_command(delimiter, user=user, job_id=job_id)
        return await parsed(squeue.parse_steps, await self._squeue(caller, system, argv, job_id is not None), delimiter)

    async def held_jobs(self, caller: Caller, system: SystemConfig, *, user: str | None = None,
                        job_id: str | None = None, all_states: bool = False) -> list[SchedulerJob]:
        """`queue()` with each job's running steps as tasks (a second squeue, run concurrently)."""
        jobs, steps = await asyncio.gather(
            self.queue(caller, system, user=user, job_id=job_id, all_states=all_states),
            self.steps(caller, system, user=user, job_id=job_id))
        return squeue.attach_steps(jobs, steps)

    async def _squeue(self, caller: Caller, system: SystemConfig, argv: list[str], by_job: bool) -> str:
        """squeue's output; `by_job`: the query names jobs, and one the controller no longer holds is no
        output (squeue exits 1 when it was the only one asked for)."""
        result = await self.execute(caller, system, argv, read=True)
        if by_job and result.exit_status == 1 and squeue.not_held(result.error_text()):
            return ""
        if not result.ok:
            raise errors.error_for(result, "squeue")
        return result.text()

    async def history(self, caller: Caller, system: SystemConfig, query: JobQuery | None, job_id: str | None,
                      into: compute_pb2.ListJobsResponse | None = None) -> sacct.JobsBuilder:
        """The query's jobs or the one job, steps included, from accounting (sacct), made as entries of
        `into` while sacct's output arrives (`sacct.HistoryStream`); the caller names the uids that
        cancelled them (`JobsBuilder.name_cancellers`). What could not be read as it came is read on a
        thread, in the heavy-work slot, when it is large."""
        delimiter = delimited.new_delimiter()
        stream = sacct.HistoryStream(delimiter, into)
        result = await self.run(caller, system, sacct.command(caller.username, delimiter, query, job_id), read=True,
                                stdout_sink=stream)
        if len(stream.backlog) < offload.LARGE_OUTPUT_BYTES:
            built = stream.finish(result.stdout)
        else:
            async with offload.heavy_work():
                built = await asyncio.to_thread(stream.finish, result.stdout)
        if built is not None:
            return built
        return await parsed(stream.rebuild, result.text())

    async def user_names(self, caller: Caller, system: SystemConfig, uids: set[int]) -> dict[int, str] | None:
        """uid → name of those of `uids` the system knows; None when the look-up itself failed."""
        result = await self.execute(caller, system, getent.command(uids), read=True)
        return getent.parse(result.text()) if result.exit_status in getent.ANSWERED else None

    async def job_metadata(self, caller: Caller, system: SystemConfig, job_id: str) -> compute_pb2.JobMetadata:
        """The job's script and stream paths (queried concurrently)."""
        script, show = await asyncio.gather(
            self.execute(caller, system, scontrol_batch_script.command(job_id), read=True),
            self.execute(caller, system, scontrol_job.command(job_id), read=True))
        for result in (script, show):  # the script's error first: Slurm gives it to the job's owner only → 403
            if errors.failed(result):
                raise errors.error_for(result, "scontrol")
        metadata = scontrol_job.parse(show.text(), job_id)
        metadata.script = scontrol_batch_script.parse(script.text())
        return metadata

    async def cancel(self, caller: Caller, system: SystemConfig, job_id: str) -> None:
        scancel.parse((await self.run(caller, system, scancel.command(job_id))).text())

    async def attach(self, caller: Caller, system: SystemConfig, job_id: str, command: str) -> None:
        """Runs `command` in the job, under the SSH command timeout (a command may run longer than a query)."""
        result = await self.run(caller, system, srun.command(job_id, command),
                                timeout=system.ssh.timeouts.command_execution)
        srun.parse(result.text())
