"""ops/chmod: `chmod`, then the file's new `ls -l` entry (`find`, format in `entries`).

The mode is checked against GNU chmod's grammar before anything runs: chmod itself would answer an
invalid mode with a 500, and an operand starting with `-` must not become an option.
"""

from __future__ import annotations

import re

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.common.errors import BadRequest
from services.utilities.commands import entries

# GNU chmod's MODE: one octal number (at most 07777, optionally after one of `-+=`), or a
# comma-separated list of symbolic clauses such as `u+x`, `go=r`, `a-wX`, `g=u`, `+t`.
_SYMBOLIC = r"[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+"
MODE_RE = re.compile(rf"[-+=]?0*[0-7]{{1,4}}|{_SYMBOLIC}(?:,{_SYMBOLIC})*")
MAX_MODE_LENGTH = 256


def valid_mode(mode: str) -> str:
    """`mode` when GNU chmod accepts it as a mode, else 400 (chmod itself would fail with a 500)."""
    if not mode:
        raise BadRequest("The `mode` parameter is required.")
    if len(mode) > MAX_MODE_LENGTH or not MODE_RE.fullmatch(mode):
        raise BadRequest(f"Invalid `mode` {mode[:MAX_MODE_LENGTH]!r}: expected an octal mode such as 755 "
                         f"or symbolic modes such as u+x,go-w.")
    return mode


def command(path: str, mode: str) -> list[list[str]]:
    """`chmod -- <mode> <path>`, then `find` describing `path` (chained with `&&`)."""
    return [["chmod", "--", valid_mode(mode), path], entries.describe(path)]


def parse(stdout: bytes, path: str) -> utilities_pb2.File:
    """The changed file's entry, named `path`."""
    return entries.single(stdout, path)
