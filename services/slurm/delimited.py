"""Records of Slurm's fixed-format outputs whose fields are joined by a random delimiter (`sacct
--parsable2 --delimiter=`, `squeue -O Field:0<delimiter>,...`): the one reader of them.

Free text (job and step names, working directories, comments) may hold any character, `|` and
newlines included. The delimiter is a fresh random string per query (`new_delimiter()`): no text
written before the query can contain it, so splitting the whole output on it gives every field
exactly. A record boundary is the last newline inside the token that joins one record's last field
(free text) to the next record's first (an id, never free text). Each record must have exactly
`len(fields)` fields and an id matching `id_pattern`; when the output does not add up (a name holding
the delimiter), `records()` falls back to a line-by-line reading that keeps only well-formed lines of
ids seen once, so a malformed record can hide a job but never alter another job's fields.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import Counter
from typing import Sequence

log = logging.getLogger(__name__)


def new_delimiter() -> str:
    """A field delimiter no job name can contain (48 random bits; `|` keeps it readable; no `,` or `:`,
    which squeue's `-O` reads as field separator and size)."""
    return f"|{secrets.token_urlsafe(6)}|"


def _record(values: list[str], fields: Sequence[str], id_pattern: re.Pattern) -> dict[str, str] | None:
    if len(values) != len(fields) or not id_pattern.match(values[0]):
        return None
    return dict(zip(fields, values))


def _exact(stdout: str, delimiter: str, fields: Sequence[str], id_pattern: re.Pattern) -> list[dict[str, str]] | None:
    """Every record, split on the delimiter; None when the output does not add up."""
    body = stdout[:-1] if stdout.endswith("\n") else stdout
    if not body:
        return []
    tokens = body.split(delimiter)
    width = len(fields) - 1  # delimiters per record
    if (len(tokens) - 1) % width:
        return None
    records, first = [], tokens[0]
    for start in range(1, len(tokens), width):
        values = [first, *tokens[start:start + width]]
        if start + width < len(tokens):  # the last value holds "last-field\nfirst-field-of-the-next-record"
            last, newline, first = values[-1].rpartition("\n")
            if not newline:
                return None
            values[-1] = last
        record = _record(values, fields, id_pattern)
        if record is None:
            return None
        records.append(record)
    return records


def _line_by_line(stdout: str, delimiter: str, fields: Sequence[str], id_pattern: re.Pattern) -> list[dict[str, str]]:
    """Fallback: well-formed lines only; an id seen twice (a forged line) is dropped altogether."""
    records = [r for r in (_record(line.split(delimiter), fields, id_pattern) for line in stdout.split("\n")) if r]
    seen = Counter(r[fields[0]] for r in records)
    return [r for r in records if seen[r[fields[0]]] == 1]


def records(stdout: str, delimiter: str, fields: Sequence[str], id_pattern: re.Pattern,
            program: str) -> list[dict[str, str]]:
    """The output's records (field name → text), in the output's order."""
    exact = _exact(stdout, delimiter, fields, id_pattern)
    if exact is not None:
        return exact
    kept = _line_by_line(stdout, delimiter, fields, id_pattern)
    log.warning("%s output does not split into records of %d fields; kept %d well-formed lines",
                program, len(fields), len(kept))
    return kept
