"""Unit tests of the SSH pool's own logic (services/common/ssh/: pool, channel, loop_command), no
processes: the pool's size from what sshd allows (config), the channel wake-up that replaces `select` on paramiko's pipe,
and the waiters of a user's connections (a free channel wakes one waiter, a login all of them; a
woken waiter that went away passes its wake-up on). Nothing here asserts on time."""

from __future__ import annotations

import asyncio
import threading

from paramiko.buffered_pipe import BufferedPipe
import pytest
import yaml

from services.common.config import DEFAULT_CONFIG, ConfigError, parse_config
from services.common.ssh.channel import _Wakeup
from services.common.ssh.loop_command import _LoopSignal
from services.common.ssh.pool import SshPool
from services.common.ssh.user_slot import PooledConnection, UserSlot


# --- sizing from sshd's limits -------------------------------------------------------------------------

@pytest.fixture
def raw():
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def ssh_of(raw, **values):
    ssh = raw["systems"][0]["ssh"]
    for key in ("sshd_max_sessions", "sshd_max_startups", "max_connections_per_user", "sessions_per_connection"):
        ssh.pop(key, None)
    ssh.update(values)
    return parse_config(raw, DEFAULT_CONFIG).system("local").ssh


def test_shipped_pool_size_is_within_sshds_limits(raw):
    ssh = parse_config(raw, DEFAULT_CONFIG).system("local").ssh
    assert ssh.sessions_per_connection <= ssh.sshd_max_sessions
    assert ssh.max_connections_per_user <= ssh.sshd_max_startups


def test_pool_size_defaults_follow_sshd(raw):
    ssh = ssh_of(raw)
    assert (ssh.sshd_max_sessions, ssh.sshd_max_startups) == (10, 10)  # sshd's defaults
    assert (ssh.sessions_per_connection, ssh.max_connections_per_user) == (8, 4)
    ssh = ssh_of(raw, sshd_max_sessions=4, sshd_max_startups=2)
    assert (ssh.sessions_per_connection, ssh.max_connections_per_user) == (2, 2)
    assert ssh_of(raw, sshd_max_sessions=1).sessions_per_connection == 1


@pytest.mark.parametrize("values, key", [
    ({"sshd_max_sessions": 10, "sessions_per_connection": 11}, "sessions_per_connection"),
    ({"sshd_max_startups": 3, "max_connections_per_user": 4}, "max_connections_per_user"),
    ({"sshd_max_sessions": 0}, "sshd_max_sessions"),
    ({"sshd_max_startups": "ten"}, "sshd_max_startups"),
])
def test_pool_sizes_beyond_sshds_limits_are_refused(raw, values, key):
    with pytest.raises(ConfigError, match=key):
        ssh_of(raw, **values)


# --- the channel wake-up ---------------------------------------------------------------------------------

def test_wakeup_is_set_by_either_buffer_and_cleared_only_by_the_reader():
    wakeup = _Wakeup()
    out, err = BufferedPipe(), BufferedPipe()
    out.set_event(wakeup)
    err.set_event(wakeup)
    assert not wakeup.wait(0)
    err.feed(b"e")
    out.feed(b"o")
    assert out.read(10) == b"o"  # the drained buffer's clear() must not hide stderr's data
    assert wakeup.wait(0)
    wakeup.reset()
    assert not wakeup.wait(0)
    out.close()  # EOF (or CLOSE) wakes the reader too
    assert wakeup.wait(0)


def test_wakeup_wakes_a_waiting_thread():
    wakeup, pipe, woke = _Wakeup(), BufferedPipe(), []
    pipe.set_event(wakeup)
    waiter = threading.Thread(target=lambda: woke.append(wakeup.wait(30)))
    waiter.start()
    pipe.feed(b"data")
    waiter.join(30)
    assert woke == [True]


# --- waiters ---------------------------------------------------------------------------------------------

class FakeTransport:
    def __init__(self, active=True):
        self.active = active

    def is_active(self):
        return self.active

    def close(self):
        self.active = False


