"""Pooled SSH connections per (user, system): who gets which connection and channel, and when.

A login node's sshd allows ~10 sessions per connection (MaxSessions) and throttles bursts of new
connections (MaxStartups). The pool therefore spreads channels over at most
`max_connections_per_user` connections with at most `sessions_per_connection` channels each, and
queues callers beyond that: a burst waits, it never fails for lack of a channel.

paramiko is blocking, so logins and commands with input run on a dedicated thread pool. Other
commands are driven by the event loop itself (`LoopCommand`): it sends their messages and awaits
what paramiko's transport thread hands it, so a command costs no hop to a worker thread and back.
The pool's bookkeeping stays on the event loop. TCP_NODELAY is set on every socket (without it a warm
command costs ~48 ms instead of ~3 ms: Nagle + delayed ACK).

Failures that pass are tried again within the request's deadline (`retry`): refused channels and
logins that timed out or were dropped always, commands whose channel ended without an exit status
only when the caller declared them idempotent.

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
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from services.common import metrics
from services.common.config import Config, SystemConfig
from services.common.errors import ServiceUnavailable, Unauthenticated
from services.common.identity import Caller
from services.common.ssh.certificates import CertificateCache
from services.common.ssh.channel import (ChannelRefused, Stop, execute, execute_on_own_connection,
                                         terminate)
from services.common.ssh.command import CommandResult
from services.common.ssh.loop_command import LoopCommand, OutputSink
from services.common.ssh.retry import (MAX_RESTARTS, Backoff, CommandInterrupted, CommandNotStarted, NoExitStatus,
                                       login_with_retries)
from services.common.ssh.transport import open_transport
from services.common.ssh.user_slot import PooledConnection, UserSlot

log = logging.getLogger(__name__)
ABANDONED_WORK_WAIT_SECONDS = 15.0  # close(): how long to wait for cancelled work still on a thread


class SshPool:
    """Runs commands on systems as a user over pooled, certificate-authenticated connections."""

    def __init__(self, certificates: CertificateCache, threads: int = 64, owns_certificates: bool = False):
        self._certificates = certificates
        self._owns_certificates = owns_certificates
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ssh")
        self._slots: dict[tuple[str, str], UserSlot] = {}
        self._command_mode_limits: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._janitor: asyncio.Task | None = None
        # Stopping a cancelled command waits for its process to end: never on the event loop, never
        # queued behind the commands that fill the main thread pool.
        self._stopper = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ssh-stop")
        self._abandoned: set[asyncio.Future] = set()  # threads still working for cancelled callers
        metrics.register_pool(self)  # firecrest_ssh_* gauges, read from stats() when scraped

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
                  timeout: float | None = None, max_output: int | None = None,
                  idempotent: bool = False, stdout_sink: OutputSink | None = None) -> CommandResult:
        """Runs the (already quoted) `command` on `system` as `caller`, a token verified in this
        request: a pooled connection serves only such a caller, and never after its token expired.

        Within `timeout` (the command's deadline), a command that never started (channel or `exec`
        refused) is tried again with backoff; one whose channel ended without an exit status is tried
        again only when `idempotent` (a read; see `retry`), otherwise its error says the outcome is
        unknown (503, or 424 when the connection was lost).

        `stdout_sink` (optional) sees the output while it arrives, for a command without input on a
        pooled connection (`LoopCommand`): begin() at each attempt, feed() with each piece. Commands run
        on a thread (with input, or in command-certificate mode) never call it; the result holds the whole
        output either way."""
        if caller.expires_at <= time.time():
            raise Unauthenticated("Access token expired")
        timeout = timeout or system.ssh.timeouts.command_execution
        if system.ssh.certificate_mode == "command":
            return await self._run_with_command_certificate(caller, system, command, stdin, timeout, max_output)
        self._ensure_janitor()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        backoff = Backoff()
        restarts = 0
        attempt_timeout = timeout
        while True:
            try:
                return await self._run_once(caller, system, command, stdin, attempt_timeout, max_output, stdout_sink)
            except CommandNotStarted as exc:
                failure = exc
            except CommandInterrupted as exc:
                if not idempotent or restarts >= MAX_RESTARTS:
                    raise
                restarts += 1
                failure = exc
            delay = backoff.delay()
            if loop.time() + delay >= deadline:
                if isinstance(failure, CommandNotStarted):  # sshd kept refusing: busy, not unreachable
                    raise ServiceUnavailable(f"{failure.message} (the login node of system {system.name} "
                                             f"refused new sessions until the request's deadline)") from None
                raise failure
            log.info("SSH command not run, trying again", extra={"fields": {
                "system": system.name, "reason": failure.message, "delay_ms": round(delay * 1000)}})
            await asyncio.sleep(delay)
            attempt_timeout = deadline - loop.time()

    @contextlib.asynccontextmanager
    async def lease(self, caller: Caller, system: SystemConfig, command: str):
        """A connection on which `caller` runs the (quoted) `command` on one channel for as long as the
        `with` body lasts (a transfer of any size: `stream.RemoteStreams`). Yields the transport: one
        channel slot of a pooled connection (session mode), given back on exit; in command mode a
        connection of its own whose certificate allows only `command`, closed on exit. The body
        closes its channel before it leaves."""
        if caller.expires_at <= time.time():
            raise Unauthenticated("Access token expired")
        if system.ssh.certificate_mode == "command":
            limit = self._command_mode_limits.setdefault((caller.username, system.name),
                                                         asyncio.Semaphore(system.ssh.max_connections_per_user))
            async with limit:
                cert = await self._certificates.command_certificate(caller, command)
                transport = await self._in_thread(open_transport, system, caller.username, cert,
                                                  abandoned=lambda work: work.exception() or work.result().close())
                try:
                    yield transport
                finally:
                    transport.close()
            return
        self._ensure_janitor()
        slot, connection = await self._acquire(caller, system)
        try:
            yield connection.transport
        finally:
            self._release(slot, connection)

    async def _run_once(self, caller: Caller, system: SystemConfig, command: str, stdin: bytes | None,
                        timeout: float, max_output: int | None, stdout_sink: OutputSink | None = None) -> CommandResult:
        """One attempt on a pooled connection; `timeout` starts once a channel is free."""
        slot, connection = await self._acquire(caller, system)
        handed_over = False
        try:
            if stdin:  # input may block the sender: on a worker thread
                stop = Stop()
                result = await self._in_thread(execute, connection.transport, command, stdin, timeout,
                                               max_output, stop, stop=partial(self._stop_soon, stop),
                                               abandoned=partial(self._release, slot, connection))
            else:
                run = LoopCommand(connection.transport, command, timeout, max_output, stdout_sink)
                try:
                    result = await run.run()
                except asyncio.CancelledError:
                    run.abandon(self._stopper, partial(self._release, slot, connection))
                    raise
            return result
        except asyncio.CancelledError:
            handed_over = True  # released once the channel is closed (by the worker or abandon())
            raise
        except (ChannelRefused, NoExitStatus):
            raise  # the connection itself is fine
        except (CommandNotStarted, CommandInterrupted):
            connection.transport.close()  # broken: let the next attempt open a fresh one
            raise
        finally:
            if not handed_over:
                self._release(slot, connection)

    async def _acquire(self, caller: Caller, system: SystemConfig) -> tuple[UserSlot, PooledConnection]:
        key = (caller.username, system.name)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = UserSlot()
        connection = slot.free_connection()
        if connection is not None:  # the common case: no wait, no lock, no task
            connection.in_use += 1
            return slot, connection
        limit = system.ssh.max_connections_per_user
        capacity = system.ssh.sessions_per_connection
        loop = asyncio.get_running_loop()
        slot.waiting += 1
        queued_at = time.perf_counter()
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
            metrics.SSH_CHANNEL_WAIT.labels(system.name).observe(time.perf_counter() - queued_at)
        # Bookkeeping below is synchronous, so a cancellation cannot land between its steps.
        try:
            cert = await self._certificates.session_certificate(caller)
        except BaseException:
            self._login_ended(slot)
            raise
        try:
            # A login that may pass (timeouts, a handshake dropped) is tried again for as long as
            # one login may take; a caller that went away stops the retries.
            given_up = threading.Event()
            budget = system.ssh.timeouts.connection + system.ssh.timeouts.login
            login = partial(open_transport, system, caller.username, cert)
            transport = await self._in_thread(login_with_retries, login, budget, given_up.is_set, stop=given_up.set,
                                              abandoned=partial(self._login_abandoned, slot))
        except asyncio.CancelledError:
            raise  # the login counts in slot.connecting until its thread is done
        except BaseException:
            self._login_ended(slot)
            raise
        connection = PooledConnection(transport, in_use=1, capacity=system.ssh.sessions_per_connection,
                                 idle_timeout=system.ssh.timeouts.idle)
        slot.connections.append(connection)
        self._login_ended(slot)
        log.info("opened SSH connection", extra={"fields": {
            "system": system.name, "connections": len(slot.connections)}})
        return slot, connection

    def _login_ended(self, slot: UserSlot, _work=None) -> None:
        slot.connecting -= 1
        slot.wake(everyone=True)  # a new connection serves many; a failed login lets another try

    def _login_abandoned(self, slot: UserSlot, work: asyncio.Future) -> None:
        """The login of a caller that went away is done: close the connection it made."""
        if not work.cancelled() and work.exception() is None:
            work.result().close()
        self._login_ended(slot)

    def _release(self, slot: UserSlot, connection: PooledConnection, _work=None) -> None:
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

    def stats(self) -> dict[str, dict[str, int]]:
        """Per system, summed over users: connections open, channels in use and their capacity,
        callers queued for a channel, logins in progress (the metrics' `PoolCollector`, from its
        scrape thread: a snapshot of plain counters, good enough for a gauge)."""
        totals: dict[str, dict[str, int]] = {}
        for (_user, system), slot in list(self._slots.items()):
            t = totals.setdefault(system, {"connections": 0, "channels_in_use": 0, "channel_capacity": 0,
                                           "queued": 0, "connecting": 0})
            connections = list(slot.connections)
            t["connections"] += len(connections)
            t["channels_in_use"] += sum(c.in_use for c in connections)
            t["channel_capacity"] += sum(c.capacity for c in connections)
            t["queued"] += slot.waiting
            t["connecting"] += slot.connecting
        return totals

    def connection_count(self, username: str, system_name: str) -> int:
        slot = self._slots.get((username, system_name))
        return len(slot.connections) if slot else 0

    async def close(self) -> None:
        metrics.unregister_pool(self)
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
