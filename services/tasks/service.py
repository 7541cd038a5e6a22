"""gRPC servicers of the tasks service: `TasksService` (the owner's get, list, watch, delete; REST
`/tasks...`) and `TaskRecordsService` (the mesh's services create and update tasks; admitted by mesh
certificate only, see `services.common.server.Admission`).

Every public RPC answers 404 "Task not found" for a task that is not the caller's, exactly as for one
that does not exist. Deleting an unfinished job task cancels its job through the compute service as
the caller (`JobCanceller`). Storage is a `TaskStore` (SQLite or Redis); retention is stamped by
`model.updated` and enforced by reads and by the purge loop started in `register`.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from firecrest_mesh.compute.v1 import compute_pb2, compute_pb2_grpc
from firecrest_mesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from services.common import logs, mesh_tls
from services.common.config import Config
from services.common.errors import ApiError, BadRequest, ServiceUnavailable
from services.common.identity import Caller, caller
from services.common.rpc import HTTP_CODE_KEY, no_content
from services.tasks import model
from services.tasks.store import TaskStore, open_store

log = logging.getLogger(__name__)
PURGE_INTERVAL_SECONDS = 60
CANCEL_TIMEOUT_SECONDS = 60


class JobCanceller:
    """Cancels a task's scheduler job through the compute service, as the task's owner (their
    verified token goes along; compute verifies it and runs `scancel` as them)."""

    def __init__(self, config: Config):
        self._stub = compute_pb2_grpc.ComputeServiceStub(mesh_tls.aio_channel(config, "tasks", "compute"))

    async def cancel(self, who: Caller, system: str, job_id: str) -> None:
        metadata = (("authorization", f"Bearer {who.access_token}"), ("x-request-id", logs.request_id.get()))
        try:
            await self._stub.CancelJob(compute_pb2.CancelJobRequest(system_name=system, job_id=job_id),
                                       metadata=metadata, timeout=CANCEL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            status = dict(exc.trailing_metadata() or ()).get(HTTP_CODE_KEY)
            if exc.code() == grpc.StatusCode.UNAVAILABLE and status is None:
                raise ServiceUnavailable("The compute service is unavailable; the task was not cancelled") from None
            raise ApiError(exc.details() or "Cancelling the job failed",
                           http_status=int(status) if status and status.isdigit() else 500) from None


class TasksService(tasks_pb2_grpc.TasksServiceServicer):
    def __init__(self, config: Config, store: TaskStore, ready: asyncio.Future, jobs: JobCanceller):
        self._config = config
        self._store = store
        self._ready = ready
        self._jobs = jobs

    async def _owned(self, task_id: str) -> tuple[Caller, tasks_pb2.Task]:
        """The verified caller and their task `task_id`; 404 for anyone else's."""
        who = caller()
        model.check_id(task_id)
        await self._ready
        task = await self._store.get(task_id, model.now_us())
        if task is None or task.owner != who.username:
            raise model.task_not_found()
        return who, task

    async def GetTask(self, request, context):
        _, task = await self._owned(request.task_id)
        return task

    async def ListTasks(self, request, context):
        who = caller()
        size = model.page_size(request.page_size)
        where = model.list_filter(request)
        after = model.PageCursor.parse(request.page_token)
        await self._ready
        tasks = await self._store.list_owned(who.username, where, size + 1, after, model.now_us())
        next_token = ""
        if len(tasks) > size:
            tasks = tasks[:size]
            last = tasks[-1]
            next_token = model.PageCursor(model.created_us(last), last.id).token()
        return tasks_pb2.ListTasksResponse(tasks=tasks, next_page_token=next_token)

    async def WatchTask(self, request, context):
        """The task now, then after each change, until a final state (or its deletion)."""
        who, task = await self._owned(request.task_id)
        yield task
        poll = self._config.tasks.watch_poll_seconds
        while not model.is_final(task):
            await self._store.changes.wait(task.id, poll)
            current = await self._store.get(task.id, model.now_us())
            if current is None:
                return  # deleted (or expired) meanwhile
            if current != task:
                task = current
                yield task

    async def DeleteTask(self, request, context):
        who, task = await self._owned(request.task_id)
        if model.is_final(task):
            await self._store.delete(task.id)
        else:
            if task.result.job_id:
                await self._jobs.cancel(who, task.system, task.result.job_id)
            cancel = tasks_pb2.UpdateTaskRequest(state=model.CANCELLED, message="Cancelled by its owner")

            def cancelled(current: tasks_pb2.Task) -> tasks_pb2.Task:
                if model.is_final(current):
                    return current  # it ended meanwhile: that end stands
                return model.updated(current, cancel, self._config.tasks.retention_seconds)
            await self._store.update(task.id, cancelled, model.now_us())
        await no_content(context)
        return tasks_pb2.DeleteTaskResponse()


class TaskRecordsService(tasks_pb2_grpc.TaskRecordsServiceServicer):
    """Internal writes; the server admits only the mesh's services here (no user token)."""

    def __init__(self, config: Config, store: TaskStore, ready: asyncio.Future):
        self._config = config
        self._store = store
        self._ready = ready

    async def CreateTask(self, request, context):
        if not request.owner or not request.system:
            raise BadRequest("owner and system are required")
        task = model.new_task(request.owner, request.system, request.kind, request.message)
        await self._ready
        await self._store.create(task)
        log.info("task created", extra={"fields": {"task": task.id, "owner": task.owner, "kind": task.kind}})
        return tasks_pb2.CreateTaskResponse(task=task)

    async def UpdateTask(self, request, context):
        model.check_id(request.task_id)
        if request.HasField("state"):
            model.check_state(request.state)
        await self._ready
        retention = self._config.tasks.retention_seconds
        task = await self._store.update(request.task_id, lambda t: model.updated(t, request, retention),
                                        model.now_us())
        if task is None:
            raise model.task_not_found()
        return tasks_pb2.UpdateTaskResponse(task=task)

    async def ListActiveTasks(self, request, context):
        await self._ready
        return tasks_pb2.ListActiveTasksResponse(tasks=await self._store.list_active(request.kind))


async def _purge_forever(store: TaskStore, ready: asyncio.Future) -> None:
    await ready
    while True:
        try:
            purged = await store.purge(model.now_us())
            if purged:
                log.info("expired tasks deleted", extra={"fields": {"count": purged}})
        except Exception:
            log.exception("purging expired tasks failed")
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def register(server, config: Config):
    store = open_store(config.tasks)
    loop = asyncio.get_running_loop()
    ready = loop.create_task(store.start())
    purger = loop.create_task(_purge_forever(store, ready))
    tasks_pb2_grpc.add_TasksServiceServicer_to_server(
        TasksService(config, store, ready, JobCanceller(config)), server)
    tasks_pb2_grpc.add_TaskRecordsServiceServicer_to_server(TaskRecordsService(config, store, ready), server)

    async def shutdown() -> None:
        purger.cancel()
        await store.close()
    return (shutdown,)
