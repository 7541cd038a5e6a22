"""Start-up of a microservice: a grpc.aio server with health checking, request-id logging and the one
place where typed `ApiError`s become gRPC statuses (with `x-http-code` for the gateway).

Each service's `__main__` calls `run(name, register)`; `register(server, config)` adds its servicers
and returns an optional list of async start-up/shutdown hooks (e.g. the SSH pool's janitor).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from typing import Awaitable, Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import logs
from services.common.config import Config, load_config
from services.common.errors import ApiError
from services.common.identity import USERNAME_HEADER

log = logging.getLogger(__name__)
HTTP_CODE_KEY = "x-http-code"


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v
    return None


def _enter_request(context: grpc.aio.ServicerContext) -> None:
    logs.request_id.set(_metadata_value(context, "x-request-id") or "-")
    logs.username.set(_metadata_value(context, USERNAME_HEADER) or "-")


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    """Ends the RPC with the status of `exc`: an ApiError's own, or 500 for an unexpected bug
    (with FirecREST v2's repr-style message)."""
    if isinstance(exc, ApiError):
        log.info("%s failed: %s %s", method, exc.http_status, exc.message,
                 extra={"fields": {"method": method, "http_status": exc.http_status}})
        code, http_status, message = exc.grpc_code, exc.http_status, exc.message
    else:
        log.error("%s crashed", method, exc_info=exc)
        code, http_status, message = grpc.StatusCode.INTERNAL, 500, repr(exc.args)
    context.set_trailing_metadata(((HTTP_CODE_KEY, str(http_status)),))
    await context.abort(code, message)


def _wrap_unary(behavior: Callable, method: str) -> Callable:
    async def handler(request, context: grpc.aio.ServicerContext):
        _enter_request(context)
        start = time.perf_counter()
        try:
            response = await behavior(request, context)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)
        log.info("%s ok", method, extra={"fields": {
            "method": method, "ms": round((time.perf_counter() - start) * 1000, 2)}})
        return response
    return handler


def _wrap_stream(behavior: Callable, method: str) -> Callable:
    """Server-streaming handlers: the same error mapping, yielding responses."""
    async def handler(request, context: grpc.aio.ServicerContext):
        _enter_request(context)
        try:
            async for item in behavior(request, context):
                yield item
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as exc:
            await _abort(context, method, exc)
    return handler


class ApiErrorInterceptor(grpc.aio.ServerInterceptor):
    """Applies the request-id context and the ApiError → status mapping to every RPC."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(("/grpc.health", "/grpc.reflection")):
            return handler
        method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, method),
                handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            async def stream_unary(it, ctx, _b=handler.stream_unary):
                return await _wrap_unary(_b, method)(it, ctx)
            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer)
        return handler


async def send_http_code(context: grpc.aio.ServicerContext, code: int) -> None:
    """Asks the gateway to answer a successful call with `code` (201, 204) instead of 200."""
    await context.send_initial_metadata(((HTTP_CODE_KEY, str(code)),))


Register = Callable[[grpc.aio.Server, Config], Iterable[Callable[[], Awaitable[None]]] | None]


async def serve(name: str, register: Register, config: Config | None = None) -> None:
    config = config or load_config()
    address = config.services[name]
    # The gateway limits raw (HttpBody) bodies only; transcoded JSON bodies are limited here, to the
    # same size (plus framing). The gateway answers 413 when a request is refused for its size.
    max_request = config.gateway.max_request_body_bytes + 64 * 1024
    server = grpc.aio.server(interceptors=[ApiErrorInterceptor()],
                             options=[("grpc.so_reuseport", 0),
                                      ("grpc.max_receive_message_length", max_request),
                                      ("grpc.max_send_message_length", 64 * 1024 * 1024)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    shutdown_hooks = list(register(server, config) or ())
    server.add_insecure_port(str(address))
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("%s listening on %s", name, address)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace=3)
    for hook in shutdown_hooks:
        await hook()


def run(name: str, register: Register) -> None:
    """Entry point of a service process: JSON logs, config, serve until SIGTERM."""
    logs.setup(name)
    # A request hops between the event loop, an SSH worker thread and paramiko's transport thread;
    # with the default 5 ms GIL switch interval each hop can wait that long.
    sys.setswitchinterval(0.0005)
    asyncio.run(serve(name, register))
