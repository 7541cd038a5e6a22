from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorResponse(_message.Message):
    __slots__ = ("error_type", "message", "caused_by", "data", "user")
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CAUSED_BY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    error_type: str
    message: str
    caused_by: _struct_pb2.Value
    data: _struct_pb2.Value
    user: str
    def __init__(self, error_type: _Optional[str] = ..., message: _Optional[str] = ..., caused_by: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., user: _Optional[str] = ...) -> None: ...