def test_free_connection_spreads_channels_and_drops_dead_unused_connections():
    busy, idle = PooledConnection(FakeTransport(), in_use=3), PooledConnection(FakeTransport(), in_use=1)
    dead, dead_in_use = PooledConnection(FakeTransport(False)), PooledConnection(FakeTransport(False), in_use=1)
    slot = UserSlot(connections=[busy, dead, idle, dead_in_use])
    assert slot.free_connection() is idle
    assert slot.connections == [busy, idle, dead_in_use]  # in use: kept until released
    idle.in_use = idle.capacity
    busy.in_use = busy.capacity
    assert slot.free_connection() is None


def test_a_released_channel_wakes_one_waiter_a_login_wakes_all():
    async def main():
        loop = asyncio.get_running_loop()
        slot = UserSlot()
        waiters = [loop.create_future() for _ in range(3)]
        slot.waiters.extend(waiters)
        slot.wake()
        assert [w.done() for w in waiters] == [True, False, False]
        waiters[1].cancel()  # gone: skipped
        slot.wake()
        assert waiters[2].done() and not slot.waiters
        more = [loop.create_future() for _ in range(3)]
        slot.waiters.extend(more)
        slot.wake(everyone=True)
        assert all(w.done() for w in more)
    asyncio.run(main())


def caller(name="alice"):
    class Caller:
        username = name
    return Caller()


def system(connections=1, sessions=1):
    class Ssh:
        max_connections_per_user = connections
        sessions_per_connection = sessions

    class System:
        name = "local"
        ssh = Ssh()
    return System()


def test_waiters_get_freed_channels_in_turn_and_a_cancelled_one_passes_its_wake_up_on():
    async def main():
        pool = SshPool(certificates=None)
        sys_ = system(connections=1, sessions=1)
        slot = pool._slots[("alice", "local")] = UserSlot()
        connection = PooledConnection(FakeTransport(), capacity=1)
        slot.connections.append(connection)
        first = await pool._acquire(caller(), sys_)  # free: taken at once
        assert first == (slot, connection) and connection.in_use == 1
        a = asyncio.create_task(pool._acquire(caller(), sys_))
        b = asyncio.create_task(pool._acquire(caller(), sys_))
        await asyncio.sleep(0)
        assert slot.waiting == 2 and len(slot.waiters) == 2
        pool._release(slot, connection)  # wakes a only; a is cancelled before it runs
        a.cancel()
        await asyncio.gather(a, return_exceptions=True)
        assert (await asyncio.wait_for(b, 30)) == (slot, connection)  # a's wake-up went to b
        assert connection.in_use == 1 and slot.waiting == 0
        pool._executor.shutdown(wait=False)
        pool._stopper.shutdown(wait=False)
    asyncio.run(main())


# --- the event loop's signal from paramiko's transport thread --------------------------------------------

def test_loop_signal_wakes_the_loop_from_another_thread_and_times_out_otherwise():
    async def main():
        loop = asyncio.get_running_loop()
        signal = _LoopSignal(loop)
        with pytest.raises(TimeoutError):
            await signal.wait(0.01)
        threading.Thread(target=signal.set).start()
        await signal.wait(30)  # woken by the other thread
        assert signal.is_set()
        signal.reset()
        for _ in range(3):  # many set() before the loop runs: one callback
            signal.set()
        await signal.wait(30)
        signal.reset()
        assert not signal.is_set()
    asyncio.run(main())


def test_loop_signal_as_a_buffers_event():
    async def main():
        signal = _LoopSignal(asyncio.get_running_loop())
        out, err = BufferedPipe(), BufferedPipe()
        out.set_event(signal)
        err.set_event(signal)
        threading.Thread(target=err.feed, args=(b"x",)).start()
        await signal.wait(30)
        assert err.read(1) == b"x"
        signal.reset()
        threading.Thread(target=out.close).start()  # EOF wakes the loop too
        await signal.wait(30)
    asyncio.run(main())
