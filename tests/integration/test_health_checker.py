"""The health checker, in process, against a system it cannot reach and then can: the real identity
provider, certificator, SSH pool and sshd, with a copy of the configuration whose system listens on a
closed port. No shared process is stopped: the port is opened later by a forwarder to the real sshd.

What /status/systems shows (`system_view`): every probe unhealthy with the connection error as its
message, then, once the port answers, every probe healthy again and the scheduler's version known.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket

from services.common.ssh.pool import SshPool
from services.status.health import HealthChecker
from services.status.service import system_view


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def test_unreachable_system_is_unhealthy_with_a_message_then_recovers(config, tmp_path):
    real = config.system("local")
    port = _closed_port()
    # The same sshd reached on another port: its pinned host key under that port's entry too.
    known_hosts = tmp_path / "known_hosts"
    key = real.ssh.known_hosts.read_text().split(None, 1)[1]
    known_hosts.write_text(f"[{real.ssh.host}]:{port} {key}")
    system = dataclasses.replace(real, ssh=dataclasses.replace(real.ssh, port=port, known_hosts=known_hosts))
    unreachable = dataclasses.replace(config, systems=tuple(system if s.name == real.name else s
                                                            for s in config.systems))

    async def forward(reader, writer):
        upstream_reader, upstream_writer = await asyncio.open_connection(real.ssh.host, real.ssh.port)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    async def main():
        pool = SshPool.for_service(unreachable, "status")
        checker = HealthChecker(unreachable, pool)
        try:
            await checker.check_all()
            down = system_view(system, unreachable, checker.results[system.name])
            server = await asyncio.start_server(forward, real.ssh.host, port)
            async with server:
                await checker.check_all()
                up = system_view(system, unreachable, checker.results[system.name])
                server.close()
            return down, up
        finally:
            with contextlib.suppress(Exception):
                await pool.close()

    down, up = asyncio.run(main())
    kinds = sorted(h.service_type for h in down.services_health)
    assert kinds == sorted(["ssh", "scheduler"] + ["filesystem"] * len(real.file_systems))
    for h in down.services_health:
        assert not h.healthy, h
        assert h.message == "Unable to connect to system local: Connection refused", h
    assert down.last_health_check
    assert sorted(h.service_type for h in up.services_health) == kinds
    assert all(h.healthy and not h.message for h in up.services_health), up.services_health
    assert up.scheduler.version  # `sinfo --version` answered
