"""What a task is, independent of where it is stored: states, ids, page tokens, filters, and how an
update changes a task. Pure logic; the servicer (`service.py`) and both stores use it.

A task moves QUEUED → RUNNING → one of the final states SUCCEEDED, FAILED, CANCELLED (QUEUED may
also end directly); a final state never changes again, and stamps `expire_time` (end + retention).
Ids are 18 random bytes, URL-safe base64 (24 characters): unguessable, and safe in a URL path.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from firecrest_mesh.tasks.v1 import tasks_pb2
from services.common.errors import ApiError, BadRequest, NotFound

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINAL_STATES = frozenset((SUCCEEDED, FAILED, CANCELLED))
ID_RE = re.compile(r"^[A-Za-z0-9_-]{24}$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class TaskFinal(ApiError):
    """An update of a task that already ended (FAILED_PRECONDITION for the internal caller)."""

    http_status = 400

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return grpc.StatusCode.FAILED_PRECONDITION


def task_not_found() -> NotFound:
    return NotFound("Task not found")


def new_id() -> str:
    return secrets.token_urlsafe(18)


def now_us() -> int:
    return time.time_ns() // 1000


def timestamp(us: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(us)
    return ts


def created_us(task: tasks_pb2.Task) -> int:
    return task.create_time.ToMicroseconds()


def expire_us(task: tasks_pb2.Task) -> int | None:
    return task.expire_time.ToMicroseconds() if task.HasField("expire_time") else None


def is_final(task: tasks_pb2.Task) -> bool:
    return task.state in FINAL_STATES


def check_id(task_id: str) -> str:
    """A well-formed id, else NotFound (a malformed id names no task; nothing to tell apart)."""
    if not ID_RE.match(task_id or ""):
        raise task_not_found()
    return task_id


def check_state(state: str, field: str = "state") -> str:
    if state not in STATES:
        raise BadRequest(f"Invalid {field}: expected one of {', '.join(STATES)}")
    return state


def new_task(owner: str, system: str, kind: str, message: str, at_us: int | None = None) -> tasks_pb2.Task:
    if not KIND_RE.match(kind):
        raise BadRequest("Invalid kind: expected lower-case letters, digits, '-' or '_'")
    at = at_us if at_us is not None else now_us()
    return tasks_pb2.Task(id=new_id(), owner=owner, system=system, kind=kind, state=QUEUED, message=message,
                          result=tasks_pb2.TaskResult(), create_time=timestamp(at), update_time=timestamp(at))


def updated(task: tasks_pb2.Task, request: tasks_pb2.UpdateTaskRequest, retention_seconds: int,
            at_us: int | None = None) -> tasks_pb2.Task:
    """`task` with the request's set fields applied; TaskFinal when it already ended. A change to a
    final state stamps `expire_time`."""
    if is_final(task):
        raise TaskFinal(f"Task {task.id} already ended ({task.state})")
    new = tasks_pb2.Task()
    new.CopyFrom(task)
    if request.HasField("state"):
        new.state = check_state(request.state)
    if request.HasField("message"):
        new.message = request.message
    if request.HasField("result"):
        new.result.CopyFrom(request.result)
    if request.HasField("error"):
        new.error.CopyFrom(request.error)
    if new == task:
        return task
    at = at_us if at_us is not None else now_us()
    new.update_time.CopyFrom(timestamp(at))
    if is_final(new):
        new.expire_time.CopyFrom(timestamp(at + retention_seconds * 1_000_000))
    return new


@dataclass(frozen=True)
class TaskFilter:
    """ListTasks' filters; empty strings match everything."""

    state: str = ""
    kind: str = ""
    system: str = ""

    def matches(self, task: tasks_pb2.Task) -> bool:
        return ((not self.state or task.state == self.state) and (not self.kind or task.kind == self.kind)
                and (not self.system or task.system == self.system))


@dataclass(frozen=True)
class PageCursor:
    """Where a page ends: the last task's creation time and id (the list's order: newest first, then
    id descending)."""

    created_us: int
    task_id: str

    def before(self, created: int, task_id: str) -> bool:
        """Whether a task created at `created` with `task_id` comes after this cursor in the list."""
        return created < self.created_us or (created == self.created_us and task_id < self.task_id)

    def token(self) -> str:
        return base64.urlsafe_b64encode(f"{self.created_us}.{self.task_id}".encode()).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> "PageCursor | None":
        """The cursor of a page token; None for an empty token; BadRequest for anything else."""
        if not token:
            return None
        try:
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            created, task_id = text.split(".", 1)
            if not created.isdigit() or not ID_RE.match(task_id):
                raise ValueError
            return cls(int(created), task_id)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("Invalid pageToken: pass the nextPageToken of the previous page") from None


def page_size(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= requested <= MAX_PAGE_SIZE:
        raise BadRequest(f"Invalid pageSize: expected 1 to {MAX_PAGE_SIZE}")
    return requested


def list_filter(request: tasks_pb2.ListTasksRequest) -> TaskFilter:
    if request.state:
        check_state(request.state)
    return TaskFilter(request.state, request.kind, request.system)
