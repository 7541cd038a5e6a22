"""`EndedJobs`: which jobs have ended, so that their later queries skip `squeue`.

A job's query asks the controller first (squeue) and accounting (sacct) only when the job has ended.
An ended job stays ended: asking squeue about it again is a wasted round trip (about 15 ms here)
before the sacct that answers. `SlurmScheduler` records a job here once accounting has answered it
as ended, and sends its later queries straight to accounting. The one way back is an operator's
`scontrol requeue` of an ended job the controller still holds: accounting then shows the job pending
again (after its usual lag of a second or so), and the scheduler forgets the job and asks both.

What is remembered is a fact about a job id, not an answer: every query still runs sacct as its
caller. Entries are bounded in number and age, because job ids can be reused once the controller's
counter wraps or its state is reset (a fresh StateSaveLocation restarts at FirstJobId).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

MAX_ENTRIES = 16384
MAX_AGE_SECONDS = 3600.0


class EndedJobs:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max_entries = max_entries
        self._max_age = max_age
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, system: str, job_id: str) -> None:
        """Records that the job `job_id` of `system` has ended."""
        key = (system, job_id)
        self._entries[key] = self._clock()
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def discard(self, system: str, job_id: str) -> None:
        self._entries.pop((system, job_id), None)

    def __contains__(self, key: tuple[str, str]) -> bool:
        recorded = self._entries.get(key)
        if recorded is None:
            return False
        if self._clock() - recorded > self._max_age:
            del self._entries[key]
            return False
        return True
