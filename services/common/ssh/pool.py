"""Pooled SSH connections per (user, system), and the execution of one remote command.

A login node's sshd allows ~10 sessions per connection (MaxSessions) and throttles bursts of new
connections (MaxStartups). The pool therefore spreads channels over at most
`max_connections_per_user` connections with at most `sessions_per_connection` channels each, and
queues callers beyond that: a burst waits, it never fails for lack of a channel.

paramiko is blocking, so connecting and running commands happen on a dedicated thread pool; the
pool's bookkeeping stays on the event loop. TCP_NODELAY is set on every socket (without it a warm
command costs ~48 ms instead of ~3 ms: Nagle + delayed ACK).

In `command` certificate mode there is no pooling: every command gets its own certificate whose
force-command is that command, on its own connection, closed afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import paramiko

from services.common.config import Config, SystemConfig
from services.common.errors import PayloadTooLarge, RequestTimeout, SshConnectionFailed, Unauthenticated
from services.common.identity import Caller
from services.common.ssh.certificates import CertificateCache, UserCertificate
from services.common.ssh.command import CommandResult

log = logging.getLogger(__name__)
READ_CHUNK = 256 * 1024
WINDOW_SIZE = 8 * 1024 * 1024
CLOSE_GRACE_SECONDS = 0.5  # how long to wait for the server's CLOSE after exit-status and EOF
CHANNEL_RETRY_DELAYS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # large windows: multi-MiB outputs (downloads) in few round trips


class ChannelRefused(SshConnectionFailed):
    """sshd refused a new channel on a healthy connection (its MaxSessions count still includes
    channels we already closed). Transient: the connection stays, the caller tries again."""


def _load_known_host_key(system: SystemConfig) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    try:
        keys.load(str(system.ssh.known_hosts))
    except OSError as exc:
        raise SshConnectionFailed(f"Known hosts file of system {system.name} unreadable: {exc}") from None
    return keys


def _host_entry(system: SystemConfig) -> str:
    host, port = system.ssh.host, system.ssh.port
    return host if port == 22 else f"[{host}]:{port}"


def open_transport(system: SystemConfig, username: str, cert: UserCertificate) -> paramiko.Transport:
    """Connects, verifies the pinned host key, authenticates with the certificate (blocking)."""
    timeouts = system.ssh.timeouts
    try:
        sock = socket.create_connection((system.ssh.host, system.ssh.port), timeout=timeouts.connection)
    except socket.timeout:
        raise RequestTimeout("SSH connection timeout limit exceeded.") from None
    except OSError as exc:
        raise SshConnectionFailed(f"Unable to connect to system {system.name}: {exc.strerror or exc}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock, default_window_size=WINDOW_SIZE)
    try:
        transport.start_client(timeout=timeouts.login)
        server_key = transport.get_remote_server_key()
        expected = _load_known_host_key(system).lookup(_host_entry(system)) or {}
        if expected.get(server_key.get_name()) != server_key:
            raise SshConnectionFailed(f"Host key of system {system.name} does not match the pinned key")
        transport.auth_publickey(username, cert.key)
        if not transport.is_authenticated():
            raise SshConnectionFailed("SSH authentication failed")
        transport.set_keepalive(timeouts.keep_alive)
        return transport
    except SshConnectionFailed:
        transport.close()
        raise
    except paramiko.AuthenticationException:
        transport.close()
        raise SshConnectionFailed(f"SSH login refused for user {username}") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        if isinstance(exc, socket.timeout) or "timeout" in str(exc).lower():
            raise RequestTimeout("SSH connection timeout limit exceeded.") from None
        raise SshConnectionFailed(f"SSH connection failed: {exc}") from None


def send_eof(channel: paramiko.Channel) -> None:
    """Sends our EOF on `channel`, never after our CLOSE.

    paramiko's shutdown_write() sends the EOF outside the channel lock, so when a command ends at
    once, the transport thread may answer the server's CLOSE with our CLOSE first; sshd then sees an
    EOF for a freed channel and drops the whole connection with every other channel on it
    ("ieof packet referred to nonexistent channel"). Holding the lock while sending orders the two
    (the private calls are those shutdown_write() itself makes).
    """
    with channel.lock:
        if channel.closed:
            return
        message = channel._send_eof()
        if message is not None:
            channel.transport._send_user_message(message)


def execute(transport: paramiko.Transport, command: str, stdin: bytes | None,
            timeout: float, max_output: int | None) -> CommandResult:
    """Runs `command` on an open transport and collects its output (blocking).

    Raises RequestTimeout after `timeout` seconds, PayloadTooLarge when stdout or stderr reach
    `max_output` bytes, SshConnectionFailed when no channel can be opened.
    """
    try:
        channel = transport.open_session(timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        # paramiko keeps one "last channel-open failure" per transport, so of two threads refused at
        # once one gets a ChannelException and the other a bare SSHException: judge by the transport.
        if isinstance(exc, paramiko.ChannelException) or transport.is_active():
            raise ChannelRefused(f"Unable to open a new SSH channel: {exc}") from None
        raise SshConnectionFailed(f"Unable to open a new SSH channel: {exc}") from None
    deadline = time.monotonic() + timeout
    close_by = float("inf")
    stdout, stderr = bytearray(), bytearray()
    try:
        channel.exec_command(command)
        if stdin:
            channel.settimeout(timeout)
            channel.sendall(stdin)
        send_eof(channel)
        while True:
            while channel.recv_ready():
                stdout += channel.recv(READ_CHUNK)
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(READ_CHUNK)
            if max_output is not None and (len(stdout) >= max_output or len(stderr) >= max_output):
                raise PayloadTooLarge("Command output exceeded buffer limit.")
            # Done when the server closed the channel (it sends exit-status, EOF and CLOSE together):
            # its MaxSessions slot is then free by the time the next command asks for one.
            if (channel.exit_status_ready() and not channel.recv_ready()
                    and not channel.recv_stderr_ready()
                    and (channel.closed or (channel.eof_received and time.monotonic() > close_by))):
                break
            if channel.exit_status_ready() and channel.eof_received and close_by == float("inf"):
                close_by = time.monotonic() + CLOSE_GRACE_SECONDS
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout("Command execution timeout limit exceeded.")
            select.select([channel], [], [], min(remaining, 1.0))
        return CommandResult(channel.recv_exit_status(), bytes(stdout), bytes(stderr))
    except socket.timeout:
        raise RequestTimeout("Command execution timeout limit exceeded.") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise SshConnectionFailed(f"SSH connection lost: {exc}") from None
    finally:
        channel.close()


@dataclass(eq=False)
class _Connection:
    transport: paramiko.Transport
    in_use: int = 0
    capacity: int = 8
    idle_timeout: float = 60.0
    last_used: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.transport.is_active()


@dataclass(eq=False)
class _UserSlot:
    """Connections of one (user, system) and the condition callers wait on for a free channel."""

    connections: list[_Connection] = field(default_factory=list)
    connecting: int = 0
    waiting: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class SshPool:
    """Runs commands on systems as a user over pooled, certificate-authenticated connections."""

    def __init__(self, certificates: CertificateCache, threads: int = 64, owns_certificates: bool = False):
        self._certificates = certificates
        self._owns_certificates = owns_certificates
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ssh")
        self._slots: dict[tuple[str, str], _UserSlot] = {}
        self._command_mode_limits: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._janitor: asyncio.Task | None = None

    @classmethod
    def for_service(cls, config: Config, service: str) -> "SshPool":
        """The pool of the microservice `service`, with its own client of the configured certificator
        (mutual TLS as `service`; closed with the pool)."""
        return cls(CertificateCache.for_service(config, service), owns_certificates=True)

    async def _in_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, caller: Caller, system: SystemConfig, command: str, *, stdin: bytes | None = None,
                  timeout: float | None = None, max_output: int | None = None) -> CommandResult:
        """Runs the (already quoted) `command` on `system` as `caller`, a token verified in this
        request: a pooled connection serves only such a caller, and never after its token expired."""
        if caller.expires_at <= time.time():
            raise Unauthenticated("Access token expired")
        timeout = timeout or system.ssh.timeouts.command_execution
        if system.ssh.certificate_mode == "command":
            return await self._run_with_command_certificate(caller, system, command, stdin, timeout, max_output)
        self._ensure_janitor()
        for delay in (*CHANNEL_RETRY_DELAYS, None):
            connection = await self._acquire(caller, system)
            try:
                return await self._in_thread(execute, connection.transport, command, stdin, timeout, max_output)
            except ChannelRefused:
                if delay is None:
                    raise
            except SshConnectionFailed:
                connection.transport.close()  # broken: let the next caller open a fresh one
                raise
            finally:
                await self._release(caller, system, connection)
            await asyncio.sleep(delay)  # the command never started: trying again is safe

    async def _acquire(self, caller: Caller, system: SystemConfig) -> _Connection:
        key = (caller.username, system.name)
        slot = self._slots.setdefault(key, _UserSlot())
        limit = system.ssh.max_connections_per_user
        capacity = system.ssh.sessions_per_connection
        async with slot.changed:
            slot.waiting += 1
            try:
                while True:
                    slot.connections = [c for c in slot.connections if c.alive() or c.in_use]
                    free = [c for c in slot.connections if c.alive() and c.in_use < c.capacity]
                    if free:
                        connection = min(free, key=lambda c: c.in_use)  # spread channels evenly
                        connection.in_use += 1
                        return connection
                    # Open another connection only when the ones being opened cannot serve every
                    # waiter: a burst of 3 requests for a new user makes one login, not three.
                    if (len(slot.connections) + slot.connecting < limit
                            and slot.waiting > slot.connecting * capacity):
                        slot.connecting += 1
                        break
                    await slot.changed.wait()
            finally:
                slot.waiting -= 1
        try:
            cert = await self._certificates.session_certificate(caller)
            transport = await self._in_thread(open_transport, system, caller.username, cert)
        except BaseException:
            async with slot.changed:
                slot.connecting -= 1
                slot.changed.notify_all()
            raise
        connection = _Connection(transport, in_use=1, capacity=system.ssh.sessions_per_connection,
                                 idle_timeout=system.ssh.timeouts.idle)
        async with slot.changed:
            slot.connecting -= 1
            slot.connections.append(connection)
            slot.changed.notify_all()
        log.info("opened SSH connection", extra={"fields": {
            "system": system.name, "connections": len(slot.connections)}})
        return connection

    async def _release(self, caller: Caller, system: SystemConfig, connection: _Connection) -> None:
        slot = self._slots[(caller.username, system.name)]
        async with slot.changed:
            connection.in_use -= 1
            connection.last_used = time.monotonic()
            slot.changed.notify_all()

    async def _run_with_command_certificate(self, caller, system, command, stdin, timeout, max_output):
        key = (caller.username, system.name)
        limit = self._command_mode_limits.setdefault(key, asyncio.Semaphore(system.ssh.max_connections_per_user))
        async with limit:
            cert = await self._certificates.command_certificate(caller, command)
            transport = await self._in_thread(open_transport, system, caller.username, cert)
            try:
                return await self._in_thread(execute, transport, command, stdin, timeout, max_output)
            finally:
                transport.close()

    def _ensure_janitor(self) -> None:
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.get_running_loop().create_task(self._close_idle_forever())

    async def _close_idle_forever(self, period: float = 5.0) -> None:
        while True:
            await asyncio.sleep(period)
            await self.close_idle()

    async def close_idle(self, idle_seconds: float | None = None) -> int:
        """Closes connections unused for longer than their system's idle timeout; returns how many."""
        closed = 0
        now = time.monotonic()
        for (username, system_name), slot in list(self._slots.items()):
            async with slot.changed:
                keep = []
                for c in slot.connections:
                    limit = idle_seconds if idle_seconds is not None else c.idle_timeout
                    if c.in_use == 0 and (not c.alive() or now - c.last_used > limit):
                        c.transport.close()
                        closed += 1
                    else:
                        keep.append(c)
                slot.connections = keep
        return closed

    def connection_count(self, username: str, system_name: str) -> int:
        slot = self._slots.get((username, system_name))
        return len(slot.connections) if slot else 0

    async def close(self) -> None:
        if self._janitor:
            self._janitor.cancel()
        for slot in self._slots.values():
            for c in slot.connections:
                c.transport.close()
        self._slots.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_certificates:
            await self._certificates.close()
