"""gRPC health of a service served on its own thread and port, so that the answer never queues
behind request work on the event loop.

The API server (grpc.aio) runs every handler on one event loop: a health check sent to it waits for
whatever the loop is doing (a large parse, a burst of requests), and Envoy, seeing its check time
out, took a busy service for a dead one (issue 13). `HealthListener` answers from a small blocking
gRPC server with its own threads on `health_address(service address)`, which is where the gateway
checks (gateway/envoy.yaml.j2: `health_check_config.port_value`).

It tells the truth about the loop rather than about its own thread: a heartbeat task stamps the time
on the loop every HEARTBEAT_SECONDS, and the answer is NOT_SERVING when the loop has not run it for
STUCK_SECONDS (far longer than any request's CPU work: the loop is stuck, not busy), SERVING again
once it has. Shutdown answers NOT_SERVING. Same mutual TLS as the API port; the launcher's readiness
checks keep using the API port's health (grpc.aio's servicer, which `server.serve` also runs).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common import mesh_tls
from services.common.config import Address, Config

log = logging.getLogger(__name__)

HEALTH_PORT_OFFSET = 1000  # the health port of a service listening on port P is P + HEALTH_PORT_OFFSET
HEARTBEAT_SECONDS = 1.0
STUCK_SECONDS = 30.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health_address(address: Address) -> Address:
    """Where the service listening on `address` answers health checks."""
    return Address(address.host, address.port + HEALTH_PORT_OFFSET)


class LoopHeartbeat:
    """When the event loop last ran a short task of ours (monotonic seconds; thread-safe to read)."""

    def __init__(self, period: float = HEARTBEAT_SECONDS):
        self.period = period
        self.last = time.monotonic()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(self.period)

    def stuck_for(self) -> float:
        return time.monotonic() - self.last

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class HealthListener:
    """The blocking health server of one service and the thread that keeps its status true."""

    def __init__(self, config: Config, name: str, stuck_seconds: float = STUCK_SECONDS,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS):
        if stuck_seconds <= 2 * heartbeat_seconds:
            raise ValueError("stuck_seconds must be well above the heartbeat period")
        self.name = name
        self.address = health_address(config.listen_address(name))
        self.heartbeat = LoopHeartbeat(heartbeat_seconds)
        self._stuck_seconds = stuck_seconds
        self._servicer = health.HealthServicer()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
                                   options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, self._server)
        self._server.add_secure_port(str(self.address), mesh_tls.server_credentials(config, name))
        self._stopping = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="health-watch", daemon=True)
        self._status = SERVING

    def start(self) -> None:
        """Starts the heartbeat (call on the event loop), the server and the watch thread."""
        self.heartbeat.start()
        self._servicer.set("", SERVING)
        self._server.start()
        self._watch.start()
        log.info("%s answers health checks on %s", self.name, self.address)

    def _watch_loop(self) -> None:
        while not self._stopping.wait(self.heartbeat.period):
            stuck = self.heartbeat.stuck_for()
            status = NOT_SERVING if stuck >= self._stuck_seconds else SERVING
            if status != self._status:
                self._status = status
                self._servicer.set("", status)
                log.warning("%s health: %s (event loop last ran %.1f s ago)", self.name,
                            health_pb2.HealthCheckResponse.ServingStatus.Name(status), stuck)

    def stop(self, grace: float = 1.0) -> None:
        """Answers NOT_SERVING, then stops (blocking: run it off the event loop, after stopping the
        heartbeat on the loop)."""
        self._stopping.set()
        self._servicer.enter_graceful_shutdown()
        self._server.stop(grace).wait()
