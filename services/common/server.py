"""Start-up of a microservice: a grpc.aio server behind mutual TLS, with health checking, the
per-RPC authentication of peer and caller, request-id logging, per-RPC metrics and the one place
where typed `ApiError`s become gRPC statuses (with `x-http-code` for the gateway).

Every RPC but gRPC health passes two checks before its handler runs:
1. the peer: its mesh certificate (verified by TLS against the mesh CA) must name a component this
   server admits (services admit the gateway and each other; the certificator only the services);
2. the caller: the bearer token is verified here (`identity.authenticate`), never taken on trust
   from the gateway, except on the server's public methods (liveness) and on the certificator,
   which verifies the token carried in its request itself.

gRPC health is served twice: on the API port (the launcher's readiness checks) and, for the
gateway's health checks, on a port of its own answered by threads that never wait for the event
loop (`health_listener`).

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
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import glibc_malloc, identity, logs, memory_trace, mesh_pki, mesh_tls, metrics
from services.common.config import MAX_SERVICE_MESSAGE_BYTES, Config, load_config
from services.common.errors import ApiError, BadRequest, Forbidden
from services.common.health_listener import HealthListener
from services.common.rpc import HTTP_CODE_KEY, first_value
from services.common.token_verifier import TokenVerifier

log = logging.getLogger(__name__)


class Admission:
    """Who may call a server: the mesh identities admitted, and whether callers' tokens are
    verified here (all but the certificator), except on the public methods."""

    def __init__(self, peers: set[str], verifier: TokenVerifier | None, public_methods: frozenset[str],
                 internal_services: tuple[str, ...] = (), internal_peers: set[str] = frozenset()):
        self.peers = peers
        self.verifier = verifier
        self.public_methods = public_methods
        # Internal gRPC services (`/pkg.Service/` prefixes): only `internal_peers` (the mesh's
        # services, never the gateway) may call them, and no user token is involved.
        self.internal_services = internal_services
        self.internal_peers = internal_peers

    async def admit(self, context: grpc.aio.ServicerContext, method: str, metadata) -> None:
        """Raises Forbidden/Unauthenticated/BadRequest unless peer and caller are admitted; records the
        verified caller for the handler (`identity.caller()`). `metadata`: the RPC's, read once."""
        peers = mesh_tls.peer_names(context)
        identity.set_caller(None)
        if self.internal_services and method.startswith(self.internal_services):
            if not self.internal_peers & peers:
                raise Forbidden("Only the mesh's services may call this method")
            return
        if not self.peers & peers:
            raise Forbidden("This mesh component may not call this service")
        if self.verifier is None or method in self.public_methods:
            return
        caller = await identity.authenticate_async(metadata, self.verifier)
        identity.set_caller(caller)
        logs.username.set(caller.username)


def _enter_request(context: grpc.aio.ServicerContext):
    """Sets the log context of a new RPC; returns its metadata (gRPC builds it anew on every read)."""
    metadata = context.invocation_metadata() or ()
    logs.request_id.set(first_value(metadata, "x-request-id") or "-")
    logs.username.set("-")
    return metadata


def _status_code(exc: BaseException | None) -> str:
    """The gRPC status name an RPC ended with, for the metrics: OK, an ApiError's code, CANCELLED
    when the client went away, INTERNAL for a bug; an abort's code is the context's."""
    if exc is None:
        return "OK"
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    if isinstance(exc, ApiError):
        return exc.grpc_code.name
    return "INTERNAL"


def _record(method: str, context: grpc.aio.ServicerContext, start: float, exc: BaseException | None) -> None:
    code = _status_code(exc)
    if isinstance(exc, grpc.aio.AbortError):
        aborted = context.code()
        code = aborted.name if aborted is not None else "UNKNOWN"
    metrics.record_rpc(method, code, time.perf_counter() - start)


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    """Ends the RPC with the status of `exc`: an ApiError's own, or 500 for an unexpected bug, whose
    details stay in the log; the caller gets a generic message with the request id to quote."""
    if isinstance(exc, ApiError):
        log.info("%s failed: %s %s", method, exc.http_status, exc.message,
                 extra={"fields": {"method": method, "http_status": exc.http_status}})
        code, http_status, message = exc.grpc_code, exc.http_status, exc.message
    else:
        log.error("%s crashed", method, exc_info=exc)
        code, http_status = grpc.StatusCode.INTERNAL, 500
        message = f"Internal error (request id {logs.request_id.get()})"
    context.set_trailing_metadata(((HTTP_CODE_KEY, str(http_status)),))
    await context.abort(code, message)


