"""A service's client of the tasks service's internal TaskRecordsService (mutual TLS as that service,
`compute` by default; no user token: the tasks service admits the mesh's services by certificate).
Used by compute's asynchronous submission (create the task, record the job id), by the `JobFollower`
(resume, record progress) and by the storage service (a task per transfer job).
"""

from __future__ import annotations

import grpc

from firecrest_mesh.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from services.common import mesh_tls
from services.common.config import Config
from services.common.errors import ServiceUnavailable

TIMEOUT_SECONDS = 10


class TaskEnded(Exception):
    """The task is already in a final state (e.g. its owner cancelled it); it was not changed."""


class TaskRecords:
    def __init__(self, config: Config, component: str = "compute"):
        self._stub = tasks_pb2_grpc.TaskRecordsServiceStub(mesh_tls.aio_channel(config, component, "tasks"))

    async def create(self, owner: str, system: str, kind: str, message: str) -> tasks_pb2.Task:
        try:
            reply = await self._stub.CreateTask(tasks_pb2.CreateTaskRequest(
                owner=owner, system=system, kind=kind, message=message), timeout=TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            raise ServiceUnavailable(f"The tasks service is unavailable: {exc.details()}") from None
        return reply.task

    async def update(self, request: tasks_pb2.UpdateTaskRequest) -> tasks_pb2.Task:
        """The updated task; TaskEnded when it had ended; grpc.aio.AioRpcError otherwise."""
        try:
            return (await self._stub.UpdateTask(request, timeout=TIMEOUT_SECONDS)).task
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise TaskEnded(exc.details()) from None
            raise

    async def active(self, kind: str) -> list[tasks_pb2.Task]:
        return list((await self._stub.ListActiveTasks(tasks_pb2.ListActiveTasksRequest(kind=kind),
                                                      timeout=TIMEOUT_SECONDS)).tasks)
