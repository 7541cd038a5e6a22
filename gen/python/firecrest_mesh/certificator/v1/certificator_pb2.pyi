import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignCertificateRequest(_message.Message):
    __slots__ = ("access_token", "username", "public_key", "force_command", "source_addresses", "validity_seconds")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    FORCE_COMMAND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    username: str
    public_key: str
    force_command: str
    source_addresses: _containers.RepeatedScalarFieldContainer[str]
    validity_seconds: int
    def __init__(self, access_token: _Optional[str] = ..., username: _Optional[str] = ..., public_key: _Optional[str] = ..., force_command: _Optional[str] = ..., source_addresses: _Optional[_Iterable[str]] = ..., validity_seconds: _Optional[int] = ...) -> None: ...

class SignCertificateResponse(_message.Message):
    __slots__ = ("certificate", "valid_after", "valid_before", "key_id", "serial")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    VALID_AFTER_FIELD_NUMBER: _ClassVar[int]
    VALID_BEFORE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    certificate: str
    valid_after: _timestamp_pb2.Timestamp
    valid_before: _timestamp_pb2.Timestamp
    key_id: str
    serial: int
    def __init__(self, certificate: _Optional[str] = ..., valid_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., serial: _Optional[int] = ...) -> None: ...
