"""gRPC servicer of firecrest_mesh.compute.v1.ComputeService (FirecREST v2 `/compute/...`).

Thin: reads the caller and the system, validates the request into a `JobSpec`/`JobQuery`
(`validation`), calls the scheduler and shapes the answer (201/204 via `x-http-code`). Slurm specifics
live in `slurm/`.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from firecrest_mesh.compute.v1 import compute_pb2, compute_pb2_grpc
from services.common.config import Config
from services.common.errors import BadRequest
from services.common.identity import caller
from services.common.ssh.pool import SshPool
from services.common.rpc import metadata_value, require_system, send_http_code
from services.compute.scheduler import Scheduler, require_job_id
from services.compute.slurm.cli import SlurmCli
from services.compute.validation import job_query, job_spec

IDEMPOTENCY_KEY = "idempotency-key"
MARKER_PREFIX = "firecrest-mesh:"


class ComputeService(compute_pb2_grpc.ComputeServiceServicer):
    def __init__(self, config: Config, scheduler: Scheduler):
        self._config = config
        self._scheduler = scheduler
        # Striped locks: concurrent calls with the same idempotency key run one after the other.
        self._idempotency_locks = [asyncio.Lock() for _ in range(64)]

    async def SubmitJob(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        spec = job_spec(request.job, system)
        key = metadata_value(context, IDEMPOTENCY_KEY)
        if key:
            # Same user + same key → same marker: a retry finds the job instead of submitting again.
            marker = MARKER_PREFIX + hashlib.sha256(f"{who.username}\0{key}".encode()).hexdigest()[:32]
            async with self._idempotency_locks[int(marker[-8:], 16) % len(self._idempotency_locks)]:
                job_id = await self._scheduler.find_by_marker(who, system, marker)
                if job_id is None:
                    job_id = await self._scheduler.submit(who, system, spec, marker)
        else:
            job_id = await self._scheduler.submit(who, system, spec, MARKER_PREFIX + uuid.uuid4().hex)
        await send_http_code(context, 201)
        return compute_pb2.SubmitJobResponse(job_id=job_id)

    async def ListJobs(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        jobs = await self._scheduler.list_jobs(who, system, job_query(request))
        return compute_pb2.ListJobsResponse(jobs=jobs)

    async def GetJob(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        jobs = await self._scheduler.get_job(who, system, require_job_id(request.job_id))
        return compute_pb2.GetJobResponse(jobs=jobs)

    async def GetJobMetadata(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        metadata = await self._scheduler.job_metadata(who, system, require_job_id(request.job_id))
        return compute_pb2.GetJobMetadataResponse(jobs=[metadata])

    async def CancelJob(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        await self._scheduler.cancel(who, system, require_job_id(request.job_id))
        await send_http_code(context, 204)
        return compute_pb2.CancelJobResponse()

    async def AttachToJob(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        job_id = require_job_id(request.job_id)
        if not request.command.strip():
            raise BadRequest("Field required: command")
        if "\x00" in request.command:
            raise BadRequest("Invalid command: it must not contain NUL bytes.")
        await self._scheduler.attach(who, system, job_id, request.command)
        await send_http_code(context, 204)
        return compute_pb2.AttachToJobResponse()


def register(server, config: Config):
    pool = SshPool.for_service(config, "compute")
    compute_pb2_grpc.add_ComputeServiceServicer_to_server(ComputeService(config, SlurmCli(pool)), server)
    return (pool.close,)
