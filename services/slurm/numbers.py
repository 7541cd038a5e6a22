"""Slurm's numbers, the one reader of them, whatever release or output prints them.

- JSON of Slurm 22.05 (openapi v0.0.38, `squeue --json`, `sinfo --json`): plain numbers, or null.
- JSON of 23.02+: `{"set": bool, "infinite": bool, "number": n}`; unset or infinite is no number.
- Text (`scontrol -o`, `sacct --parsable2`): `8`; `UNLIMITED`, `Unknown`, `(null)`, `N/A` or
  nothing is no number.

`number()` gives an int or None and each caller says what "no number" means for its field (`or 0` for
a count, None for a time not reached yet). Used by every parser of the package.
"""

from __future__ import annotations

import re

INFINITE32 = 0xFFFFFFFF  # Slurm's INFINITE / NO_VAL sentinels in 32-bit fields
NO_VAL32 = 0xFFFFFFFE

_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.\d+)?$")  # [D-][HH:]MM:SS[.mmm]


def number(value) -> int | None:
    """An integer from a Slurm number (plain JSON, {"set","infinite","number"} or text), or None."""
    if type(value) is str and value.isdecimal():  # the common text case first: lists of thousands of jobs
        return int(value)
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def epoch(value) -> int | None:
    """Epoch seconds; Slurm's 0 ("not yet") becomes None."""
    n = number(value)
    return n if n else None


def limit_seconds(minutes) -> int | None:
    """A Slurm time limit in minutes as seconds; None when unlimited or unset."""
    n = number(minutes)
    if n is None or n >= NO_VAL32:
        return None
    return n * 60


def duration_seconds(value: str) -> int | None:
    """Seconds of a `[D-][HH:]MM:SS` duration (sacct's `Suspended`), or None."""
    if value == "00:00:00":  # nearly every job: never suspended
        return 0
    m = _DURATION.match(value)
    if not m:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def wait_status(raw: int | None) -> tuple[int | None, int | None]:
    """(exit code, signal) from squeue's raw wait status, as sacct's ExitCode `code:signal` does."""
    if raw is None:
        return None, None
    if raw & 0x7F:
        return 0, raw & 0x7F
    return (raw >> 8) & 0xFF, 0


def exit_pair(text_value: str) -> tuple[int | None, int | None]:
    """(exit code, signal) from sacct's `ExitCode` text `3:0`."""
    code, sep, signal = text_value.partition(":")
    try:
        return int(code), int(signal) if sep else 0
    except ValueError:
        return None, None
