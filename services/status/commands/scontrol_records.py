"""Parser of `scontrol -o show ...` output: one record a line, `Key=Value` pairs.

Values never contain spaces in the partition and reservation records we read, except a few keys
that Slurm prints last or with parentheses; we split on spaces that precede `Key=`.
"""

from __future__ import annotations

import re

_PAIR = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


def parse_records(stdout: str) -> list[dict[str, str]]:
    records = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line or "=" not in line:
            continue
        matches = list(_PAIR.finditer(line))
        record = {}
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
            record[m.group(1)] = line[m.end():end].strip()
        records.append(record)
    return records


def optional(value: str | None) -> str | None:
    """Slurm prints absent values as `(null)`, `N/A` or nothing."""
    return None if value in (None, "", "(null)", "N/A", "n/a") else value
