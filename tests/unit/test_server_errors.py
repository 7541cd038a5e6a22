"""The server's error path, in process: a real grpc.aio server with the mesh's admission over mutual
TLS (a throw-away mesh PKI), a servicer that fails on purpose, a real client channel.

- An unexpected exception answers 500 with a generic message naming the request id; the details stay
  in the log, never in the answer.
- A request message that is not valid protobuf UTF-8 is a 400, not gRPC's INTERNAL.
- A peer whose mesh identity is not admitted is refused before the handler runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import grpc
import pytest

from firecrest_mesh.status.v1 import status_pb2, status_pb2_grpc
from services.common import mesh_pki, mesh_tls
from services.common.server import Admission, AdmittingServer


class FailingStatus(status_pb2_grpc.StatusServiceServicer):
    async def ListSystems(self, request, context):
        raise RuntimeError("secret detail: /etc/shadow at 0xdeadbeef")

    async def ListNodes(self, request, context):
        return status_pb2.ListNodesResponse()


@pytest.fixture(scope="module")
def pki_config(unit_config):
    return unit_config  # the repository's configuration with a throw-away mesh PKI (tests/unit/conftest.py)


async def _serve_and_call(config, admitted: set[str], as_component: str, call):
    server = grpc.aio.server()
    status_pb2_grpc.add_StatusServiceServicer_to_server(
        FailingStatus(), AdmittingServer(server, Admission(admitted, None, frozenset())))
    port = server.add_secure_port("127.0.0.1:0", mesh_tls.server_credentials(config, "status"))
    await server.start()
    try:
        target = dataclasses.replace(config, services={**config.services, "status": f"127.0.0.1:{port}"})
        async with mesh_tls.aio_channel(target, as_component, "status") as channel:
            return await call(channel)
    finally:
        await server.stop(0)


def test_unexpected_error_is_generic_with_the_request_id(pki_config, caplog):
    async def call(channel):
        stub = status_pb2_grpc.StatusServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListSystems(status_pb2.ListSystemsRequest(), metadata=[("x-request-id", "rid-1234")])
        return err.value

    with caplog.at_level(logging.ERROR):
        error = asyncio.run(_serve_and_call(pki_config, {"envoy"}, "envoy", call))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "Internal error (request id rid-1234)"
    assert ("x-http-code", "500") in tuple(error.trailing_metadata())
    assert "secret detail" in caplog.text, "the details stay in the log"


def test_request_that_is_not_utf8_is_a_400(pki_config):
    async def call(channel):
        # ListNodesRequest.system_name (field 1, a string) carrying the byte 0xFF.
        method = channel.unary_unary("/firecrest_mesh.status.v1.StatusService/ListNodes",
                                     request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await method(b"\x0a\x01\xff")
        ok = await method(status_pb2.ListNodesRequest(system_name="local").SerializeToString())
        return err.value, ok

    error, ok = asyncio.run(_serve_and_call(pki_config, {"envoy"}, "envoy", call))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in error.details()
    assert ok == b""  # control: a well-formed request reaches the handler


def test_a_peer_that_is_not_admitted_is_refused(pki_config):
    async def call(channel):
        stub = status_pb2_grpc.StatusServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListNodes(status_pb2.ListNodesRequest(system_name="local"))
        return err.value

    error = asyncio.run(_serve_and_call(pki_config, {"envoy"}, mesh_pki.LAUNCHER, call))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
