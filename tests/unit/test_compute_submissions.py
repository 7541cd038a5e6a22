"""Unit tests of compute's idempotent submission (`services.compute.submissions`), with the scheduler
replaced at its interface: one job per user and `Idempotency-Key`, also for concurrent calls."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from services.compute.scheduler import JobSpec
from services.compute.submissions import MARKER_PREFIX, Submissions, marker_for

SPEC = JobSpec(working_directory="/home/alice", env=(), script="#!/bin/bash\n")
SYSTEM = SimpleNamespace(name="local")


class Scheduler:
    """Records markers; a submission takes a moment, so concurrent calls overlap."""

    def __init__(self):
        self.jobs: dict[str, str] = {}  # marker → job id
        self.submits: list[str] = []

    async def find_by_marker(self, caller, system, marker):
        return self.jobs.get(marker)

    async def submit(self, caller, system, spec, marker):
        self.submits.append(marker)
        await asyncio.sleep(0.01)
        self.jobs[marker] = str(len(self.jobs) + 1)
        return self.jobs[marker]


def who(name: str) -> SimpleNamespace:
    return SimpleNamespace(username=name)


def test_marker_depends_on_user_and_key_only():
    assert marker_for("alice", "k") == marker_for("alice", "k") != marker_for("bob", "k") != marker_for("alice", "j")
    assert marker_for("alice", "k").startswith(MARKER_PREFIX) and len(marker_for("alice", "k")) == len(MARKER_PREFIX) + 32


def test_same_key_gives_the_same_job_even_concurrently():
    scheduler = Scheduler()
    submissions = Submissions(scheduler)

    async def main():
        return await asyncio.gather(*(submissions.submit(who("alice"), SYSTEM, SPEC, "key") for _ in range(5)))
    assert set(asyncio.run(main())) == {"1"} and scheduler.submits == [marker_for("alice", "key")]
    assert asyncio.run(submissions.submit(who("bob"), SYSTEM, SPEC, "key")) == "2"  # another user's key


def test_without_a_key_every_call_submits_with_a_fresh_marker():
    scheduler = Scheduler()
    submissions = Submissions(scheduler)
    assert asyncio.run(submissions.submit(who("alice"), SYSTEM, SPEC, None)) == "1"
    assert asyncio.run(submissions.submit(who("alice"), SYSTEM, SPEC, "")) == "2"
    assert len(set(scheduler.submits)) == 2 and all(m.startswith(MARKER_PREFIX) for m in scheduler.submits)
