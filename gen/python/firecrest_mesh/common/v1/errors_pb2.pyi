from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorResponse(_message.Message):
    __slots__ = ("error_type", "message", "caused_by", "user")
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CAUSED_BY_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    error_type: str
    message: str
    caused_by: _containers.RepeatedScalarFieldContainer[str]
    user: str
    def __init__(self, error_type: _Optional[str] = ..., message: _Optional[str] = ..., caused_by: _Optional[_Iterable[str]] = ..., user: _Optional[str] = ...) -> None: ...
