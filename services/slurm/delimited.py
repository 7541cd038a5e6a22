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


class RecordReader:
    """The exact reading of `_exact`, fed the output piece by piece as it arrives (`feed`), then told
    it has ended (`finish`): sacct's output of thousands of jobs is read while the rest still comes.

    A token (the text between two delimiters) is complete once the next delimiter has arrived; a
    record is complete with its first token and `len(fields) - 1` more, the last of which holds its
    last field, a newline and the next record's first field. The output's final token (the last
    field of the last record) is only known to be whole at `finish()`.
    """

    def __init__(self, delimiter: str, fields: Sequence[str], id_pattern: re.Pattern):
        self._delimiter, self._fields, self._id_pattern = delimiter, fields, id_pattern
        self._width = len(fields) - 1  # delimiters per record
        self._first: str | None = None  # first field of the record being read; None before the first token
        self._tokens: list[str] = []  # complete tokens after it
        self._tail = ""  # text after the last delimiter (a token that may continue)
        self.failed = False  # the output does not add up (finish() says None)

    def feed(self, text: str) -> list[dict[str, str]]:
        """The records completed by `text` (the next piece of the output), in order."""
        if self.failed:
            return []
        pieces = (self._tail + text).split(self._delimiter)
        self._tail = pieces.pop()
        if self._first is None:
            if not pieces:
                return []
            self._first, pieces = pieces[0], pieces[1:]
        tokens = self._tokens + pieces if self._tokens else pieces
        width, records = self._width, []
        complete = len(tokens) - len(tokens) % width
        for start in range(0, complete, width):
            values = [self._first, *tokens[start:start + width]]
            last, newline, self._first = values[-1].rpartition("\n")  # this record's end, the next's start
            values[-1] = last
            record = _record(values, self._fields, self._id_pattern) if newline else None
            if record is None:
                self.failed = True
                return records
            records.append(record)
        self._tokens = tokens[complete:]
        return records

    def finish(self) -> list[dict[str, str]] | None:
        """The last record (none for an output without a delimiter), once everything was fed; None
        when the output does not add up."""
        if self.failed:
            return None
        if self._first is None:
            return []
        last = self._tail[:-1] if self._tail.endswith("\n") else self._tail
        record = _record([self._first, *self._tokens, last], self._fields, self._id_pattern)
        return None if record is None else [record]


def _exact(stdout: str, delimiter: str, fields: Sequence[str], id_pattern: re.Pattern) -> list[dict[str, str]] | None:
    """Every record, split on the delimiter; None when the output does not add up."""
    reader = RecordReader(delimiter, fields, id_pattern)
    records = reader.feed(stdout)
    last = reader.finish()
    return None if last is None else records + last


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
