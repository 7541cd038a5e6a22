"""`head` and `tail` of a file, by bytes or lines (ops/head, ops/tail).

The count is answered back in the FileContent frame, whose positions are 32-bit, so a count must lie
in 0..2**31-1 (400 otherwise). That bound costs nothing: reading 2**31-1 lines or bytes already exceeds
the output limit (`max_ops_file_size`) unless the file is smaller, and then any larger count reads the
same.
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.common.errors import BadRequest

DEFAULT_LINES = 10
MAX_COUNT = 2**31 - 1  # FileContent.start_position / end_position are int32


def _amount(num_bytes: int | None, num_lines: int | None) -> tuple[str, int]:
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


def head_argv(path: str, num_bytes: int | None, num_lines: int | None,
              skip_trailing: bool) -> tuple[list[str], utilities_pb2.FileContent]:
    """The `head` command and the FileContent frame (without content) it answers with."""
    unit, n = _amount(num_bytes, num_lines)
    flag = "-c" if unit == "bytes" else "-n"
    count = f"-{n}" if skip_trailing else str(n)
    frame = utilities_pb2.FileContent(content_type=unit, start_position=0,
                                      end_position=-n if skip_trailing else n)
    return ["head", flag, count, "--", path], frame


def tail_argv(path: str, num_bytes: int | None, num_lines: int | None,
              skip_heading: bool) -> tuple[list[str], utilities_pb2.FileContent]:
    """The `tail` command and the FileContent frame (without content) it answers with."""
    unit, n = _amount(num_bytes, num_lines)
    flag = "-c" if unit == "bytes" else "-n"
    count = f"+{n}" if skip_heading else str(n)
    frame = utilities_pb2.FileContent(content_type=unit, start_position=n if skip_heading else -n,
                                      end_position=-1)
    return ["tail", flag, count, "--", path], frame


def parse(stdout: bytes, frame: utilities_pb2.FileContent) -> utilities_pb2.FileContent:
    result = utilities_pb2.FileContent()
    result.CopyFrom(frame)
    result.content = stdout.decode("utf-8", errors="replace")
    return result
