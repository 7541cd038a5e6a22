"""gRPC servicer of firecrest_mesh.compute.v1.ComputeService (FirecREST v2 `/compute/...`).

Thin: takes the verified caller and the named system (`rpc`), validates the request (`validation`),
calls the scheduler (`Submissions` for submits, for the `Idempotency-Key`) and shapes the answer
(201/204 through `rpc.created`/`rpc.no_content`). Slurm lives in `services.slurm`.
"""

from __future__ import annotations

from firecrest_mesh.compute.v1 import compute_pb2, compute_pb2_grpc
from services.common import rpc
from services.common.config import Config
from services.common.ssh.pool import SshPool
from services.common.ssh.runner import CommandRunner
from services.compute import validation
from services.compute.follower import JOB_KIND, JobFollower
from services.compute.scheduler import Scheduler
from services.compute.submissions import Submissions
from services.compute.task_records import TaskRecords
from services.slurm.client import SlurmClient
from services.slurm.scheduler import SlurmScheduler

IDEMPOTENCY_KEY = "idempotency-key"


class ComputeService(compute_pb2_grpc.ComputeServiceServicer):
    def __init__(self, config: Config, scheduler: Scheduler, records: TaskRecords | None = None,
                 follower: JobFollower | None = None):
        self._config = config
        self._scheduler = scheduler
        self._submissions = Submissions(scheduler)
        self._records = records
        self._follower = follower

    async def SubmitJob(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        spec = validation.job_spec(request.job, system)
        job_id = await self._submissions.submit(who, system, spec, rpc.metadata_value(context, IDEMPOTENCY_KEY))
        await rpc.created(context)
        return compute_pb2.SubmitJobResponse(job_id=job_id)

    async def SubmitJobAsync(self, request, context):
        """202 + the task at once; the job is submitted in the background and followed (`follower`)."""
        who, system = rpc.caller_and_system(self._config, request.system_name)
        spec = validation.job_spec(request.job, system)
        task = await self._records.create(who.username, system.name, JOB_KIND, "Submitting the job")
        self._follower.submit(who, system, spec, task)
        await context.send_initial_metadata(((rpc.HTTP_CODE_KEY, "202"), ("location", f"/tasks/{task.id}")))
        return task

    async def ListJobs(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        return await self._scheduler.list_jobs(who, system, validation.job_query(request))

    async def GetJob(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        jobs = await self._scheduler.get_job(who, system, validation.require_job_id(request.job_id))
        return compute_pb2.GetJobResponse(jobs=jobs)

    async def GetJobMetadata(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        metadata = await self._scheduler.job_metadata(who, system, validation.require_job_id(request.job_id))
        return compute_pb2.GetJobMetadataResponse(jobs=[metadata])

    async def CancelJob(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        await self._scheduler.cancel(who, system, validation.require_job_id(request.job_id))
        await rpc.no_content(context)
        return compute_pb2.CancelJobResponse()

    async def AttachToJob(self, request, context):
        who, system = rpc.caller_and_system(self._config, request.system_name)
        job_id = validation.require_job_id(request.job_id)
        await self._scheduler.attach(who, system, job_id, validation.attach_command(request.command))
        await rpc.no_content(context)
        return compute_pb2.AttachToJobResponse()


def register(server, config: Config):
    pool = SshPool.for_service(config, "compute")
    slurm = SlurmClient(CommandRunner(pool))
    scheduler = SlurmScheduler(slurm)
    records = TaskRecords(config)
    follower = JobFollower(config, scheduler, slurm, records)
    follower.start()
    compute_pb2_grpc.add_ComputeServiceServicer_to_server(ComputeService(config, scheduler, records, follower),
                                                          server)
    return (follower.stop, pool.close)