class UndecodableRequest:
    """Stands for a request message that could not be parsed (a string field that is not UTF-8, e.g.
    `?path=%FF` through the gateway; nesting too deep). gRPC would answer INTERNAL before any handler
    ran; the handler wrapper answers 400 instead, after admission."""

    def __init__(self, reason: str):
        self.reason = reason

    def error(self) -> BadRequest:
        if "UTF-8" in self.reason:
            return BadRequest("Invalid request: a text parameter is not valid UTF-8")
        return BadRequest("Invalid request: the request could not be decoded")


def _tolerant(deserializer: Callable | None) -> Callable | None:
    if deserializer is None:
        return None

    def parse(data: bytes):
        try:
            return deserializer(data)
        except DecodeError as exc:
            return UndecodableRequest(str(exc))
    return parse


def _decoded(request):
    """`request`, or BadRequest when it could not be parsed (streams: checked item by item)."""
    if isinstance(request, UndecodableRequest):
        raise request.error()
    if hasattr(request, "__aiter__"):
        async def items():
            async for item in request:
                if isinstance(item, UndecodableRequest):
                    raise item.error()
                yield item
        return items()
    return request


class RpcHandling:
    """Around one RPC's handler: the request id, the admission, the metrics, and the one mapping of an
    exception to a status (`_abort`); cancellations and aborts pass through, counted. A class rather
    than an @asynccontextmanager: it runs on every RPC, and an async generator per call costs more."""

    __slots__ = ("method", "context", "admission", "start")

    def __init__(self, method: str, context: grpc.aio.ServicerContext, admission: Admission):
        self.method, self.context, self.admission = method, context, admission

    async def __aenter__(self) -> None:
        metadata = _enter_request(self.context)
        self.start = time.perf_counter()
        try:
            await self.admission.admit(self.context, self.method, metadata)
        except BaseException as exc:  # refused: counted and mapped like a failure of the handler
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        _record(self.method, self.context, self.start, exc)
        # An error of the handler becomes its status; cancellations and aborts pass through.
        if isinstance(exc, Exception) and not isinstance(exc, (asyncio.CancelledError, grpc.aio.AbortError)):
            await _abort(self.context, self.method, exc)
        return False


def _wrap_unary(behavior: Callable, method: str, admission: Admission) -> Callable:
    async def handler(request, context: grpc.aio.ServicerContext):
        start = time.perf_counter()
        async with RpcHandling(method, context, admission):
            response = await behavior(_decoded(request), context)
        logs.rpc_ok(method, (time.perf_counter() - start) * 1000)
        return response
    return handler


def _wrap_stream(behavior: Callable, method: str, admission: Admission) -> Callable:
    """Server-streaming handlers: the same admission and error mapping, yielding responses."""
    async def handler(request, context: grpc.aio.ServicerContext):
        async with RpcHandling(method, context, admission):
            async for item in behavior(_decoded(request), context):
                yield item
    return handler


