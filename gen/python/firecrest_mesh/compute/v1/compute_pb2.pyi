from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from firecrest_mesh.tasks.v1 import tasks_pb2 as _tasks_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    __slots__ = ("system_name", "job")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    job: JobDescription
    def __init__(self, system_name: _Optional[str] = ..., job: _Optional[_Union[JobDescription, _Mapping]] = ...) -> None: ...

class JobDescription(_message.Message):
    __slots__ = ("name", "account", "reservation", "partition", "working_directory", "current_working_directory", "standard_input", "standard_output", "standard_error", "env", "environment", "constraints", "script", "script_path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    STANDARD_INPUT_FIELD_NUMBER: _ClassVar[int]
    STANDARD_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STANDARD_ERROR_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    account: str
    reservation: str
    partition: str
    working_directory: str
    current_working_directory: str
    standard_input: str
    standard_output: str
    standard_error: str
    env: _struct_pb2.Value
    environment: _struct_pb2.Value
    constraints: str
    script: str
    script_path: str
    def __init__(self, name: _Optional[str] = ..., account: _Optional[str] = ..., reservation: _Optional[str] = ..., partition: _Optional[str] = ..., working_directory: _Optional[str] = ..., current_working_directory: _Optional[str] = ..., standard_input: _Optional[str] = ..., standard_output: _Optional[str] = ..., standard_error: _Optional[str] = ..., env: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., environment: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., constraints: _Optional[str] = ..., script: _Optional[str] = ..., script_path: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class SubmitJobAsyncRequest(_message.Message):
    __slots__ = ("system_name", "job")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    job: JobDescription
    def __init__(self, system_name: _Optional[str] = ..., job: _Optional[_Union[JobDescription, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("system_name", "allusers", "account", "name", "time_window")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    ALLUSERS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_WINDOW_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    allusers: bool
    account: str
    name: str
    time_window: str
    def __init__(self, system_name: _Optional[str] = ..., allusers: _Optional[bool] = ..., account: _Optional[str] = ..., name: _Optional[str] = ..., time_window: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("system_name", "job_id", "allusers", "account", "name", "time_window")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ALLUSERS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_WINDOW_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    job_id: str
    allusers: bool
    account: str
    name: str
    time_window: str
    def __init__(self, system_name: _Optional[str] = ..., job_id: _Optional[str] = ..., allusers: _Optional[bool] = ..., account: _Optional[str] = ..., name: _Optional[str] = ..., time_window: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class GetJobMetadataRequest(_message.Message):
    __slots__ = ("system_name", "job_id")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    job_id: str
    def __init__(self, system_name: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetJobMetadataResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobMetadata]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobMetadata, _Mapping]]] = ...) -> None: ...

class JobMetadata(_message.Message):
    __slots__ = ("job_id", "script", "standard_input", "standard_output", "standard_error")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    STANDARD_INPUT_FIELD_NUMBER: _ClassVar[int]
    STANDARD_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STANDARD_ERROR_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    script: str
    standard_input: str
    standard_output: str
    standard_error: str
    def __init__(self, job_id: _Optional[str] = ..., script: _Optional[str] = ..., standard_input: _Optional[str] = ..., standard_output: _Optional[str] = ..., standard_error: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("system_name", "job_id")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    job_id: str
    def __init__(self, system_name: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AttachToJobRequest(_message.Message):
    __slots__ = ("system_name", "job_id", "command")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    job_id: str
    command: str
    def __init__(self, system_name: _Optional[str] = ..., job_id: _Optional[str] = ..., command: _Optional[str] = ...) -> None: ...

class AttachToJobResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "name", "status", "tasks", "time", "account", "allocation_nodes", "cluster", "group", "nodes", "partition", "kill_request_user", "user", "working_directory", "priority")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_NODES_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    KILL_REQUEST_USER_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    status: JobStatus
    tasks: _containers.RepeatedCompositeFieldContainer[JobTask]
    time: JobTime
    account: _struct_pb2.Value
    allocation_nodes: int
    cluster: str
    group: _struct_pb2.Value
    nodes: str
    partition: str
    kill_request_user: _struct_pb2.Value
    user: str
    working_directory: str
    priority: _struct_pb2.Value
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[JobStatus, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[JobTask, _Mapping]]] = ..., time: _Optional[_Union[JobTime, _Mapping]] = ..., account: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., allocation_nodes: _Optional[int] = ..., cluster: _Optional[str] = ..., group: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., nodes: _Optional[str] = ..., partition: _Optional[str] = ..., kill_request_user: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., user: _Optional[str] = ..., working_directory: _Optional[str] = ..., priority: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("state", "state_reason", "exit_code", "interrupt_signal")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    INTERRUPT_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    state: str
    state_reason: _struct_pb2.Value
    exit_code: _struct_pb2.Value
    interrupt_signal: _struct_pb2.Value
    def __init__(self, state: _Optional[str] = ..., state_reason: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., exit_code: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., interrupt_signal: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class JobTask(_message.Message):
    __slots__ = ("id", "name", "status", "time")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    status: JobStatus
    time: JobTime
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[JobStatus, _Mapping]] = ..., time: _Optional[_Union[JobTime, _Mapping]] = ...) -> None: ...

class JobTime(_message.Message):
    __slots__ = ("elapsed", "start", "end", "suspended", "limit")
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    elapsed: _struct_pb2.Value
    start: _struct_pb2.Value
    end: _struct_pb2.Value
    suspended: _struct_pb2.Value
    limit: _struct_pb2.Value
    def __init__(self, elapsed: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., start: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., end: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., suspended: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., limit: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...
