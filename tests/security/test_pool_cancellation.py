"""A request cancelled while the SSH pool works for it (the gRPC client went away) gives back what it
holds only once it is really free, against the real certificator and sshd (issue 7, part 5).

- a cancelled command is stopped on the machine (closing its channel alone leaves the process, and
  its sshd session, alive) and its channel slot is released only once the channel is closed;
- a cancelled login keeps counting against the connection limit until its thread is done, and the
  connection it made is closed, not leaked;
- the same for `command` certificate mode, whose connection is the unit of the limit.

Clean-up after a cancellation is asynchronous: the tests poll for it up to a deadline; they never
assert on elapsed time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import subprocess
import threading

import pytest

from services.common.ssh import channel as channel_module
from services.common.ssh import pool as pool_module
from services.common.ssh.command import shell_join
from services.common.ssh.pool import SshPool

DEADLINE_SECONDS = 20.0


def make_pool(config) -> SshPool:
    return SshPool.for_service(config, "compute")  # its own certificator client, mutual TLS as compute


def run_with_pool(config, body):
    async def main():
        pool = make_pool(config)
        try:
            return await body(pool)
        finally:
            await pool.close()
    return asyncio.run(main())


def system_with(config, **ssh):
    system = config.system("local")
    return dataclasses.replace(system, ssh=dataclasses.replace(system.ssh, **ssh))


def unique_sleep(seconds: int) -> tuple[str, str]:
    """(argument of `sleep`, pgrep pattern) unique to this test run."""
    arg = f"{seconds}.{secrets.randbelow(10**6):06d}"
    return arg, "sleep " + arg.replace(".", r"\.")


def remote_pids(user: str, pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-u", user, "-f", pattern], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _tcp_table():
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as table:
            next(table)
            for line in table:
                f = line.split()
                yield int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16), f[3], f[9]


def own_ssh_sockets(port: int) -> int:
    """TCP sockets of this process connected to sshd's port (any state)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    return sum(1 for _, remote, _, inode in _tcp_table() if remote == port and inode in inodes)


def sshd_side_open(port: int, client_port: int) -> bool:
    """Whether sshd still holds its end of the connection from our `client_port` (ESTABLISHED or
    CLOSE_WAIT): its session process for that login has not gone."""
    return any(local == port and remote == client_port and state in ("01", "08")
               for local, remote, state, _ in _tcp_table())


def usage(pool: SshPool, user: str = "alice", system: str = "local") -> tuple[int, int]:
    """(channels in use, logins in progress) of the pool for (user, system)."""
    slot = pool._slots.get((user, system))
    if slot is None:
        return 0, 0
    return sum(c.in_use for c in slot.connections), slot.connecting


async def eventually(predicate, deadline: float = DEADLINE_SECONDS) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        if predicate():
            return True
        if loop.time() > end:
            return False
        await asyncio.sleep(0.05)


async def cancelled(tasks) -> None:
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results


class GatedLogin:
    """Replaces open_transport: a login starts, then waits for `gate` (the test cancels meanwhile)."""

    def __init__(self, monkeypatch):
        self.started, self.gate, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.client_ports: list[int] = []
        real = pool_module.open_transport

        def gated(*args):
            self.started.set()
            self.gate.wait(60)
            try:
                transport = real(*args)
                self.client_ports.append(transport.sock.getsockname()[1])
                return transport
            finally:
                self.finished.set()
        monkeypatch.setattr(pool_module, "open_transport", gated)  # pooled logins
        monkeypatch.setattr(channel_module, "open_transport", gated)  # command certificate mode


def test_cancelled_commands_are_stopped_and_free_their_channels_once_closed(config, caller_of):
    caller = caller_of("alice")
    system = system_with(config, max_connections_per_user=2, sessions_per_connection=8)
    arg, pattern = unique_sleep(30)

    async def body(pool: SshPool):
        tasks = [asyncio.create_task(pool.run(caller, system, shell_join(["sleep", arg]))) for _ in range(16)]
        assert await eventually(lambda: len(remote_pids("alice", pattern)) == 16)
        await cancelled(tasks)

        # A channel slot is free only once its channel is closed, which sshd does once the process is
        # gone: whenever the pool counts no channel in use, no such process may be left.
        left_when_free = []

        def freed():
            if usage(pool)[0]:
                return False
            left_when_free.append(remote_pids("alice", pattern))
            return True
        assert await eventually(freed), f"channels still in use: {usage(pool)}"
        assert left_when_free == [[]], "slots released while the commands still ran"
        assert await eventually(lambda: remote_pids("alice", pattern) == [])
        # Stopping commands never costs the shared connections.
        return pool.connection_count("alice", "local"), [c.alive() for c in pool._slots[("alice", "local")].connections]

    connections, alive = run_with_pool(config, body)
    assert connections == 2 and alive == [True, True]


def test_a_command_ignoring_term_is_killed(config, caller_of):
    caller = caller_of("alice")
    system = system_with(config, max_connections_per_user=1, sessions_per_connection=2)
    arg, pattern = unique_sleep(30)

    async def body(pool: SshPool):
        task = asyncio.create_task(pool.run(caller, system, shell_join(
            ["sh", "-c", f"trap '' TERM; sleep {arg}; echo never"])))
        assert await eventually(lambda: len(remote_pids("alice", pattern)) == 2)  # sh and sleep
        await cancelled([task])
        assert await eventually(lambda: remote_pids("alice", pattern) == []), "TERM-proof command left running"
        assert await eventually(lambda: usage(pool) == (0, 0))
        return (await pool.run(caller, system, shell_join(["echo", "after"]))).text()

    assert run_with_pool(config, body) == "after\n"


