"""The health listener (services/common/health_listener.py), in process over mutual TLS with a
throw-away mesh PKI: its answer never waits for the service's event loop, and it still tells when
that loop is stuck rather than busy.

Each test blocks the event loop on purpose (a thread join run on the loop itself) while another
thread asks for health: an answer that needed the loop could only come after the join, which waits
for the answer, so the probe would end with DEADLINE_EXCEEDED instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import mesh_pki, mesh_tls
from services.common.config import Address
from services.common.health_listener import HEALTH_PORT_OFFSET, NOT_SERVING, SERVING, HealthListener

SERVICE = "status"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def listener_config(unit_config):
    port = _free_port()
    while port <= HEALTH_PORT_OFFSET:
        port = _free_port()
    services = {**unit_config.services, SERVICE: Address("127.0.0.1", port - HEALTH_PORT_OFFSET)}
    return dataclasses.replace(unit_config, services=services)


def _check(config, listener: HealthListener) -> int:
    """One health check as Envoy makes it (mesh certificate of the gateway); the status or the error code."""
    credentials = mesh_tls.channel_credentials(config, mesh_pki.GATEWAY)
    options = [("grpc.ssl_target_name_override", SERVICE)]
    with grpc.secure_channel(str(listener.address), credentials, options=options) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        except grpc.RpcError as exc:
            return exc.code()


def _with_loop_blocked(probe) -> list:
    """Runs `probe()` on a thread while the calling event loop is blocked until the probe returns."""
    answers = []
    thread = threading.Thread(target=lambda: answers.append(probe()))
    thread.start()
    thread.join()  # on the event loop: nothing else runs on it meanwhile
    return answers


def test_health_answers_while_the_event_loop_is_blocked(listener_config):
    async def scenario():
        listener = HealthListener(listener_config, SERVICE)
        listener.start()
        try:
            return _with_loop_blocked(lambda: _check(listener_config, listener))
        finally:
            listener.heartbeat.stop()
            await asyncio.to_thread(listener.stop, 0)

    assert asyncio.run(scenario()) == [SERVING]


def test_a_stuck_event_loop_is_reported_and_its_recovery_too(listener_config):
    async def scenario():
        listener = HealthListener(listener_config, SERVICE, stuck_seconds=0.5, heartbeat_seconds=0.1)
        listener.start()
        try:
            def until(status):
                seen = []
                for _ in range(200):  # the watch thread looks every 0.1 s
                    seen.append(_check(listener_config, listener))
                    if seen[-1] == status:
                        break
                    threading.Event().wait(0.05)
                return seen[-1]
            stuck = _with_loop_blocked(lambda: until(NOT_SERVING))
            await asyncio.sleep(0.1)  # the loop runs again: the heartbeat with it
            recovered = await asyncio.to_thread(until, SERVING)
            return stuck, recovered
        finally:
            listener.heartbeat.stop()
            await asyncio.to_thread(listener.stop, 0)

    assert asyncio.run(scenario()) == ([NOT_SERVING], SERVING)
