"""Commands without input, driven by the event loop itself: `LoopCommand` sends the channel's
messages and awaits what paramiko's transport thread hands it, so a command costs no hop to a worker
thread and back.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import paramiko
from paramiko.common import cMSG_CHANNEL_OPEN

from services.common.errors import RequestTimeout
from services.common.ssh.channel import (CLOSE_GRACE_SECONDS, ChannelRefused, _start, drain, ended_without_status,
                                         send_eof, terminate)
from services.common.ssh.command import CommandResult
from services.common.ssh.retry import CommandInterrupted, CommandNotStarted


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


class OutputSink(Protocol):
    """Sees a command's output while it arrives (e.g. `sacct.HistoryStream`), on the event loop."""

    def begin(self) -> None:
        """The command starts (again, when the pool retries it): drop whatever came before."""

    def feed(self, chunk: bytes) -> None:
        """The next piece of the command's stdout."""


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

    def __init__(self, transport: paramiko.Transport, command: str, timeout: float, max_output: int | None,
                 stdout_sink: OutputSink | None = None):
        self.transport = transport
        self.command = command
        self.timeout = timeout
        self.max_output = max_output
        self.stdout_sink = stdout_sink
        self.channel: paramiko.Channel | None = None
        self._chanid: int | None = None
        self._opened: _LoopSignal | None = None
        self._opening: paramiko.Channel | None = None

    def _open(self, loop: asyncio.AbstractEventLoop) -> tuple[int, _LoopSignal]:
        """Sends CHANNEL_OPEN as Transport.open_channel does, with a signal the loop can await."""
        transport = self.transport
        if not transport.active:
            raise CommandNotStarted("Unable to open a new SSH channel: SSH session not active")
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
            raise CommandNotStarted(f"Unable to open a new SSH channel: {exc}") from None
        channel = transport._channels.get(self._chanid)
        if channel is None or not channel.active:
            exc = transport.get_exception()
            if isinstance(exc, paramiko.ChannelException) or transport.is_active():
                raise ChannelRefused(f"Unable to open a new SSH channel: {exc}")
            raise CommandNotStarted(f"Unable to open a new SSH channel: {exc}")
        self.channel = channel
        wakeup = _LoopSignal(loop)
        channel.in_buffer.set_event(wakeup)
        channel.in_stderr_buffer.set_event(wakeup)
        stdout, stderr = bytearray(), bytearray()
        max_output = self.max_output
        sink, passed = self.stdout_sink, 0  # bytes of stdout given to the sink
        abandoned = False
        try:
            if sink is not None:
                sink.begin()
            _start(channel, self.command, wait=False)
            send_eof(channel)
            while True:  # output until EOF (see execute)
                wakeup.reset()
                ended = drain(channel, stdout, stderr, max_output)
                if sink is not None and len(stdout) > passed:
                    sink.feed(bytes(stdout[passed:]))
                    passed = len(stdout)
                if ended:
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
            if channel.exit_status == -1:  # exec refused, the connection lost, or no exit-status sent
                raise ended_without_status(channel)
            return CommandResult(channel.exit_status, bytes(stdout), bytes(stderr))
        except asyncio.CancelledError:
            abandoned = True  # abandon() stops the command and closes the channel
            raise
        except TimeoutError:
            raise RequestTimeout("Command execution timeout limit exceeded.") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise CommandInterrupted(f"SSH connection lost: {exc}") from None
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
