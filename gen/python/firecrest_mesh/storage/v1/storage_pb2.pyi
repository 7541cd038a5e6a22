from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransferJobLogs(_message.Message):
    __slots__ = ("output_log", "error_log")
    OUTPUT_LOG_FIELD_NUMBER: _ClassVar[int]
    ERROR_LOG_FIELD_NUMBER: _ClassVar[int]
    output_log: str
    error_log: str
    def __init__(self, output_log: _Optional[str] = ..., error_log: _Optional[str] = ...) -> None: ...

class TransferJob(_message.Message):
    __slots__ = ("job_id", "system", "working_directory", "logs", "task_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    system: str
    working_directory: str
    logs: TransferJobLogs
    task_id: str
    def __init__(self, job_id: _Optional[str] = ..., system: _Optional[str] = ..., working_directory: _Optional[str] = ..., logs: _Optional[_Union[TransferJobLogs, _Mapping]] = ..., task_id: _Optional[str] = ...) -> None: ...

class UploadTransferDirectives(_message.Message):
    __slots__ = ("transfer_method", "file_size")
    TRANSFER_METHOD_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    transfer_method: str
    file_size: int
    def __init__(self, transfer_method: _Optional[str] = ..., file_size: _Optional[int] = ...) -> None: ...

class CreateUploadRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "transfer_directives", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    transfer_directives: UploadTransferDirectives
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., transfer_directives: _Optional[_Union[UploadTransferDirectives, _Mapping]] = ..., account: _Optional[str] = ...) -> None: ...

class UploadTransferDirectivesResponse(_message.Message):
    __slots__ = ("transfer_method", "parts_upload_urls", "complete_upload_url", "max_part_size")
    TRANSFER_METHOD_FIELD_NUMBER: _ClassVar[int]
    PARTS_UPLOAD_URLS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_UPLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    MAX_PART_SIZE_FIELD_NUMBER: _ClassVar[int]
    transfer_method: str
    parts_upload_urls: _containers.RepeatedScalarFieldContainer[str]
    complete_upload_url: str
    max_part_size: int
    def __init__(self, transfer_method: _Optional[str] = ..., parts_upload_urls: _Optional[_Iterable[str]] = ..., complete_upload_url: _Optional[str] = ..., max_part_size: _Optional[int] = ...) -> None: ...

class CreateUploadResponse(_message.Message):
    __slots__ = ("transfer_job", "transfer_directives")
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    transfer_job: TransferJob
    transfer_directives: UploadTransferDirectivesResponse
    def __init__(self, transfer_job: _Optional[_Union[TransferJob, _Mapping]] = ..., transfer_directives: _Optional[_Union[UploadTransferDirectivesResponse, _Mapping]] = ...) -> None: ...

class DownloadTransferDirectives(_message.Message):
    __slots__ = ("transfer_method", "file_size")
    TRANSFER_METHOD_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    transfer_method: str
    file_size: int
    def __init__(self, transfer_method: _Optional[str] = ..., file_size: _Optional[int] = ...) -> None: ...

class CreateDownloadRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "transfer_directives", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    transfer_directives: DownloadTransferDirectives
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., transfer_directives: _Optional[_Union[DownloadTransferDirectives, _Mapping]] = ..., account: _Optional[str] = ...) -> None: ...

class DownloadTransferDirectivesResponse(_message.Message):
    __slots__ = ("transfer_method", "download_url")
    TRANSFER_METHOD_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    transfer_method: str
    download_url: str
    def __init__(self, transfer_method: _Optional[str] = ..., download_url: _Optional[str] = ...) -> None: ...

class CreateDownloadResponse(_message.Message):
    __slots__ = ("transfer_job", "transfer_directives")
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    transfer_job: TransferJob
    transfer_directives: DownloadTransferDirectivesResponse
    def __init__(self, transfer_job: _Optional[_Union[TransferJob, _Mapping]] = ..., transfer_directives: _Optional[_Union[DownloadTransferDirectivesResponse, _Mapping]] = ...) -> None: ...

class MoveFilesRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "target_path", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    target_path: str
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., account: _Optional[str] = ...) -> None: ...

class MoveFilesResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: TransferJob
    def __init__(self, transfer_job: _Optional[_Union[TransferJob, _Mapping]] = ...) -> None: ...

class CopyFilesRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "target_path", "dereference", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    target_path: str
    dereference: bool
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., dereference: _Optional[bool] = ..., account: _Optional[str] = ...) -> None: ...

class CopyFilesResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: TransferJob
    def __init__(self, transfer_job: _Optional[_Union[TransferJob, _Mapping]] = ...) -> None: ...

class DeleteFilesRequest(_message.Message):
    __slots__ = ("system_name", "path", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., account: _Optional[str] = ...) -> None: ...

class DeleteFilesResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: TransferJob
    def __init__(self, transfer_job: _Optional[_Union[TransferJob, _Mapping]] = ...) -> None: ...

class CompressFilesRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "target_path", "match_pattern", "dereference", "compression", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    MATCH_PATTERN_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    target_path: str
    match_pattern: str
    dereference: bool
    compression: str
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., match_pattern: _Optional[str] = ..., dereference: _Optional[bool] = ..., compression: _Optional[str] = ..., account: _Optional[str] = ...) -> None: ...

class CompressFilesResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: TransferJob
    def __init__(self, transfer_job: _Optional[_Union[TransferJob, _Mapping]] = ...) -> None: ...

class ExtractArchiveRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "target_path", "compression", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    target_path: str
    compression: str
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., compression: _Optional[str] = ..., account: _Optional[str] = ...) -> None: ...

class ExtractArchiveResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: TransferJob
    def __init__(self, transfer_job: _Optional[_Union[TransferJob, _Mapping]] = ...) -> None: ...

class UploadStreamRequest(_message.Message):
    __slots__ = ("system_name", "path", "offset", "sha256", "size", "data")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    offset: int
    sha256: str
    size: int
    data: _httpbody_pb2.HttpBody
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., data: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class UploadStreamResponse(_message.Message):
    __slots__ = ("path", "size", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class DownloadStreamRequest(_message.Message):
    __slots__ = ("system_name", "path", "offset")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    offset: int
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class GetUploadStreamStatusRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class GetUploadStreamStatusResponse(_message.Message):
    __slots__ = ("partial_path", "partial_size", "in_progress")
    PARTIAL_PATH_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    partial_path: str
    partial_size: int
    in_progress: bool
    def __init__(self, partial_path: _Optional[str] = ..., partial_size: _Optional[int] = ..., in_progress: _Optional[bool] = ...) -> None: ...
