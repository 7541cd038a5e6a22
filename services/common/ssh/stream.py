"""Remote commands whose input or output is a stream of any size (the storage service's direct
transfers): one SSH channel held for as long as the transfer lasts, in constant memory.

`RemoteStreams.open(caller, system, argv)` quotes `argv` at the one choke point (`shell_join`), takes
a channel slot of the caller's pooled connection (`SshPool.lease`), starts the command and yields a
`RemoteStream`. Its input is sent chunk by chunk from a worker thread of this module's own pool
(paramiko blocks while the channel's window is full: the remote side's pace is the backpressure, and
the caller awaits each chunk before taking the next); its output is read the same way, a blocking
`recv` on a worker thread per chunk (at most the channel's window is buffered). Reading it from the
event loop instead, woken by paramiko's buffer events as `LoopCommand` does, lost a window adjustment
now and then past a key re-exchange (a 1 GiB download stalled at ~1 GiB with the window spent). No `timeout`
wraps the command: a transfer may last hours. Instead every wait is bounded by `idle_seconds`, and
leaving the `with` in any other way than after `finish()` (an error, the caller gone) stops the
command (TERM, then KILL, to its process group) before the slot is given back: the remote side never
sees an EOF it could take for the end of a complete input.

Key re-exchange: paramiko renegotiates keys every 512 MiB; input is sent with `channel.send_message`'s
lock order, which never blocks the exchange (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Sequence

import paramiko

from services.common.config import SystemConfig
from services.common.errors import RequestTimeout
from services.common.identity import Caller
from services.common.ssh.channel import READ_CHUNK, ChannelRefused, send_eof, send_stdin, terminate
from services.common.ssh.command import CommandResult, shell_join
from services.common.ssh.pool import SshPool
from services.common.ssh.retry import CommandInterrupted
from services.common.ssh.runner import checked_length

MAX_LINE = 64 * 1024  # a status line the command prints before or after its data
# The channel's receive window: what the system may send before we read it (paramiko buffers it).
# Smaller than the pool's (8 MiB, for commands whose whole output is read at once): a stream is read
# as it comes, and a smaller buffer keeps the service's memory flat.
WINDOW_SIZE = 2 * 1024 * 1024


class RemoteStream:
    """A started command on its own channel: send input, read output, then `finish()`."""

    def __init__(self, channel: paramiko.Channel, senders: ThreadPoolExecutor, idle_seconds: float):
        self.channel = channel
        self._senders = senders
        self._idle = idle_seconds
        channel.settimeout(idle_seconds)  # a send that waits this long for window space fails
        self._pending = bytearray()  # output read past a line
        self.finished = False

    async def send(self, data: bytes) -> bool:
        """Sends `data` as input (blocking on a worker thread while the remote side does not read).
        False when the command no longer reads (it ended: `finish()` tells why)."""
        if self.channel.closed or self.channel.eof_received or self.channel.exit_status_ready():
            return False
        try:
            await asyncio.get_running_loop().run_in_executor(self._senders, send_stdin, self.channel, data)
        except socket.timeout:
            raise RequestTimeout(f"The system did not take any data for {self._idle:.0f} seconds.") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise CommandInterrupted(f"SSH connection lost: {exc}") from None
        return not self.channel.closed

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes of output, at least one; b"" once the command's output ended."""
        if self._pending:
            data = bytes(self._pending[:size])
            del self._pending[:size]
            return data
        try:
            return await asyncio.get_running_loop().run_in_executor(self._senders, self.channel.recv, size)
        except socket.timeout:
            raise RequestTimeout(f"The system sent nothing for {self._idle:.0f} seconds.") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise CommandInterrupted(f"SSH connection lost: {exc}") from None

    async def read_line(self) -> bytes:
        """The output up to and including the next newline (what came before the end of the output
        when there is none)."""
        while b"\n" not in self._pending and len(self._pending) < MAX_LINE:
            data = await self.read(READ_CHUNK)
            if not data:
                break
            self._pending += data
        end = self._pending.find(b"\n") + 1 or len(self._pending)
        line = bytes(self._pending[:end])
        del self._pending[:end]
        return line

    async def finish(self, send_input_eof: bool = True) -> CommandResult:
        """Ends the input (EOF: the command may take it as complete), waits for the command's exit and
        returns its status, the output not read yet (small: the command's closing lines) and stderr."""
        channel = self.channel
        if send_input_eof:
            try:
                await asyncio.get_running_loop().run_in_executor(self._senders, send_eof, channel)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                raise CommandInterrupted(f"SSH connection lost: {exc}") from None
        stdout = bytearray(self._pending)
        self._pending.clear()
        while len(stdout) < MAX_LINE and (data := await self.read(READ_CHUNK)):
            stdout += data
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._idle
        while not channel.exit_status_ready() and not channel.closed and loop.time() < deadline:
            await asyncio.sleep(0.01)  # the exit status follows the output's EOF at once; it wakes nobody
        stderr = bytearray()
        while channel.recv_stderr_ready() and len(stderr) < MAX_LINE:
            stderr += channel.recv_stderr(READ_CHUNK)
        if channel.exit_status == -1:
            raise CommandInterrupted("SSH connection lost: the command ended without an exit status.")
        self.finished = True
        return CommandResult(channel.exit_status, bytes(stdout), bytes(stderr))


class RemoteStreams:
    """Opens `RemoteStream`s over a service's SSH pool (one per service, made at start-up)."""

    def __init__(self, pool: SshPool, idle_seconds: float, threads: int = 32):
        self.pool = pool
        self.idle_seconds = idle_seconds
        self._senders = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ssh-stream")
        self._stoppers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ssh-stream-stop")

    @contextlib.asynccontextmanager
    async def open(self, caller: Caller, system: SystemConfig, argv: Sequence[str]) -> AsyncIterator[RemoteStream]:
        """`argv` started as `caller` on `system`; stopped on exit unless `finish()` ran."""
        command = checked_length(shell_join(argv))
        loop = asyncio.get_running_loop()
        async with self.pool.lease(caller, system, command) as transport:
            started = loop.run_in_executor(self._senders, _start, transport, command,
                                           system.ssh.timeouts.command_execution)
            try:
                channel = await asyncio.shield(started)
            except asyncio.CancelledError:  # the caller left while the command started: stop it
                started.add_done_callback(
                    lambda f: f.cancelled() or f.exception() or self._stoppers.submit(terminate, f.result()))
                raise
            stream = RemoteStream(channel, self._senders, self.idle_seconds)
            try:
                yield stream
            finally:
                if stream.finished:
                    channel.close()
                else:  # cut short: the command must not live on (nor see an EOF)
                    await asyncio.shield(loop.run_in_executor(self._stoppers, terminate, channel))

    def close(self) -> None:
        self._senders.shutdown(wait=False, cancel_futures=True)
        self._stoppers.shutdown(wait=False)


def _start(transport: paramiko.Transport, command: str, timeout: float) -> paramiko.Channel:
    """Opens a session channel and starts `command` on it (blocking)."""
    try:
        channel = transport.open_session(window_size=WINDOW_SIZE, timeout=timeout)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        if transport.is_active():
            raise ChannelRefused(f"Unable to open a new SSH channel: {exc}") from None
        raise CommandInterrupted(f"Unable to open a new SSH channel: {exc}") from None
    try:
        channel.exec_command(command)
    except (paramiko.SSHException, EOFError, OSError) as exc:
        channel.close()
        raise CommandInterrupted(f"Unable to start the command: {exc}") from None
    return channel
