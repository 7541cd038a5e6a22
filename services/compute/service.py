"""gRPC servicer of firecrest_mesh.compute.v1.ComputeService (FirecREST v2 `/compute/...`).

Thin: reads the caller and the system, validates the request into a `JobSpec`/`JobQuery`, calls the
scheduler and shapes the answer (201/204 via `x-http-code`). Slurm specifics live in `slurm/`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

from google.protobuf import json_format

from firecrest_mesh.compute.v1 import compute_pb2, compute_pb2_grpc
from services.common.config import Config
from services.common.errors import BadRequest
from services.common.identity import caller
from services.common.server import send_http_code
from services.common.ssh.pool import SshPool
from services.common.systems import require_system
from services.compute.scheduler import (DEFAULT_TIME_WINDOW, ENV_NAME_RE, TIME_WINDOWS, JobQuery, JobSpec,
                                        Scheduler, require_absolute, require_job_id)
from services.compute.slurm.cli import SlurmCli

IDEMPOTENCY_KEY = "idempotency-key"
MARKER_PREFIX = "firecrest-mesh:"
DEFAULT_ENV = (("F7T_version", "v2.0.0"),)  # FirecREST v2's default when no env is given


def _optional(message, field: str) -> str | None:
    """An optional string field; absent or empty → None."""
    return (getattr(message, field) or None) if message.HasField(field) else None


def _env_value(value) -> str:
    """A JSON value as the text an environment variable holds (JSON numbers are doubles: 3.0 → "3")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value)


def _environment(job: compute_pb2.JobDescription) -> tuple[tuple[str, str], ...]:
    """`env` (or `environment`) as (name, value) pairs: an object or a list of `NAME=value`."""
    value = job.env if job.HasField("env") else job.environment if job.HasField("environment") else None
    if value is None or value.WhichOneof("kind") in (None, "null_value"):
        return DEFAULT_ENV
    data = json_format.MessageToDict(value)
    if isinstance(data, dict):
        pairs = [(str(k), _env_value(v)) for k, v in data.items()]
    elif isinstance(data, list):
        pairs = []
        for item in data:
            if not isinstance(item, str) or "=" not in item:
                raise BadRequest(f"Invalid environment entry {item!r}: expected NAME=value")
            pairs.append(tuple(item.split("=", 1)))
    else:
        raise BadRequest("Invalid environment: expected an object or a list of NAME=value strings")
    for name, val in pairs:
        if not ENV_NAME_RE.match(name):
            raise BadRequest(f"Invalid environment variable name {name!r}")
        if "\x00" in val:
            raise BadRequest(f"Invalid value of environment variable {name}")
    return tuple(pairs)


def job_spec(job: compute_pb2.JobDescription) -> JobSpec:
    """Validates a submission: working directory, script xor script path, absolute paths, env."""
    wd = job.working_directory or job.current_working_directory
    if not wd:
        raise BadRequest("Field required: job.workingDirectory")
    script, script_path = _optional(job, "script"), _optional(job, "script_path")
    if job.HasField("script") and job.script == "" and not script_path:
        raise BadRequest("The job script is empty")
    if (script is None) == (script_path is None):
        raise BadRequest("Exactly one of job.script and job.scriptPath is required")
    paths = {f: _optional(job, f) for f in ("standard_input", "standard_output", "standard_error")}
    for field, path in (("working directory", wd), ("script path", script_path),
                        *((f.replace("_", " "), p) for f, p in paths.items())):
        if path is not None:
            require_absolute(path, field)
    return JobSpec(working_directory=wd, env=_environment(job), script=script, script_path=script_path,
                   name=_optional(job, "name"), account=_optional(job, "account"),
                   partition=_optional(job, "partition"), reservation=_optional(job, "reservation"),
                   constraints=_optional(job, "constraints"), **paths)


def job_query(request: compute_pb2.ListJobsRequest) -> JobQuery:
    window = request.time_window or DEFAULT_TIME_WINDOW
    if window not in TIME_WINDOWS:
        raise BadRequest(f"Invalid time_window {window!r}: expected one of {', '.join(TIME_WINDOWS)}")
    return JobQuery(allusers=request.allusers, account=request.account, name=request.name, time_window=window)


def _metadata(context, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v
    return None


class ComputeService(compute_pb2_grpc.ComputeServiceServicer):
    def __init__(self, config: Config, scheduler: Scheduler):
        self._config = config
        self._scheduler = scheduler
        # Striped locks: concurrent calls with the same idempotency key run one after the other.
        self._idempotency_locks = [asyncio.Lock() for _ in range(64)]

    async def SubmitJob(self, request, context):
        who, system = caller(context), require_system(self._config, request.system_name)
        spec = job_spec(request.job)
        key = _metadata(context, IDEMPOTENCY_KEY)
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
        await self._scheduler.attach(who, system, job_id, request.command)
        await send_http_code(context, 204)
        return compute_pb2.AttachToJobResponse()


def register(server, config: Config):
    pool = SshPool.for_service(config, "compute")
    compute_pb2_grpc.add_ComputeServiceServicer_to_server(ComputeService(config, SlurmCli(pool)), server)
    return (pool.close,)
