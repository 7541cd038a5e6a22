"""Idempotent submission: a submit that carries an `Idempotency-Key` creates at most one job.

The caller's key becomes a marker (`firecrest-mesh:` + a hash of user and key) that the scheduler
records with the job (Slurm: `--comment`); a retry with the same key finds that job instead of
submitting again, for as long as the scheduler still holds the job. Concurrent calls with the same key
run one after the other (striped locks, per process). Without a key every submission gets a fresh
marker, which still lets the scheduler resolve its own ambiguous outcome (a timed-out sbatch).
Called by the compute servicer.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from services.common.config import SystemConfig
from services.common.identity import Caller
from services.compute.scheduler import JobSpec, Scheduler

MARKER_PREFIX = "firecrest-mesh:"


def marker_for(username: str, key: str) -> str:
    """The marker of the user's submissions with `key`: same user + same key → same marker."""
    return MARKER_PREFIX + hashlib.sha256(f"{username}\0{key}".encode()).hexdigest()[:32]


class Submissions:
    def __init__(self, scheduler: Scheduler, stripes: int = 64):
        self._scheduler = scheduler
        self._locks = [asyncio.Lock() for _ in range(stripes)]

    async def submit(self, who: Caller, system: SystemConfig, spec: JobSpec, key: str | None) -> str:
        """The job id: of a new job, or of the one an earlier call with the same key submitted."""
        if not key:
            return await self._scheduler.submit(who, system, spec, MARKER_PREFIX + uuid.uuid4().hex)
        marker = marker_for(who.username, key)
        async with self._locks[int(marker[-8:], 16) % len(self._locks)]:
            job_id = await self._scheduler.find_by_marker(who, system, marker)
            if job_id is None:
                job_id = await self._scheduler.submit(who, system, spec, marker)
        return job_id
