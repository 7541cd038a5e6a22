"""Unit tests of `services.compute.single_flight.SingleFlight`: identical concurrent calls share one
call and each gets its answer; different keys never share; nothing is served after the call ended;
errors reach every waiter; a waiter that goes away does not cancel the call for the others."""

from __future__ import annotations

import asyncio

import pytest

from services.compute.single_flight import SingleFlight


class Backend:
    """Counts calls; each call waits until released, so callers overlap for sure (no timing)."""

    def __init__(self):
        self.calls: list[str] = []
        self.release = asyncio.Event()

    async def query(self, key: str, answer=None):
        self.calls.append(key)
        await self.release.wait()
        if isinstance(answer, Exception):
            raise answer
        return [f"answer of {key} #{len(self.calls)}"]


def test_concurrent_identical_calls_share_one_call_and_each_gets_the_answer():
    async def main():
        flights, backend = SingleFlight(), Backend()
        waiters = [asyncio.create_task(flights.run(("alice", "local", "list"), lambda: backend.query("alice")))
                   for _ in range(32)]
        await asyncio.sleep(0)
        assert flights.in_flight() == 1
        backend.release.set()
        answers = await asyncio.gather(*waiters)
        assert backend.calls == ["alice"] and all(a == ["answer of alice #1"] for a in answers)
        assert flights.in_flight() == 0
    asyncio.run(main())


def test_different_keys_never_share():
    async def main():
        flights, backend = SingleFlight(), Backend()
        alice = [asyncio.create_task(flights.run(("alice", "local", "list"), lambda: backend.query("alice")))
                 for _ in range(8)]
        bob = [asyncio.create_task(flights.run(("bob", "local", "list"), lambda: backend.query("bob")))
               for _ in range(8)]
        other_query = asyncio.create_task(flights.run(("alice", "local", "job 1"), lambda: backend.query("job")))
        await asyncio.sleep(0)
        backend.release.set()
        a, b, j = await asyncio.gather(asyncio.gather(*alice), asyncio.gather(*bob), other_query)
        assert sorted(backend.calls) == ["alice", "bob", "job"]
        assert {x[0].split(" #")[0] for x in a} == {"answer of alice"}
        assert {x[0].split(" #")[0] for x in b} == {"answer of bob"}
        assert j[0].startswith("answer of job")
    asyncio.run(main())


def test_no_answer_outlives_its_call():
    async def main():
        flights, backend = SingleFlight(), Backend()
        backend.release.set()
        first = await flights.run("k", lambda: backend.query("k"))
        second = await flights.run("k", lambda: backend.query("k"))
        assert backend.calls == ["k", "k"] and first != second
    asyncio.run(main())


def test_an_error_reaches_every_waiter_and_is_not_kept():
    async def main():
        flights, backend = SingleFlight(), Backend()
        waiters = [asyncio.create_task(flights.run("k", lambda: backend.query("k", RuntimeError("down"))))
                   for _ in range(4)]
        await asyncio.sleep(0)
        backend.release.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results) and backend.calls == ["k"]
        assert await flights.run("k", lambda: backend.query("k")) == ["answer of k #2"]
    asyncio.run(main())


def test_a_cancelled_waiter_leaves_the_call_to_the_others():
    async def main():
        flights, backend = SingleFlight(), Backend()
        first = asyncio.create_task(flights.run("k", lambda: backend.query("k")))
        second = asyncio.create_task(flights.run("k", lambda: backend.query("k")))
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        backend.release.set()
        assert await second == ["answer of k #1"] and backend.calls == ["k"]
    asyncio.run(main())
