"""gRPC servicer of firecrest_mesh.storage.v1.StorageService (FirecREST v2 `/filesystem/.../transfer`).

Thin: each handler validates the request's paths (`services.common.paths`, as the utilities service
does), prepares the S3 staging when the route needs it (`staging`, in the helper process of
`staging_worker`), builds the
job's script with its module in `jobs/`, submits it as the caller on the transfer partition through
compute's `SlurmScheduler` (sbatch over SSH; an ambiguous submission is resolved by its marker), and
answers v2's `transferJob` with 201 (200 for rm). Each job gets a task of kind "transfer" (tasks
service), which compute's `JobFollower` follows to the job's end. Direct streaming (no job, no S3)
is `streaming`'s: the handlers only validate and hand over.
"""

from __future__ import annotations

import logging
import stat as stat_mode
import uuid

import grpc

from firecrest_mesh.storage.v1 import storage_pb2, storage_pb2_grpc
from firecrest_mesh.tasks.v1 import tasks_pb2
from services.common import paths
from services.common.config import Config, SystemConfig
from services.common.errors import ApiError, BadRequest
from services.common.identity import Caller
from services.common.rpc import caller_and_system, created
from services.common.ssh.pool import SshPool
from services.common.ssh.runner import CommandRunner
from services.common.ssh.stream import RemoteStreams
from services.compute.follower import TRANSFER_KIND, marker_for_task
from services.compute.scheduler import Scheduler
from services.compute.submissions import MARKER_PREFIX
from services.compute.task_records import TaskEnded, TaskRecords
from services.slurm.client import SlurmClient
from services.slurm.scheduler import SlurmScheduler
from services.storage import settings as storage_settings
from services.storage import streaming
from services.storage.jobs import file_ops, header, s3_egress, s3_ingress
from services.storage.staging_worker import StagingWorker
from services.storage.sweeper import Sweeper
from services.utilities import errors as file_errors
from services.utilities.commands import stat

log = logging.getLogger(__name__)
S3_METHOD = "s3"
METHOD_NOT_AVAILABLE = "Requested transfer method is not available."
# How long an upload job waits for its object (FirecREST v2: 1440 probes a minute apart), at most as
# long as the URLs live: an abandoned upload does not hold a transfer slot for days.
UPLOAD_WAIT_SECONDS = 24 * 3600


def _method(directives) -> None:
    """Only S3 staging is offered (FirecREST v2's 400 otherwise)."""
    if directives.transfer_method != S3_METHOD:
        raise BadRequest(METHOD_NOT_AVAILABLE)


