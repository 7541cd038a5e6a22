"""`eventually`: poll a condition up to a bound, for tests of every kind that wait on the real stack
(a metric scraped, a process restarted, a log line flushed). The bound is never what a test asserts."""

from __future__ import annotations

import time


def eventually(check, timeout: float = 60.0, interval: float = 0.2):
    """Polls `check` every `interval` s until it returns a truthy value, or returns its last value once
    `timeout` passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
