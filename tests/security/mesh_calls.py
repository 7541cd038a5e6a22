"""Direct gRPC calls to the mesh's services, for the security tests: every RPC of the public API
with an empty request and chosen metadata, answered by a status code."""

from __future__ import annotations

import grpc
from google.protobuf import message_factory

from firecrest_mesh.compute.v1 import compute_pb2
from firecrest_mesh.status.v1 import status_pb2
from firecrest_mesh.utilities.v1 import utilities_pb2

API_FILES = {"status": status_pb2, "compute": compute_pb2, "utilities": utilities_pb2}


def api_methods(service: str):
    """(full method path, request class, client_streaming, server_streaming) of every RPC of the
    public API service `service`."""
    file = API_FILES[service].DESCRIPTOR
    for svc in file.services_by_name.values():
        for m in svc.methods:
            yield (f"/{svc.full_name}/{m.name}", message_factory.GetMessageClass(m.input_type),
                   m.client_streaming, m.server_streaming)


def call(channel: grpc.Channel, method: str, request_class, client_streaming: bool,
         server_streaming: bool, metadata) -> grpc.StatusCode:
    """Calls `method` with an empty request; the status code it ends with (OK when it succeeded)."""
    kwargs = {"request_serializer": request_class.SerializeToString, "response_deserializer": lambda b: b}
    request = request_class()
    try:
        if client_streaming and server_streaming:
            list(channel.stream_stream(method, **kwargs)(iter([request]), metadata=metadata, timeout=20))
        elif client_streaming:
            channel.stream_unary(method, **kwargs)(iter([request]), metadata=metadata, timeout=20)
        elif server_streaming:
            list(channel.unary_stream(method, **kwargs)(request, metadata=metadata, timeout=20))
        else:
            channel.unary_unary(method, **kwargs)(request, metadata=metadata, timeout=20)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK
