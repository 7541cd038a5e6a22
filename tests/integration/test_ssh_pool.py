"""The SSH pool against the real certificator and sshd: bursts queue instead of failing, connections
stay bounded, arguments reach the remote side literally."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from pathlib import Path

import pytest

from services.common.ssh.certificates import CertificateCache
from services.common.ssh.command import shell_join
from services.common.ssh.pool import SshPool
from services.common.errors import RequestTimeout, PayloadTooLarge
from services.common.ssh.retry import NoExitStatus


def small_system(config, connections: int, sessions: int):
    system = config.system("local")
    return dataclasses.replace(system, ssh=dataclasses.replace(
        system.ssh, max_connections_per_user=connections, sessions_per_connection=sessions))


async def with_pool(config, body):
    certificates = CertificateCache.for_service(config, "compute")
    pool = SshPool(certificates)
    try:
        return await body(pool)
    finally:
        await pool.close()
        await certificates.close()


def test_burst_beyond_capacity_queues_and_succeeds(config, caller_of):
    caller = caller_of("alice")
    system = small_system(config, connections=2, sessions=5)

    async def body(pool: SshPool):
        command = shell_join(["sh", "-c", "sleep 0.3; echo done"])
        results = await asyncio.gather(*(pool.run(caller, system, command) for _ in range(40)))
        return results, pool.connection_count("alice", "local")

    results, connections = asyncio.run(with_pool(config, body))
    assert [r.text() for r in results] == ["done\n"] * 40
    assert 1 <= connections <= 2


def test_hostile_arguments_arrive_literally(config, caller_of):
    caller = caller_of("alice")
    canary = Path(f"/tmp/firecrest-canary-{uuid.uuid4().hex}")
    hostile = [f"$(touch {canary})", f"`touch {canary}`", "a'b\"c", f"; touch {canary}", "-rf", "new\nline", "*"]

    async def body(pool: SshPool):
        return await pool.run(caller, config.system("local"), shell_join(["printf", "%s\\0", *hostile]))

    result = asyncio.run(with_pool(config, body))
    assert result.stdout.split(b"\0")[:-1] == [h.encode() for h in hostile]
    assert not canary.exists(), "a quoted argument was run by the remote shell"

    async def unquoted(pool: SshPool):  # control: the same text unquoted does run, so the check can fail
        return await pool.run(caller, config.system("local"), f"echo {hostile[0]}")
    asyncio.run(with_pool(config, unquoted))
    assert canary.exists()
    canary.unlink()


def test_command_timeout_is_408(config, caller_of):
    caller = caller_of("alice")

    async def body(pool: SshPool):
        return await pool.run(caller, config.system("local"), shell_join(["sleep", "5"]), timeout=1)

    with pytest.raises(RequestTimeout):
        asyncio.run(with_pool(config, body))


def test_output_limit_is_413(config, caller_of):
    caller = caller_of("alice")

    async def body(pool: SshPool):
        return await pool.run(caller, config.system("local"), shell_join(["head", "-c", "300000", "/dev/zero"]),
                              max_output=100000)

    with pytest.raises(PayloadTooLarge):
        asyncio.run(with_pool(config, body))


def test_stdin_and_binary_output_round_trip(config, caller_of):
    caller = caller_of("alice")
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value

    async def body(pool: SshPool):
        return await pool.run(caller, config.system("local"), shell_join(["cat"]), stdin=payload)

    result = asyncio.run(with_pool(config, body))
    assert result.exit_status == 0 and result.stdout == payload


class RecordingSink:
    """An output sink (`loop_command.OutputSink`) that keeps what it is given, piece by piece."""

    def __init__(self):
        self.begun, self.pieces = 0, []

    def begin(self):
        self.begun += 1
        self.pieces = []

    def feed(self, chunk: bytes):
        self.pieces.append(chunk)


def test_a_stdout_sink_sees_the_output_as_it_arrives(config, caller_of):
    caller = caller_of("alice")
    # Output in three bursts 0.2 s apart: the sink gets it in pieces, before the command ends.
    command = shell_join(["sh", "-c", "head -c 300000 /dev/urandom | od -An -tx1; sleep 0.2; echo middle; "
                                      "sleep 0.2; printf 'end\\n'"])
    sink = RecordingSink()

    async def body(pool: SshPool):
        return await pool.run(caller, config.system("local"), command, stdout_sink=sink)

    result = asyncio.run(with_pool(config, body))
    assert result.exit_status == 0 and result.stdout.endswith(b"middle\nend\n")
    assert sink.begun == 1 and b"".join(sink.pieces) == result.stdout and len(sink.pieces) >= 3


def test_command_certificate_mode(config, caller_of):
    caller = caller_of("bob")
    system = config.system("local")
    system = dataclasses.replace(system, ssh=dataclasses.replace(system.ssh, certificate_mode="command"))

    async def body(pool: SshPool):
        return await asyncio.gather(*(pool.run(caller, system, shell_join(["echo", f"n{i}"])) for i in range(6)))

    results = asyncio.run(with_pool(config, body))
    assert [r.text() for r in results] == [f"n{i}\n" for i in range(6)]


def test_many_instant_commands_share_a_connection_without_dropping_it(config, caller_of):
    """Commands that end at once race our EOF against the server's CLOSE; sshd drops the whole
    connection if our EOF comes after our CLOSE. Every one of many such commands must succeed."""
    caller = caller_of("alice")
    system = small_system(config, connections=1, sessions=8)

    async def body(pool: SshPool):
        command = shell_join(["true"])
        results = await asyncio.gather(*(pool.run(caller, system, command) for _ in range(1500)),
                                       return_exceptions=True)
        return [r for r in results if isinstance(r, Exception) or r.exit_status != 0]

    failures = asyncio.run(with_pool(config, body))
    assert failures == [], failures[:3]


def test_commands_that_exit_without_reading_their_input_keep_the_connection(config, caller_of):
    """A command that fails before reading stdin (an upload whose target cannot be created) makes
    the server close the channel while we still send input; sshd drops the whole connection if any
    of our DATA arrives after our CLOSE. Every such command must report its own exit status."""
    caller = caller_of("alice")
    system = small_system(config, connections=1, sessions=8)

    async def body(pool: SshPool):
        command = shell_join(["sh", "-c", "exit 3"])
        stdin = b"x" * 200_000  # several packets: the server closes mid-way
        results = await asyncio.gather(*(pool.run(caller, system, command, stdin=stdin) for _ in range(600)),
                                       return_exceptions=True)
        return [r for r in results if isinstance(r, Exception) or r.exit_status != 3]

    failures = asyncio.run(with_pool(config, body))
    assert failures == [], failures[:3]


def test_idle_connections_are_closed_and_reopened_on_demand(config, caller_of):
    caller = caller_of("alice")
    system = config.system("local")

    async def body(pool: SshPool):
        await pool.run(caller, system, shell_join(["true"]))
        assert pool.connection_count("alice", "local") == 1
        assert await pool.close_idle() == 0, "a connection used just now is not idle"
        closed = await pool.close_idle(idle_seconds=0)
        after = pool.connection_count("alice", "local")
        again = await pool.run(caller, system, shell_join(["echo", "back"]))
        return closed, after, again.text(), pool.connection_count("alice", "local")

    assert asyncio.run(with_pool(config, body)) == (1, 0, "back\n", 1)


def test_session_certificates_are_cached_then_renewed_before_expiry(config, caller_of):
    caller = caller_of("alice")

    async def body():
        cache = CertificateCache.for_service(config, "compute")
        try:
            first = await cache.session_certificate(caller)
            cached = await cache.session_certificate(caller)
            first.valid_before = time.time() + 10  # within the renewal margin: must not be handed out
            renewed = await cache.session_certificate(caller)
            return first, cached, renewed
        finally:
            await cache.close()

    first, cached, renewed = asyncio.run(body())
    assert cached is first
    assert renewed is not first and renewed.usable()


def test_a_channel_closed_without_exit_status_is_run_again_only_when_idempotent(config, caller_of):
    """A process killed by a signal leaves sshd no exit status to send (it sends exit-signal): the
    channel closes with exit status -1. A read is run again; anything else is a 503 saying the
    outcome is unknown, never a 500 "exit status:-1". The first run of the command kills itself,
    the next one (a marker file exists by then) answers."""
    caller = caller_of("alice")
    system = config.system("local")
    marker = f"/tmp/fm-no-exit-status-{uuid.uuid4().hex}"
    script = 'if [ -e "$1" ]; then echo second; else touch "$1"; kill -KILL $$; fi'

    async def body(pool: SshPool):
        command = shell_join(["sh", "-c", script, "sh", marker])
        read = await pool.run(caller, system, command, idempotent=True)
        Path(marker).unlink()
        try:
            await pool.run(caller, system, command, idempotent=False)
        except NoExitStatus as exc:
            return read, exc
        return read, None

    read, error = asyncio.run(with_pool(config, body))
    assert read.text() == "second\n"
    assert error is not None and error.http_status == 503
    assert "whether it completed is unknown" in error.message
    assert Path(marker).exists()  # the one run it had
    Path(marker).unlink()


def test_channels_sshd_refuses_are_tried_again_until_they_open(config, caller_of, caplog):
    """A pool allowed more channels per connection than sshd's MaxSessions (10): sshd refuses the
    extra ones ("open failed"); those commands never started, so the pool tries them again until a
    session frees up. Every command of the burst succeeds, none gets a 424."""
    caplog.set_level(logging.INFO, logger="services.common.ssh.pool")
    caller = caller_of("alice")
    system = small_system(config, connections=1, sessions=12)

    async def body(pool: SshPool):
        # Two rounds of 10: the 2 refused at first wait a whole round (longer than the pool used to
        # try before answering 424), well within the command's deadline.
        command = shell_join(["sleep", "3"])
        results = await asyncio.gather(*(pool.run(caller, system, command) for _ in range(20)),
                                       return_exceptions=True)
        return [r for r in results if isinstance(r, Exception) or r.exit_status != 0]

    failures = asyncio.run(with_pool(config, body))
    assert failures == [], failures[:3]
    assert any(r.message == "SSH command not run, trying again" for r in caplog.records)  # sshd did refuse