def _admitted(handler: grpc.RpcMethodHandler, method: str, admission: Admission) -> grpc.RpcMethodHandler:
    """`handler` behind the admission checks, the request-id context, the ApiError → status mapping
    and the per-RPC metrics (`RpcHandling`), with a request parser that turns an undecodable message
    into a 400."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, method, admission),
            _tolerant(handler.request_deserializer), handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream(handler.unary_stream, method, admission),
            _tolerant(handler.request_deserializer), handler.response_serializer)
    if handler.stream_unary:
        async def stream_unary(it, ctx, _b=handler.stream_unary):
            return await _wrap_unary(_b, method, admission)(it, ctx)
        return grpc.stream_unary_rpc_method_handler(
            stream_unary, _tolerant(handler.request_deserializer), handler.response_serializer)
    if handler.stream_stream:
        async def stream_stream(it, ctx, _b=handler.stream_stream):
            async for item in _wrap_stream(_b, method, admission)(it, ctx):
                yield item
        return grpc.stream_stream_rpc_method_handler(
            stream_stream, _tolerant(handler.request_deserializer), handler.response_serializer)
    return handler


class _AdmittedGenericHandlers(grpc.GenericRpcHandler):
    """A generic handler (e.g. reflection's) whose methods pass `_admitted`; each method's wrapped
    handler is made once, for the handler the inner one resolved."""

    def __init__(self, inner: grpc.GenericRpcHandler, admission: Admission):
        self._inner, self._admission = inner, admission
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, handler_call_details):
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, _admitted(handler, method, self._admission))
        return cached[1]


class AdmittingServer:
    """The grpc.aio server as a service's `register()` sees it: every handler added through it is
    wrapped once, at registration, by `_admitted` (the admission checks and the rest of `RpcHandling`).
    Wrapping at registration rather than with a server interceptor spares each RPC the interceptor's
    coroutine and look-up. A refused admission counts with its code (UNAUTHENTICATED,
    PERMISSION_DENIED). gRPC health is registered on the server itself, open to any holder of a mesh
    certificate (the launcher's readiness checks); reflection is added through this wrapper and needs
    an admitted peer and a valid token like the API."""

    def __init__(self, server: grpc.aio.Server, admission: Admission):
        self._server, self._admission = server, admission

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict) -> None:
        self._server.add_registered_method_handlers(service_name, {
            name: _admitted(handler, f"/{service_name}/{name}", self._admission)
            for name, handler in method_handlers.items()})

    def add_generic_rpc_handlers(self, generic_rpc_handlers) -> None:
        self._server.add_generic_rpc_handlers(tuple(
            _AdmittedGenericHandlers(h, self._admission) for h in generic_rpc_handlers))

    def __getattr__(self, name):  # add_secure_port, start, stop, ...: the server's own
        return getattr(self._server, name)


Register = Callable[[AdmittingServer, Config], Iterable[Callable[[], Awaitable[None]]] | None]


def admission_for(name: str, config: Config, public_methods: frozenset[str],
                  internal_services: frozenset[str] = frozenset()) -> Admission:
    """The certificator admits only the services and checks tokens itself; every other service admits
    the gateway and the services and verifies each caller's token, except on its internal services
    (e.g. tasks' TaskRecordsService), which admit only the services and take no token."""
    services = {s for s in config.services if s != "certificator"}
    if name == "certificator":
        return Admission(services, None, frozenset())
    return Admission(services | {mesh_pki.GATEWAY}, TokenVerifier(config.identity), public_methods,
                     tuple(f"/{s}/" for s in internal_services), services)


async def serve(name: str, register: Register, config: Config | None = None,
                public_methods: frozenset[str] = frozenset(),
                internal_services: frozenset[str] = frozenset()) -> None:
    config = config or load_config()
    address = config.listen_address(name)  # this replica's (FIRECREST_MESH_REPLICA) when replicated
    metrics.start(config, name)  # GET /metrics on metrics.exporters.<name>, from a thread of its own
    # The gateway limits raw (HttpBody) bodies only; transcoded JSON bodies are limited here, to the
    # same size (plus framing). The gateway answers 413 when a request is refused for its size.
    max_request = config.gateway.max_request_body_bytes + 64 * 1024
    # gRPC refuses request metadata above 8 KiB at random (its soft limit) and always above 16 KiB:
    # the gateway forwards the whole URL (x-envoy-original-path; it admits URLs up to 16 KiB) beside
    # the token, so a long path query failed now and then as RESOURCE_EXHAUSTED (a 413 at the gateway).
    # The gateway's own header limit (96 KiB) is the bound that matters.
    max_metadata = 128 * 1024
    # A fixed 1 MiB receive window per stream (no BDP probing, which let it grow to many MiB): a
    # client-streaming upload that arrives faster than the service passes it on waits in the sender,
    # not in this process (storage's peak RSS during a 200 MiB streamed upload: 128 → 85 MiB).
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0),
                                      ("grpc.max_receive_message_length", max_request),
                                      ("grpc.max_metadata_size", max_metadata),
                                      ("grpc.absolute_max_metadata_size", max_metadata),
                                      ("grpc.max_send_message_length", MAX_SERVICE_MESSAGE_BYTES),
                                      ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1 << 20)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    admitting = AdmittingServer(server, admission_for(name, config, public_methods, internal_services))
    shutdown_hooks = list(register(admitting, config) or ())
    server.add_secure_port(str(address), mesh_tls.server_credentials(config, name))
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # The gateway's health checks go to a listener of their own that never waits for the event loop.
    health_listener = HealthListener(config, name)
    health_listener.start()
    log.info("%s listening on %s", name, address)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    health_listener.heartbeat.stop()
    await asyncio.gather(health_servicer.enter_graceful_shutdown(), asyncio.to_thread(health_listener.stop))
    await server.stop(grace=3)
    for hook in shutdown_hooks:
        await hook()


def run(name: str, register: Register, public_methods: frozenset[str] = frozenset(),
        internal_services: frozenset[str] = frozenset()) -> None:
    """Entry point of a service process: JSON logs, config, serve until SIGTERM. `public_methods`
    (full gRPC method names) need no token, only an admitted peer; `internal_services` (full gRPC
    service names) admit only the mesh's services and need no token."""
    glibc_malloc.limit_arenas()  # before any thread: threads share 2 glibc arenas (MALLOC_ARENA_MAX wins)
    glibc_malloc.start_trimming()  # free heap pages back to the system every 10 s
    logs.setup(name)
    memory_trace.start_if_asked()  # FIRECREST_MESH_TRACEMALLOC=<seconds>: off unless asked
    # A request hops between the event loop, an SSH worker thread and paramiko's transport thread;
    # with the default 5 ms GIL switch interval each hop can wait that long.
    sys.setswitchinterval(0.0005)
    asyncio.run(serve(name, register, public_methods=public_methods, internal_services=internal_services))