def test_full_capacity_after_cancellations(config, caller_of):
    """Cancelled commands must not keep sshd sessions: a burst at the pool's full capacity right after
    them gets every channel it asks for (sshd allows 10 sessions per connection, the pool uses 8)."""
    caller = caller_of("alice")
    system = system_with(config, max_connections_per_user=2, sessions_per_connection=8)
    arg, pattern = unique_sleep(30)

    async def body(pool: SshPool):
        for _ in range(2):
            tasks = [asyncio.create_task(pool.run(caller, system, shell_join(["sleep", arg]))) for _ in range(16)]
            assert await eventually(lambda: len(remote_pids("alice", pattern)) == 16)
            await cancelled(tasks)
        assert await eventually(lambda: usage(pool) == (0, 0))
        command = shell_join(["sh", "-c", "sleep 0.2; echo ok"])
        results = await asyncio.gather(*(pool.run(caller, system, command) for _ in range(64)),
                                       return_exceptions=True)
        return [r if isinstance(r, Exception) else r.text() for r in results]

    results = run_with_pool(config, body)
    failures = [r for r in results if r != "ok\n"]
    assert failures == [], failures[:3]


def test_cancel_during_login_closes_the_connection_it_opened(config, caller_of, monkeypatch):
    caller = caller_of("alice")
    system = system_with(config, max_connections_per_user=1, sessions_per_connection=2)
    port = system.ssh.port
    login = GatedLogin(monkeypatch)

    async def body(pool: SshPool):
        assert own_ssh_sockets(port) == 0

        # Cancelled while waiting for the certificate: nothing was opened, nothing is counted.
        certificate_asked = asyncio.Event()
        real_certificate = pool._certificates.session_certificate

        async def slow_certificate(c):
            certificate_asked.set()
            await asyncio.Event().wait()
        pool._certificates.session_certificate = slow_certificate
        task = asyncio.create_task(pool.run(caller, system, shell_join(["echo", "hi"])))
        await asyncio.wait_for(certificate_asked.wait(), DEADLINE_SECONDS)
        await cancelled([task])
        assert await eventually(lambda: usage(pool) == (0, 0))
        assert not login.started.is_set() and own_ssh_sockets(port) == 0
        pool._certificates.session_certificate = real_certificate

        # Cancelled while the login runs on its thread: the caller gets CancelledError although the
        # thread still waits (so without waiting for it), the login still counts until it is done.
        task = asyncio.create_task(pool.run(caller, system, shell_join(["echo", "hi"])))
        assert await eventually(login.started.is_set)
        await cancelled([task])
        assert usage(pool) == (0, 1), "a login still in progress is no longer counted"

        login.gate.set()
        assert await eventually(login.finished.is_set)
        assert await eventually(lambda: usage(pool) == (0, 0) and own_ssh_sockets(port) == 0), \
            f"the cancelled login's connection was leaked: {own_ssh_sockets(port)} socket(s), usage {usage(pool)}"
        assert pool.connection_count("alice", "local") == 0
        [client_port] = login.client_ports
        assert await eventually(lambda: not sshd_side_open(port, client_port)), "sshd session left behind"

        # The pool still works, with one connection.
        result = await pool.run(caller, system, shell_join(["echo", "after"]))
        return result.text(), pool.connection_count("alice", "local"), own_ssh_sockets(port)

    assert run_with_pool(config, body) == ("after\n", 1, 1)


def test_command_certificate_mode_cancellations(config, caller_of, monkeypatch):
    caller = caller_of("alice")
    system = system_with(config, certificate_mode="command", max_connections_per_user=1)
    port = system.ssh.port
    login = GatedLogin(monkeypatch)
    login.gate.set()
    # sshd refuses signals to forced-command sessions: this process outlives its connection; keep it short.
    arg, pattern = unique_sleep(5)

    async def body(pool: SshPool):
        def limit_held():
            return pool._command_mode_limits[("alice", "local")].locked()

        # Cancelled while the command runs: the connection is closed, then the limit is given back.
        task = asyncio.create_task(pool.run(caller, system, shell_join(["sleep", arg])))
        assert await eventually(lambda: len(remote_pids("alice", pattern)) == 1)
        await cancelled([task])
        sockets_when_free = []

        def freed():
            if limit_held():
                return False
            sockets_when_free.append(own_ssh_sockets(port))
            return True
        assert await eventually(freed)
        assert sockets_when_free == [0], "limit given back while the connection was open"

        # Cancelled during the login: the limit stays held until the login is done, and its
        # connection is then closed.
        login.gate.clear()
        login.started.clear()
        login.finished.clear()
        login.client_ports.clear()
        task = asyncio.create_task(pool.run(caller, system, shell_join(["echo", "hi"])))
        assert await eventually(login.started.is_set)
        await cancelled([task])
        assert limit_held(), "the limit was given back while a login was still in progress"
        login.gate.set()
        assert await eventually(login.finished.is_set)
        assert await eventually(lambda: not limit_held() and own_ssh_sockets(port) == 0), \
            f"the cancelled login's connection was leaked: {own_ssh_sockets(port)} socket(s)"
        [client_port] = login.client_ports
        assert await eventually(lambda: not sshd_side_open(port, client_port)), "sshd session left behind"

        results = await asyncio.gather(*(pool.run(caller, system, shell_join(["echo", f"n{i}"])) for i in range(3)))
        return [r.text() for r in results], own_ssh_sockets(port)

    assert run_with_pool(config, body) == (["n0\n", "n1\n", "n2\n"], 0)
