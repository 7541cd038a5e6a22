"""One remote command on one SSH channel, run by a worker thread (`execute`): start it, send its
input, collect its output and exit status; and stopping a command whose caller went away.

sshd drops a whole connection, with every other channel on it, when a message for a channel arrives
after our CLOSE of it ("... referred to nonexistent channel"); paramiko sends channel messages outside
the channel lock, so EOF, input and signals are sent here under it (`send_eof`, `send_stdin`,
`send_signal`). Commands without input are driven by the event loop instead (`loop_command`).
"""

from __future__ import annotations

import socket
import threading
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_DATA, cMSG_CHANNEL_EOF, cMSG_CHANNEL_REQUEST

from services.common.config import SystemConfig
from services.common.errors import PayloadTooLarge, RequestTimeout, SshConnectionFailed
from services.common.ssh.certificates import UserCertificate
from services.common.ssh.command import CommandResult
from services.common.ssh.retry import CommandInterrupted, CommandNotStarted, NoExitStatus
from services.common.ssh.transport import open_transport

READ_CHUNK = 256 * 1024
CLOSE_GRACE_SECONDS = 0.5  # how long to wait for the server's CLOSE after exit-status and EOF
STOP_SIGNALS = ("TERM", "KILL")  # sent in turn to a cancelled command's process group
STOP_GRACE_SECONDS = 1.0  # how long a cancelled command has to end after each signal


class ChannelRefused(CommandNotStarted):
    """sshd refused a new channel on a healthy connection (its MaxSessions count still includes
    channels we already closed), or refused `exec` on it. Transient: the connection stays, the caller
    tries again."""


def ended_without_status(channel: paramiko.Channel) -> SshConnectionFailed:
    """The error for a channel that closed without an exit status: `exec` refused on a live
    connection (the command never started), the connection lost (it may have), or sshd closing the
    channel without exit-status (it ran, whether to the end is unknown)."""
    if not channel.event_ready:
        if channel.transport.is_active():
            return ChannelRefused("Unable to start the command: the SSH server refused it")
        return CommandInterrupted("SSH connection lost: Channel closed.")
    return NoExitStatus("The SSH channel closed without the command's exit status: whether it completed is "
                        "unknown")


def send_message(channel: paramiko.Channel, kind: bytes, payload: bytes | None = None) -> bool:
    """Sends one CHANNEL_DATA (`payload`) or CHANNEL_EOF message on `channel`, never after our CLOSE;
    False when the channel is closed (or, for EOF, ours was sent already): nothing sent.

    Two orders matter. paramiko sends channel messages outside the channel lock, so when a command
    ends at once the transport thread may answer the server's CLOSE with our CLOSE first; sshd then
    sees our EOF or data for a freed channel and drops the whole connection with every other channel
    on it ("... referred to nonexistent channel"): the message is built and sent holding the channel's
    lock. And paramiko renegotiates keys every 512 MiB of a connection, during which a message waits
    for the new keys; waiting for them while holding the channel's lock (as `_send_user_message`
    called under it would) blocks the transport thread on this channel's next message until "Key-
    exchange timed out" (a streamed transfer stalled so at 512 MiB). So the transport's clear-to-send
    lock is taken first, only between exchanges, as `_send_user_message` does, and the channel's
    second, never waiting for one while holding the other.
    """
    transport = channel.transport
    deadline = time.monotonic() + transport.clear_to_send_timeout
    while True:  # between key exchanges, as Transport._send_user_message
        transport.clear_to_send.wait(0.1)
        if not transport.active:
            raise EOFError("SSH connection lost")
        transport.clear_to_send_lock.acquire()
        if transport.clear_to_send.is_set():
            break
        transport.clear_to_send_lock.release()
        if time.monotonic() > deadline:
            raise paramiko.SSHException("Key-exchange timed out waiting for key negotiation")
    try:
        with channel.lock:
            if channel.closed or (kind == cMSG_CHANNEL_EOF and channel.eof_sent):
                return False
            message = paramiko.Message()
            message.add_byte(kind)
            message.add_int(channel.remote_chanid)
            if payload is not None:
                message.add_string(payload)
            if kind == cMSG_CHANNEL_EOF:
                channel.eof_sent = True
            transport._send_message(message)
            return True
    finally:
        transport.clear_to_send_lock.release()


def send_eof(channel: paramiko.Channel) -> None:
    """Sends our EOF on `channel` (the command's input ends), never after our CLOSE."""
    send_message(channel, cMSG_CHANNEL_EOF)


def send_stdin(channel: paramiko.Channel, data: bytes) -> None:
    """Sends `data` as the command's input (blocking while the channel's window is full, up to the
    channel's timeout); stops early when the channel closes or the server sent EOF (the command reads
    no more: its exit status tells what happened)."""
    view = memoryview(data)
    while view:
        with channel.lock:  # _wait_for_send_window() waits on a condition of this lock, releasing it
            if channel.closed:
                return
            size = channel._wait_for_send_window(min(len(view), channel.out_max_packet_size))
        if size == 0 or not send_message(channel, cMSG_CHANNEL_DATA, bytes(view[:size])):
            return
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


def drain(channel: paramiko.Channel, stdout: bytearray, stderr: bytearray, max_output: int | None) -> bool:
    """Moves what the channel's buffers hold into `stdout`/`stderr`; True when the server's EOF (or
    CLOSE) had arrived before reading, so nothing more will come. PayloadTooLarge at `max_output`."""
    finished = channel.eof_received or channel.closed
    while channel.recv_ready():
        stdout += channel.recv(READ_CHUNK)
    while channel.recv_stderr_ready():
        stderr += channel.recv_stderr(READ_CHUNK)
    if max_output is not None and (len(stdout) >= max_output or len(stderr) >= max_output):
        raise PayloadTooLarge("Command output exceeded buffer limit.")
    return finished


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
        raise CommandNotStarted(f"Unable to open a new SSH channel: {exc}") from None
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
            if drain(channel, stdout, stderr, max_output):
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
        if channel.exit_status == -1:
            # Closed before the server accepted `exec` (it refused it), by terminate(), or without
            # an exit status.
            if stop is not None and stop.requested:
                raise CommandStopped()
            raise ended_without_status(channel)
        return CommandResult(channel.exit_status, bytes(stdout), bytes(stderr))
    except socket.timeout:
        raise RequestTimeout("Command execution timeout limit exceeded.") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if stop is not None and stop.requested:
            raise CommandStopped() from None  # e.g. sendall() on the channel terminate() closed
        raise CommandInterrupted(f"SSH connection lost: {exc}") from None
    finally:
        channel.close()


def execute_on_own_connection(system: SystemConfig, username: str, cert: UserCertificate, command: str,
                              stdin: bytes | None, timeout: float, max_output: int | None,
                              stop: Stop) -> CommandResult:
    """Logs in with `cert`, runs `command`, logs out (blocking; `command` certificate mode)."""
    transport = open_transport(system, username, cert)
    try:
        return execute(transport, command, stdin, timeout, max_output, stop)
    finally:
        transport.close()
