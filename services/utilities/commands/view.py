"""ops/view: a byte range of a file as text, read with `dd` in byte units."""

from __future__ import annotations

from services.common.errors import ApiError, BadRequest
from services.common.ssh.command import CommandResult
from services.utilities import errors


def command(path: str, size: int | None, offset: int | None, max_size: int) -> list[str]:
    """`dd` reading `size` bytes (default and maximum `max_size`) from `offset` (default 0)."""
    size = max_size if size is None else size
    offset = 0 if offset is None else offset
    if size <= 0:
        raise BadRequest("`size` must be greater than 0.")
    if size > max_size:
        raise BadRequest(f"`size` cannot be greater than {max_size} bytes.")
    if offset < 0:
        raise BadRequest("`offset` must not be negative.")
    # `if=` takes the rest of the argument verbatim, so the path needs no `--`.
    return ["dd", f"if={path}", "iflag=skip_bytes,count_bytes,fullblock", f"skip={offset}",
            f"count={size}", f"bs={min(size, 1 << 20)}", "status=none"]


def parse(stdout: bytes) -> str:
    """The bytes read, as text (invalid UTF-8 replaced)."""
    return stdout.decode("utf-8", errors="replace")


def error_for(result: CommandResult) -> ApiError:
    """`errors.error_for`, except that dd unable to seek to `offset` (past the largest file size the
    filesystem supports, or past the end of an unseekable file) is the caller's offset out of range:
    a 400 rather than dd's 500."""
    error = errors.error_for(result)
    if error.http_status == 500 and "cannot skip" in error.message:
        return BadRequest(f"`offset` is out of range for this file ({error.message}).")
    return error
