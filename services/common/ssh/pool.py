"""Pooled SSH connections per (user, system), and the execution of one remote command.

A login node's sshd allows ~10 sessions per connection (MaxSessions) and throttles bursts of new
connections (MaxStartups). The pool therefore spreads channels over at most
`max_connections_per_user` connections with at most `sessions_per_connection` channels each, and
queues callers beyond that: a burst waits, it never fails for lack of a channel.

paramiko is blocking, so logins and commands with input run on a dedicated thread pool. Other
commands are driven by the event loop itself (`LoopCommand`): it sends their messages and awaits
what paramiko's transport thread hands it, so a command costs no hop to a worker thread and back.
The pool's bookkeeping stays on the event loop. TCP_NODELAY is set on every socket (without it a warm
command costs ~48 ms instead of ~3 ms: Nagle + delayed ACK).

In `command` certificate mode there is no pooling: every command gets its own certificate whose
force-command is that command, on its own connection, closed afterwards.

Cancellation (the gRPC client went away): the caller gets its CancelledError at once, but what its
worker thread holds is given back only when the thread is done with it. A running command is
stopped (TERM, then KILL, to its process group, then its channel closed: sshd keeps a session, and
one of the connection's MaxSessions, for as long as the process lives, even after the channel was
closed) and its channel slot is released once the channel is closed; a login in progress keeps
counting against the connection limit until it ends, and the connection it made is then closed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN, cMSG_CHANNEL_REQUEST

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
STOP_SIGNALS = ("TERM", "KILL")  # sent in turn to a cancelled command's process group
STOP_GRACE_SECONDS = 1.0  # how long a cancelled command has to end after each signal
ABANDONED_WORK_WAIT_SECONDS = 15.0  # close(): how long to wait for cancelled work still on a thread


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


def send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    """Sends `data` as the command's stdin, never after our CLOSE.

    The same race as in send_eof: paramiko's sendall() builds each DATA message under the channel
    lock but sends it after releasing it. A command that exits without reading its input (e.g. an
    upload whose target cannot be created) makes the server send CLOSE at once; if the transport
    thread answers with our CLOSE before our DATA goes out, sshd sees data for a freed channel and
    drops the whole connection ("data packet referred to nonexistent channel"). Sending under the lock
    orders them; once the channel is closed the rest of the input is dropped (the command is gone and
    its exit status tells what happened).
    """
    view = memoryview(data)
    while view:
        with channel.lock:  # _wait_for_send_window() waits on a condition of this lock, releasing it
            if channel.closed:
                return
            size = channel._wait_for_send_window(min(len(view), channel.out_max_packet_size))
            if size == 0:  # the server sent EOF: it reads no more input
                return
            message = paramiko.Message()
            message.add_byte(paramiko.common.cMSG_CHANNEL_DATA)
            message.add_int(channel.remote_chanid)
            message.add_string(bytes(view[:size]))
            channel.transport._send_user_message(message)
        view = view[size:]


class CommandStopped(Exception):
    """The command was stopped because its caller went away (never reaches a client)."""


def send_signal(channel: paramiko.Channel, name: str) -> bool:
    """Asks sshd to send signal `name` (RFC 4254 6.9: "TERM", "KILL", ...) to the command's process
    group (sshd refuses it for forced-command sessions). Like send_eof, never after our CLOSE: sshd
    drops the whole connection for a request on a freed channel. False when the channel is closed."""
    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    with channel.lock:
        if channel.closed:
            return False
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string(name)
        channel.transport._send_user_message(message)
        return True


def _closed_within(channel: paramiko.Channel, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not channel.closed and time.monotonic() < end:
        time.sleep(0.005)
    return channel.closed


def terminate(channel: paramiko.Channel, signals=STOP_SIGNALS, grace: float = STOP_GRACE_SECONDS) -> None:
    """Ends the command on `channel` (blocking): each signal in turn until the server closes the
    channel (the process exited, its session is gone), then closes the channel ourselves."""
    try:
        for name in signals:
            if not send_signal(channel, name) or _closed_within(channel, grace):
                break
    except (paramiko.SSHException, EOFError, OSError):
        pass  # the connection is gone, and the session with it
    finally:
        channel.close()


class Stop:
    """Lets the event loop stop a command that a worker thread runs (thread-safe).

    The worker attaches its channel once the command was sent; `request()` then returns it to be
    terminated. A stop requested before that is seen by the worker, which then either never starts
    the command or terminates it itself: exactly one side terminates.
    """

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = signals
        self._lock = threading.Lock()
        self._requested = False
        self._channel: paramiko.Channel | None = None

    @property
    def requested(self) -> bool:
        return self._requested

    def attach(self, channel: paramiko.Channel) -> bool:
        """The worker's command runs on `channel`. False when a stop was requested before."""
        with self._lock:
            self._channel = channel
            return not self._requested

    def request(self) -> paramiko.Channel | None:
        """Marks the stop; returns the channel to terminate when the command already runs."""
        with self._lock:
            first = not self._requested
            self._requested = True
            return self._channel if first else None


