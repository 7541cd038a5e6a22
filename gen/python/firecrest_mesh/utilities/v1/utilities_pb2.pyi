from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class File(_message.Message):
    __slots__ = ("name", "type", "link_target", "user", "group", "permissions", "last_modified", "size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    link_target: str
    user: str
    group: str
    permissions: str
    last_modified: str
    size: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., link_target: _Optional[str] = ..., user: _Optional[str] = ..., group: _Optional[str] = ..., permissions: _Optional[str] = ..., last_modified: _Optional[str] = ..., size: _Optional[str] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("system_name", "path", "show_hidden", "numeric_uid", "recursive", "dereference")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHOW_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_UID_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    show_hidden: bool
    numeric_uid: bool
    recursive: bool
    dereference: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., show_hidden: _Optional[bool] = ..., numeric_uid: _Optional[bool] = ..., recursive: _Optional[bool] = ..., dereference: _Optional[bool] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: _containers.RepeatedCompositeFieldContainer[File]
    def __init__(self, output: _Optional[_Iterable[_Union[File, _Mapping]]] = ...) -> None: ...

class FileContent(_message.Message):
    __slots__ = ("content", "content_type", "start_position", "end_position")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    START_POSITION_FIELD_NUMBER: _ClassVar[int]
    END_POSITION_FIELD_NUMBER: _ClassVar[int]
    content: str
    content_type: str
    start_position: int
    end_position: int
    def __init__(self, content: _Optional[str] = ..., content_type: _Optional[str] = ..., start_position: _Optional[int] = ..., end_position: _Optional[int] = ...) -> None: ...

class HeadFileRequest(_message.Message):
    __slots__ = ("system_name", "path", "num_bytes", "num_lines", "skip_trailing")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_LINES_FIELD_NUMBER: _ClassVar[int]
    SKIP_TRAILING_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    num_bytes: int
    num_lines: int
    skip_trailing: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., num_bytes: _Optional[int] = ..., num_lines: _Optional[int] = ..., skip_trailing: _Optional[bool] = ...) -> None: ...

class HeadFileResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileContent
    def __init__(self, output: _Optional[_Union[FileContent, _Mapping]] = ...) -> None: ...

class TailFileRequest(_message.Message):
    __slots__ = ("system_name", "path", "num_bytes", "num_lines", "skip_heading")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    NUM_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_LINES_FIELD_NUMBER: _ClassVar[int]
    SKIP_HEADING_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    num_bytes: int
    num_lines: int
    skip_heading: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., num_bytes: _Optional[int] = ..., num_lines: _Optional[int] = ..., skip_heading: _Optional[bool] = ...) -> None: ...

class TailFileResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileContent
    def __init__(self, output: _Optional[_Union[FileContent, _Mapping]] = ...) -> None: ...

class ViewFileRequest(_message.Message):
    __slots__ = ("system_name", "path", "size", "offset")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    size: int
    offset: int
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ViewFileResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: str
    def __init__(self, output: _Optional[str] = ...) -> None: ...

class ChecksumFileRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class FileChecksum(_message.Message):
    __slots__ = ("algorithm", "checksum")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    checksum: str
    def __init__(self, algorithm: _Optional[str] = ..., checksum: _Optional[str] = ...) -> None: ...

class ChecksumFileResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileChecksum
    def __init__(self, output: _Optional[_Union[FileChecksum, _Mapping]] = ...) -> None: ...

class GetFileTypeRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class GetFileTypeResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: str
    def __init__(self, output: _Optional[str] = ...) -> None: ...

class StatFileRequest(_message.Message):
    __slots__ = ("system_name", "path", "dereference")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    dereference: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., dereference: _Optional[bool] = ...) -> None: ...

class FileStat(_message.Message):
    __slots__ = ("mode", "ino", "dev", "nlink", "uid", "gid", "size", "atime", "ctime", "mtime")
    MODE_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    DEV_FIELD_NUMBER: _ClassVar[int]
    NLINK_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ATIME_FIELD_NUMBER: _ClassVar[int]
    CTIME_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    mode: int
    ino: float
    dev: float
    nlink: int
    uid: int
    gid: int
    size: float
    atime: float
    ctime: float
    mtime: float
    def __init__(self, mode: _Optional[int] = ..., ino: _Optional[float] = ..., dev: _Optional[float] = ..., nlink: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., size: _Optional[float] = ..., atime: _Optional[float] = ..., ctime: _Optional[float] = ..., mtime: _Optional[float] = ...) -> None: ...

class StatFileResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileStat
    def __init__(self, output: _Optional[_Union[FileStat, _Mapping]] = ...) -> None: ...

class ChangeModeRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "mode")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    mode: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class ChangeModeResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class ChangeOwnershipRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "owner", "group")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    owner: str
    group: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., owner: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class ChangeOwnershipResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class MakeDirectoryRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "parent")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    parent: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., parent: _Optional[bool] = ...) -> None: ...

class MakeDirectoryResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class CreateSymlinkRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "link_path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    LINK_PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    link_path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., link_path: _Optional[str] = ...) -> None: ...

class CreateSymlinkResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class DeleteFileRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DeleteFileResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DownloadFileRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class UploadFileRequest(_message.Message):
    __slots__ = ("system_name", "path", "file")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    file: _httpbody_pb2.HttpBody
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., file: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class UploadFileResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CompressFilesRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "target_path", "match_pattern", "dereference", "compression")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    MATCH_PATTERN_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    target_path: str
    match_pattern: str
    dereference: bool
    compression: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., match_pattern: _Optional[str] = ..., dereference: _Optional[bool] = ..., compression: _Optional[str] = ...) -> None: ...

class CompressFilesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExtractArchiveRequest(_message.Message):
    __slots__ = ("system_name", "path", "source_path", "target_path", "compression")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    source_path: str
    target_path: str
    compression: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., compression: _Optional[str] = ...) -> None: ...

class ExtractArchiveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