class StorageService(storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, config: Config, runner: CommandRunner, scheduler: Scheduler, staging: StagingWorker,
                 tasks: TaskRecords | None, streams: RemoteStreams | None = None):
        self._config = config
        self._streams = streams
        self._runner = runner
        self._scheduler = scheduler
        self._staging = staging
        self._tasks = tasks

    def _source(self, request) -> tuple[Caller, SystemConfig, str]:
        """The caller, the system and the validated source (`path`, else `source_path`)."""
        who, system = caller_and_system(self._config, request.system_name)
        return who, system, paths.validate(system, paths.first_path(request.path, request.source_path))

    async def _submit(self, who: Caller, system: SystemConfig, name: str, account: str,
                      body: str) -> storage_pb2.TransferJob:
        """Submits the transfer job `body` as `who` with a task that follows it (compute's
        `JobFollower` records the job's end in it); its `transferJob`."""
        job = header.plan(system, who)
        spec = header.job_spec(system, job, name, account, body)
        task = await self._create_task(who, system, name)
        marker = marker_for_task(task.id) if task else MARKER_PREFIX + uuid.uuid4().hex
        try:
            job_id = await self._scheduler.submit(who, system, spec, marker)
        except ApiError as exc:
            await self._record(task, state="FAILED", message="The scheduler refused the job",
                               error=tasks_pb2.TaskError(code=exc.http_status, message=exc.message))
            raise
        await self._record(task, message=f"Submitted as job {job_id}",
                           result=tasks_pb2.TaskResult(job_id=job_id, scheduler_state="PENDING"))
        answer = job.answer(job_id)
        answer.task_id = task.id if task else ""
        return answer

    async def _create_task(self, who: Caller, system: SystemConfig, name: str) -> tasks_pb2.Task | None:
        """A QUEUED "transfer" task of `who`; None when the tasks service is unavailable (the transfer
        goes ahead without one: FirecREST v2's clients do not know tasks)."""
        if self._tasks is None:
            return None
        try:
            return await self._tasks.create(who.username, system.name, TRANSFER_KIND, f"{name} job submitted")
        except ApiError as exc:
            log.warning("transfer without a task: %s", exc.message)
            return None

    async def _record(self, task: tasks_pb2.Task | None, **fields) -> None:
        """Records `fields` in the transfer's task, if it has one; the transfer stands either way."""
        if task is None:
            return
        try:
            await self._tasks.update(tasks_pb2.UpdateTaskRequest(task_id=task.id, **fields))
        except (TaskEnded, grpc.aio.AioRpcError) as exc:
            log.warning("transfer task not updated: %s", type(exc).__name__,
                        extra={"fields": {"task": task.id}})

    async def CreateUpload(self, request, context):
        who, system, target = self._source(request)
        _method(request.transfer_directives)
        header.directives(system, request.account)  # a bad account fails before anything is staged
        staged = await self._staging.start_upload(who.username, target, request.transfer_directives.file_size)
        body = s3_ingress.script(target, staged.head_url, staged.get_url,
                                 min(UPLOAD_WAIT_SECONDS, self._staging.settings.url_lifetime_seconds))
        job = await self._submit(who, system, "IngressFileTransfer", request.account, body)
        await created(context)
        return storage_pb2.CreateUploadResponse(
            transfer_job=job,
            transfer_directives=storage_pb2.UploadTransferDirectivesResponse(
                transfer_method=S3_METHOD, parts_upload_urls=staged.part_urls,
                complete_upload_url=staged.complete_url, max_part_size=self._staging.settings.max_part_size))

    async def CreateDownload(self, request, context):
        who, system, source = self._source(request)
        _method(request.transfer_directives)
        header.directives(system, request.account)
        result = await self._runner.run(who, system, stat.command(source, dereference=True),
                                        timeout=system.ssh.timeouts.command_execution,
                                        error_for=file_errors.error_for)
        info = stat.parse(result.stdout)
        if stat_mode.S_ISDIR(info.mode):
            raise BadRequest(f"The provided path ({source}) is a directory: only files can be downloaded.")
        size = int(info.size)
        staged = await self._staging.start_download(who.username, source, size)
        body = s3_egress.script(source, self._staging.settings.max_part_size, staged.part_urls,
                                staged.complete_url)
        job = await self._submit(who, system, "OutgressFileTransfer", request.account, body)
        await created(context)
        return storage_pb2.CreateDownloadResponse(
            transfer_job=job,
            transfer_directives=storage_pb2.DownloadTransferDirectivesResponse(
                transfer_method=S3_METHOD, download_url=staged.download_url))

    async def UploadStream(self, request_iterator, context):
        first = await anext(request_iterator, None)
        if first is None:
            raise BadRequest("The upload stream carried no message.")
        who, system = caller_and_system(self._config, first.system_name)
        target = paths.validate(system, first.path)
        digest = await streaming.upload(self._streams, who, system, target, first, request_iterator)
        await created(context)
        return storage_pb2.UploadStreamResponse(path=target, size=digest.size, sha256=digest.sha256)

    async def DownloadStream(self, request, context):
        who, system = caller_and_system(self._config, request.system_name)
        path = paths.validate(system, request.path)
        async for message in streaming.download(self._streams, who, system, path, request.offset, context):
            yield message

    async def GetUploadStreamStatus(self, request, context):
        who, system = caller_and_system(self._config, request.system_name)
        found = await streaming.status(self._streams, who, system, paths.validate(system, request.path))
        return storage_pb2.GetUploadStreamStatusResponse(partial_path=found.path, partial_size=found.size,
                                                         in_progress=found.in_progress)

    async def MoveFiles(self, request, context):
        who, system, source = self._source(request)
        target = paths.validate(system, request.target_path, name="targetPath")
        job = await self._submit(who, system, "MoveFiles", request.account, file_ops.move(source, target))
        await created(context)
        return storage_pb2.MoveFilesResponse(transfer_job=job)

    async def CopyFiles(self, request, context):
        who, system, source = self._source(request)
        target = paths.validate(system, request.target_path, name="targetPath")
        job = await self._submit(who, system, "CopyFiles", request.account,
                                 file_ops.copy(source, target, request.dereference))
        await created(context)
        return storage_pb2.CopyFilesResponse(transfer_job=job)

    async def DeleteFiles(self, request, context):
        who, system = caller_and_system(self._config, request.system_name)
        path = paths.validate(system, request.path)
        job = await self._submit(who, system, "DeleteFiles", request.account, file_ops.delete(path))
        return storage_pb2.DeleteFilesResponse(transfer_job=job)  # 200, as FirecREST v2

    async def CompressFiles(self, request, context):
        who, system, source = self._source(request)
        target = paths.validate(system, request.target_path, name="targetPath")
        body = file_ops.compress(source, target, request.match_pattern, request.dereference, request.compression)
        job = await self._submit(who, system, "CompressFiles", request.account, body)
        await created(context)
        return storage_pb2.CompressFilesResponse(transfer_job=job)

    async def ExtractArchive(self, request, context):
        who, system, source = self._source(request)
        target = paths.validate(system, request.target_path, name="targetPath")
        body = file_ops.extract(source, target, request.compression)
        job = await self._submit(who, system, "CompressFiles", request.account, body)  # v2's name (sic)
        await created(context)
        return storage_pb2.ExtractArchiveResponse(transfer_job=job)


def register(server, config: Config):
    s3 = storage_settings.load(config)
    staging = StagingWorker(s3, storage_settings.read_credentials(s3))
    pool = SshPool.for_service(config, "storage")
    runner = CommandRunner(pool)
    streams = RemoteStreams(pool, streaming.IDLE_SECONDS)
    storage_pb2_grpc.add_StorageServiceServicer_to_server(
        StorageService(config, runner, SlurmScheduler(SlurmClient(runner)), staging,
                       TaskRecords(config, "storage") if "tasks" in config.services else None, streams), server)
    sweeper = Sweeper(staging, config.path)
    sweeper.start()

    async def shutdown():
        await sweeper.stop()
        streams.close()
        staging.close()
        await pool.close()
    return (shutdown,)