class _Wakeup:
    """Wakes the thread running a command when its channel has something new: paramiko's transport
    thread calls set() when output arrives on stdout or stderr, or when a buffer closes (EOF, CLOSE).

    It stands in for the threading.Event that paramiko's BufferedPipe.set_event() expects. One object
    serves both buffers, so only the reader clears it (before draining them: nothing is lost in
    between); a buffer's own clear() when it is drained is ignored, as the other may hold data.
    Unlike `select` on `Channel.fileno()` (an OS pipe that paramiko keeps readable forever after EOF),
    waiting on it never spins, and no pipe is made per channel.
    """

    __slots__ = ("_event",)

    def __init__(self):
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        pass  # a buffer was drained: the reader decides (reset)

    def reset(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


def _start(channel: paramiko.Channel, command: str, wait: bool) -> None:
    """Sends the `exec` request of `command` on `channel`.

    Without `wait`, the request goes out without waiting for the server's answer: sshd handles a
    channel's messages in order, so what follows (our EOF, a signal) reaches the command it started.
    The answer arrives before the command's first output; a refusal closes the channel, which
    collect() reports as a lost connection (as exec_command() would have).
    """
    if wait:
        channel.exec_command(command)
        return
    message = paramiko.Message()
    message.add_byte(cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("exec")
    message.add_boolean(True)
    message.add_string(command)
    channel._event_pending()  # as exec_command(): event_ready turns True on the server's success
    channel.transport._send_user_message(message)


def execute(transport: paramiko.Transport, command: str, stdin: bytes | None,
            timeout: float, max_output: int | None, stop: Stop | None = None) -> CommandResult:
    """Runs `command` on an open transport and collects its output (blocking).

    Raises RequestTimeout after `timeout` seconds, PayloadTooLarge when stdout or stderr reach
    `max_output` bytes, SshConnectionFailed when no channel can be opened, CommandStopped when
    `stop` was requested (the command then never started, or its channel is closed).

    Round trips: the channel open; then `exec` and our EOF go out together (a command with input
    waits for the server's answer to `exec` before sending it), and the worker sleeps until the
    transport thread hands it output, EOF or CLOSE.
    """
    if stop is not None and stop.requested:
        raise CommandStopped()
    try:
        channel = transport.open_session(timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        # paramiko keeps one "last channel-open failure" per transport, so of two threads refused at
        # once one gets a ChannelException and the other a bare SSHException: judge by the transport.
        if isinstance(exc, paramiko.ChannelException) or transport.is_active():
            raise ChannelRefused(f"Unable to open a new SSH channel: {exc}") from None
        raise SshConnectionFailed(f"Unable to open a new SSH channel: {exc}") from None
    deadline = time.monotonic() + timeout
    wakeup = _Wakeup()
    channel.in_buffer.set_event(wakeup)
    channel.in_stderr_buffer.set_event(wakeup)
    stdout, stderr = bytearray(), bytearray()
    try:
        if stop is not None and stop.requested:
            raise CommandStopped()
        _start(channel, command, wait=bool(stdin))
        if stop is not None and not stop.attach(channel):
            terminate(channel, stop.signals)
            raise CommandStopped()
        if stdin:
            channel.settimeout(timeout)
            send_stdin(channel, stdin)
        send_eof(channel)
        # Output until EOF (or CLOSE: the buffers close with it). The server sends a command's output
        # before its EOF, so once EOF was seen, draining the buffers reads all of it.
        while True:
            wakeup.reset()
            finished = channel.eof_received or channel.closed
            while channel.recv_ready():
                stdout += channel.recv(READ_CHUNK)
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(READ_CHUNK)
            if max_output is not None and (len(stdout) >= max_output or len(stderr) >= max_output):
                raise PayloadTooLarge("Command output exceeded buffer limit.")
            if finished:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeout("Command execution timeout limit exceeded.")
            wakeup.wait(min(remaining, 1.0))
        # Then the exit status (status_event is set by it, or by CLOSE) and the server's CLOSE, which
        # follows at once: done once the channel is closed, so its MaxSessions slot is free by the
        # time the next command asks for one (or after CLOSE_GRACE_SECONDS without CLOSE).
        if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            raise RequestTimeout("Command execution timeout limit exceeded.")
        if not channel.closed:
            with channel.lock:
                channel.out_buffer_cv.wait_for(lambda: channel.closed, CLOSE_GRACE_SECONDS)
        if not channel.event_ready and channel.exit_status == -1:
            # Closed before the server accepted `exec` (it refused it), or by terminate().
            if stop is not None and stop.requested:
                raise CommandStopped()
            raise SshConnectionFailed("SSH connection lost: Channel closed.")
        return CommandResult(channel.recv_exit_status(), bytes(stdout), bytes(stderr))
    except socket.timeout:
        raise RequestTimeout("Command execution timeout limit exceeded.") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if stop is not None and stop.requested:
            raise CommandStopped() from None  # e.g. sendall() on the channel terminate() closed
        raise SshConnectionFailed(f"SSH connection lost: {exc}") from None
    finally:
        channel.close()


class _LoopSignal:
    """Stands in for the threading.Event that paramiko's transport thread sets (a channel's open
    confirmation in `Transport.channel_events`, a buffer's data/EOF/CLOSE through
    BufferedPipe.set_event): set() resolves the future the event loop awaits, through one
    call_soon_threadsafe however often it is called before the loop runs it."""

    __slots__ = ("_loop", "_future", "_scheduled", "_set")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._future: asyncio.Future | None = None
        self._scheduled = False
        self._set = False

    def set(self) -> None:  # transport thread
        self._set = True
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._fire)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

    def clear(self) -> None:
        pass  # a buffer was drained: the loop decides (reset)

    def is_set(self) -> bool:
        return self._set

    def reset(self) -> None:
        self._set = False

    def _fire(self) -> None:
        self._scheduled = False
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until set() (at once if it was since reset()); TimeoutError after `timeout` seconds."""
        if self._set:
            return
        self._future = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._future
        finally:
            self._future = None


class LoopCommand:
    """A command run by the event loop itself on a pooled connection: no worker thread, so the only
    thread hand-offs are paramiko's transport thread waking the loop (the channel's confirmation,
    then its output, EOF and CLOSE). Sending from the loop is a short non-blocking write (commands
    with input go through `execute` on a thread, as large inputs may block).

    The same protocol as `execute`: open a session channel, send `exec` and our EOF without waiting
    for exec's answer, read until EOF, then wait for the server's CLOSE (or CLOSE_GRACE_SECONDS).
    `abandon()` handles a caller that went away: the command is stopped like `execute`'s (TERM, KILL,
    the channel closed, on the stopper thread) and `done` runs once the channel is closed.
    """

    def __init__(self, transport: paramiko.Transport, command: str, timeout: float, max_output: int | None):
        self.transport = transport
        self.command = command
        self.timeout = timeout
        self.max_output = max_output
        self.channel: paramiko.Channel | None = None
        self._chanid: int | None = None
        self._opened: _LoopSignal | None = None
        self._opening: paramiko.Channel | None = None

    def _open(self, loop: asyncio.AbstractEventLoop) -> tuple[int, _LoopSignal]:
        """Sends CHANNEL_OPEN as Transport.open_channel does, with a signal the loop can await."""
        transport = self.transport
        if not transport.active:
            raise SshConnectionFailed("Unable to open a new SSH channel: SSH session not active")
        signal = _LoopSignal(loop)
        with transport.lock:
            window = transport._sanitize_window_size(None)
            max_packet = transport._sanitize_packet_size(None)
            chanid = transport._next_channel()
            message = paramiko.Message()
            message.add_byte(cMSG_CHANNEL_OPEN)
            message.add_string("session")
            message.add_int(chanid)
            message.add_int(window)
            message.add_int(max_packet)
            channel = paramiko.Channel(chanid)
            self._opening = channel  # the transport's channel map holds it weakly
            transport._channels.put(chanid, channel)
            transport.channel_events[chanid] = signal
            transport.channels_seen[chanid] = True
            channel._set_transport(transport)
            channel._set_window(window, max_packet)
        transport._send_user_message(message)
        return chanid, signal

    async def run(self) -> CommandResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        transport = self.transport
        try:
            self._chanid, self._opened = self._open(loop)
            await self._opened.wait(self.timeout)
        except TimeoutError:
            raise ChannelRefused("Unable to open a new SSH channel: Timeout opening channel.") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SshConnectionFailed(f"Unable to open a new SSH channel: {exc}") from None
        channel = transport._channels.get(self._chanid)
        if channel is None or not channel.active:
            exc = transport.get_exception()
            if isinstance(exc, paramiko.ChannelException) or transport.is_active():
                raise ChannelRefused(f"Unable to open a new SSH channel: {exc}")
            raise SshConnectionFailed(f"Unable to open a new SSH channel: {exc}")
        self.channel = channel
        wakeup = _LoopSignal(loop)
        channel.in_buffer.set_event(wakeup)
        channel.in_stderr_buffer.set_event(wakeup)
        stdout, stderr = bytearray(), bytearray()
        max_output = self.max_output
        abandoned = False
        try:
            _start(channel, self.command, wait=False)
            send_eof(channel)
            while True:  # output until EOF (see execute)
                wakeup.reset()
                finished = channel.eof_received or channel.closed
                while channel.recv_ready():
                    stdout += channel.recv(READ_CHUNK)
                while channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(READ_CHUNK)
                if max_output is not None and (len(stdout) >= max_output or len(stderr) >= max_output):
                    raise PayloadTooLarge("Command output exceeded buffer limit.")
                if finished:
                    break
                await wakeup.wait(deadline - loop.time())
            # Then the exit status and the server's CLOSE (which wakes us: the buffers close again);
            # the exit status wakes nobody, so until it is in, look again every 50 ms.
            close_by = None
            while True:
                wakeup.reset()
                if channel.closed:
                    break
                now = loop.time()
                if close_by is None and channel.status_event.is_set():
                    close_by = now + CLOSE_GRACE_SECONDS
                if close_by is not None and now >= close_by:
                    break
                wait = min(deadline, close_by) - now if close_by is not None else min(deadline - now, 0.05)
                try:
                    await wakeup.wait(max(0.0, wait))
                except TimeoutError:
                    if loop.time() >= deadline:
                        raise
            if not channel.event_ready and channel.exit_status == -1:
                raise SshConnectionFailed("SSH connection lost: Channel closed.")  # exec refused
            return CommandResult(channel.exit_status, bytes(stdout), bytes(stderr))
        except asyncio.CancelledError:
            abandoned = True  # abandon() stops the command and closes the channel
            raise
        except TimeoutError:
            raise RequestTimeout("Command execution timeout limit exceeded.") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise SshConnectionFailed(f"SSH connection lost: {exc}") from None
        finally:
            if not abandoned:
                channel.close()

    def abandon(self, stopper: ThreadPoolExecutor, done) -> None:
        """The caller went away (its task was cancelled at an await of run()): stop the command and
        call done() on the event loop once its channel is closed."""
        loop = asyncio.get_running_loop()
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                done()

        if self.channel is not None:  # the command was sent: stopped like execute's
            try:
                work = stopper.submit(terminate, self.channel)
            except RuntimeError:  # the pool is closing
                self.channel.close()
                finish()
                return
            work.add_done_callback(lambda _f: loop.call_soon_threadsafe(finish))
            return
        if self._opened is None:
            finish()  # nothing was sent
            return

        # Cancelled while the channel was being opened: once the server answered (or the connection
        # ended), close what it opened; only then is the slot given back.
        def opened() -> None:
            channel = self.transport._channels.get(self._chanid)
            if channel is not None:
                channel.close()  # an open channel without a command: sshd frees it on our CLOSE
            finish()

        def opened_or_given_up() -> None:
            if self._opened.is_set() or not self.transport.is_active() or loop.time() >= give_up:
                opened()
            else:
                loop.call_later(0.05, opened_or_given_up)
        give_up = loop.time() + self.timeout
        opened_or_given_up()


def execute_on_own_connection(system: SystemConfig, username: str, cert: UserCertificate, command: str,
                              stdin: bytes | None, timeout: float, max_output: int | None,
                              stop: Stop) -> CommandResult:
    """Logs in with `cert`, runs `command`, logs out (blocking; `command` certificate mode)."""
    transport = open_transport(system, username, cert)
    try:
        return execute(transport, command, stdin, timeout, max_output, stop)
    finally:
        transport.close()


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
    """Connections of one (user, system) and the callers waiting for a free channel (FIFO).

    The bookkeeping is synchronous code on the event loop (no await between a check and its update),
    so it needs no lock: a caller takes a free channel at once; otherwise it waits on a future of
    its own, which a released channel resolves for the first waiter (one wake-up per freed channel,
    not every waiter), and a login that ended resolves for all of them.
    """

    connections: list[_Connection] = field(default_factory=list)
    connecting: int = 0
    waiting: int = 0
    waiters: collections.deque = field(default_factory=collections.deque)

    def free_connection(self) -> _Connection | None:
        """The live connection with the fewest channels in use below its capacity (channels spread
        evenly), dropping dead connections nobody uses."""
        best = None
        dead = False
        for c in self.connections:
            if not c.alive():
                dead = True
            elif c.in_use < c.capacity and (best is None or c.in_use < best.in_use):
                best = c
        if dead:
            self.connections = [c for c in self.connections if c.alive() or c.in_use]
        return best

    def wake(self, everyone: bool = False) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return


class SshPool:
    """Runs commands on systems as a user over pooled, certificate-authenticated connections."""

    def __init__(self, certificates: CertificateCache, threads: int = 64, owns_certificates: bool = False):
        self._certificates = certificates
        self._owns_certificates = owns_certificates
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ssh")
        self._slots: dict[tuple[str, str], _UserSlot] = {}
        self._command_mode_limits: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._janitor: asyncio.Task | None = None
        # Stopping a cancelled command waits for its process to end: never on the event loop, never
        # queued behind the commands that fill the main thread pool.
        self._stopper = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ssh-stop")
        self._abandoned: set[asyncio.Future] = set()  # threads still working for cancelled callers

    @classmethod
    def for_service(cls, config: Config, service: str) -> "SshPool":
        """The pool of the microservice `service`, with its own client of the configured certificator
        (mutual TLS as `service`; closed with the pool)."""
        return cls(CertificateCache.for_service(config, service), owns_certificates=True)

    async def _in_thread(self, fn, *args, stop=None, abandoned=None):
        """fn(*args) on the thread pool.

        When the awaiting task is cancelled, CancelledError propagates at once while the thread goes
        on: `stop()` asks it to finish early, and `abandoned(future)` runs on the event loop once it
        is done (at once if it already is): it gives back what the thread held or returned, since
        the caller never sees the outcome.
        """
        work = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if not work.done():
                if stop is not None:
                    stop()
                self._abandoned.add(work)
            work.add_done_callback(partial(self._abandoned_done, abandoned))
            raise

    def _abandoned_done(self, abandoned, work: asyncio.Future) -> None:
        self._abandoned.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved: the caller is gone
        if abandoned is not None:
            try:
                abandoned(work)
            except Exception:
                log.exception("cleanup after a cancelled SSH operation failed")

    def _stop_soon(self, stop: Stop) -> None:
        """Stops a command whose caller went away (returns at once; see terminate())."""
        channel = stop.request()
        if channel is not None:
            try:
                self._stopper.submit(terminate, channel, stop.signals)
            except RuntimeError:  # the pool is closing
                channel.close()

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
            slot, connection = await self._acquire(caller, system)
            handed_over = False
            try:
                if stdin:  # input may block the sender: on a worker thread
                    stop = Stop()
                    return await self._in_thread(execute, connection.transport, command, stdin, timeout,
                                                 max_output, stop, stop=partial(self._stop_soon, stop),
                                                 abandoned=partial(self._release, slot, connection))
                run = LoopCommand(connection.transport, command, timeout, max_output)
                try:
                    return await run.run()
                except asyncio.CancelledError:
                    run.abandon(self._stopper, partial(self._release, slot, connection))
                    raise
            except asyncio.CancelledError:
                handed_over = True  # released once the channel is closed (by the worker or abandon())
                raise
            except ChannelRefused:
                if delay is None:
                    raise
            except SshConnectionFailed:
                connection.transport.close()  # broken: let the next caller open a fresh one
                raise
            finally:
                if not handed_over:
                    self._release(slot, connection)
            await asyncio.sleep(delay)  # the command never started: trying again is safe

    async def _acquire(self, caller: Caller, system: SystemConfig) -> tuple[_UserSlot, _Connection]:
        key = (caller.username, system.name)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _UserSlot()
        connection = slot.free_connection()
        if connection is not None:  # the common case: no wait, no lock, no task
            connection.in_use += 1
            return slot, connection
        limit = system.ssh.max_connections_per_user
        capacity = system.ssh.sessions_per_connection
        loop = asyncio.get_running_loop()
        slot.waiting += 1
        try:
            while True:
                connection = slot.free_connection()
                if connection is not None:
                    connection.in_use += 1
                    return slot, connection
                # Open another connection only when the ones being opened cannot serve every
                # waiter: a burst of 3 requests for a new user makes one login, not three.
                if (len(slot.connections) + slot.connecting < limit
                        and slot.waiting > slot.connecting * capacity):
                    slot.connecting += 1
                    break
                waiter = loop.create_future()
                slot.waiters.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        slot.wake()  # woken, but gone: the wake-up goes to the next waiter
                    raise
        finally:
            slot.waiting -= 1
        # Bookkeeping below is synchronous, so a cancellation cannot land between its steps.
        try:
            cert = await self._certificates.session_certificate(caller)
        except BaseException:
            self._login_ended(slot)
            raise
        try:
            transport = await self._in_thread(open_transport, system, caller.username, cert,
                                              abandoned=partial(self._login_abandoned, slot))
        except asyncio.CancelledError:
            raise  # the login counts in slot.connecting until its thread is done
        except BaseException:
            self._login_ended(slot)
            raise
        connection = _Connection(transport, in_use=1, capacity=system.ssh.sessions_per_connection,
                                 idle_timeout=system.ssh.timeouts.idle)
        slot.connections.append(connection)
        self._login_ended(slot)
        log.info("opened SSH connection", extra={"fields": {
            "system": system.name, "connections": len(slot.connections)}})
        return slot, connection

    def _login_ended(self, slot: _UserSlot, _work=None) -> None:
        slot.connecting -= 1
        slot.wake(everyone=True)  # a new connection serves many; a failed login lets another try

    def _login_abandoned(self, slot: _UserSlot, work: asyncio.Future) -> None:
        """The login of a caller that went away is done: close the connection it made."""
        if not work.cancelled() and work.exception() is None:
            work.result().close()
        self._login_ended(slot)

    def _release(self, slot: _UserSlot, connection: _Connection, _work=None) -> None:
        connection.in_use -= 1
        connection.last_used = time.monotonic()
        slot.wake()

    async def _run_with_command_certificate(self, caller, system, command, stdin, timeout, max_output):
        key = (caller.username, system.name)
        limit = self._command_mode_limits.setdefault(key, asyncio.Semaphore(system.ssh.max_connections_per_user))
        await limit.acquire()
        try:
            cert = await self._certificates.command_certificate(caller, command)
        except BaseException:
            limit.release()
            raise
        # sshd refuses signals to forced-command sessions: closing the connection is all we can do.
        stop = Stop(signals=())
        try:
            result = await self._in_thread(execute_on_own_connection, system, caller.username, cert, command,
                                           stdin, timeout, max_output, stop, stop=partial(self._stop_soon, stop),
                                           abandoned=lambda _work: limit.release())
        except asyncio.CancelledError:
            raise  # the connection counts against the limit until its thread closed it
        except BaseException:
            limit.release()
            raise
        limit.release()
        return result

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
        for slot in list(self._slots.values()):
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
        if self._abandoned:  # let threads working for cancelled callers close what they hold
            await asyncio.wait(set(self._abandoned), timeout=ABANDONED_WORK_WAIT_SECONDS)
            await asyncio.sleep(0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._stopper.shutdown(wait=False)
        if self._owns_certificates:
            await self._certificates.close()
