"""The SSH pool's bookkeeping of one (user, system) (services/common/ssh/pool.py): its pooled
connections with their channels in use, and the callers waiting for a free channel."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import paramiko


@dataclass(eq=False)
class PooledConnection:
    transport: paramiko.Transport
    in_use: int = 0
    capacity: int = 8
    idle_timeout: float = 60.0
    last_used: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.transport.is_active()


@dataclass(eq=False)
class UserSlot:
    """Connections of one (user, system) and the callers waiting for a free channel (FIFO).

    The bookkeeping is synchronous code on the event loop (no await between a check and its update),
    so it needs no lock: a caller takes a free channel at once; otherwise it waits on a future of
    its own, which a released channel resolves for the first waiter (one wake-up per freed channel,
    not every waiter), and a login that ended resolves for all of them.
    """

    connections: list[PooledConnection] = field(default_factory=list)
    connecting: int = 0
    waiting: int = 0
    waiters: collections.deque = field(default_factory=collections.deque)

    def free_connection(self) -> PooledConnection | None:
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
