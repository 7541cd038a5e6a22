"""The one reader of `scontrol -o show ...` records (jobs, partitions, reservations): one record a
line of `Key=Value` pairs. Used by `scontrol_job`, `scontrol_partitions`, `scontrol_reservations`.

Slurm 22.05's scontrol has no JSON output. Values may hold spaces (a reservation called `gpu week`, a
job's stream paths) and free text may hold `Key=`-like text (a job name is anything its owner wrote).
A line is read in two steps:
- the `trailing` keys a caller names, which Slurm prints last in the record (a job's `WorkDir= StdErr=
  StdIn= StdOut= Power=`), are cut from the right at the last occurrence of each: text earlier in
  the line cannot shift them, and they are read from there only;
- the rest splits before every `Key=` that follows whitespace.
"""

from __future__ import annotations

import re
from typing import Sequence

_PAIR = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")
_ABSENT = (None, "", "(null)", "N/A", "n/a")


def _cut_trailing(line: str, keys: Sequence[str]) -> tuple[str, dict[str, str]]:
    """(what precedes the trailing fields, the trailing fields), cutting from the right."""
    fields: dict[str, str] = {}
    rest = line
    for key in reversed(keys):
        cut = rest.rfind(f" {key}=")
        if cut < 0:
            continue
        fields[key] = rest[cut + len(key) + 2:].strip()
        rest = rest[:cut]
    return rest, fields


def record(line: str, trailing: Sequence[str] = ()) -> dict[str, str]:
    """The fields of one record; `trailing` keys only ever come from the end of the line."""
    rest, fields = _cut_trailing(line.strip(), trailing)
    matches = list(_PAIR.finditer(rest))
    head: dict[str, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(rest)
        if m.group(1) not in fields and m.group(1) not in trailing:
            head[m.group(1)] = rest[m.end():end].strip()
    return {**head, **fields}


def records(stdout: str, trailing: Sequence[str] = ()) -> list[dict[str, str]]:
    """Every record of the output; lines without `=` ("No reservations in the system") are skipped."""
    return [record(line, trailing) for line in stdout.splitlines() if "=" in line]


def optional(value: str | None) -> str | None:
    """Slurm prints absent values as `(null)`, `N/A` or nothing."""
    return None if value in _ABSENT else value
