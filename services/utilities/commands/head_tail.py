"""ops/head and ops/tail: the first or last bytes or lines of a file (`head`, `tail`), answered in a
FileContent frame. One module, as the two commands differ only in which end they read: `tool` is
"head" or "tail".

- head: the first n, or with `skip` (skipTrailing) all but the last n (`head -n -N`);
  positions 0..n, or 0..-n.
- tail: the last n, or with `skip` (skipHeading) everything from the n-th on (`tail -n +N`);
  positions -n..-1, or n..-1.

The count is answered back in the frame, whose positions are 32-bit, so a count must lie in
0..2**31-1 (400 otherwise). That bound costs nothing: reading 2**31-1 lines or bytes already exceeds
the output limit (`max_ops_file_size`) unless the file is smaller, and then any larger count reads the
same.
"""

from __future__ import annotations

from typing import Literal

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.common.errors import BadRequest

Tool = Literal["head", "tail"]
DEFAULT_LINES = 10
MAX_COUNT = 2**31 - 1  # FileContent.start_position / end_position are int32
_SKIP_SIGN = {"head": "-", "tail": "+"}


def amount(num_bytes: int | None, num_lines: int | None) -> tuple[str, int]:
    """("bytes" or "lines", the count) of a request; 400 for both, or for a count out of range."""
    if num_bytes is not None and num_lines is not None:
        raise BadRequest("Only one of `bytes` or `lines` can be specified.")
    if num_bytes is not None:
        unit, n = "bytes", num_bytes
    else:
        unit, n = "lines", DEFAULT_LINES if num_lines is None else num_lines
    if n < 0:
        raise BadRequest(f"`{unit}` must not be negative.")
    if n > MAX_COUNT:
        raise BadRequest(f"`{unit}` must be at most {MAX_COUNT}.")
    return unit, n


def command(tool: Tool, path: str, num_bytes: int | None, num_lines: int | None, skip: bool) -> list[str]:
    """`head|tail -c|-n <count> -- <path>`."""
    unit, n = amount(num_bytes, num_lines)
    count = f"{_SKIP_SIGN[tool]}{n}" if skip else str(n)
    return [tool, "-c" if unit == "bytes" else "-n", count, "--", path]


def parse(tool: Tool, stdout: bytes, num_bytes: int | None, num_lines: int | None,
          skip: bool) -> utilities_pb2.FileContent:
    """The content (invalid UTF-8 replaced) and the positions it covers."""
    unit, n = amount(num_bytes, num_lines)
    if tool == "head":
        start, end = 0, (-n if skip else n)
    else:
        start, end = (n if skip else -n), -1
    return utilities_pb2.FileContent(content=stdout.decode("utf-8", errors="replace"), content_type=unit,
                                     start_position=start, end_position=end)
