"""FirecREST v2's mapping of a failed filesystem command to the error its caller gets.

`error_for` is what the utilities servicer hands `CommandRunner.run` (services/common/ssh/runner.py)
for every command; a command whose failures read differently wraps it in its own module (`file`
reports errors on stdout, `view` turns dd's "cannot skip" into a 400).

The HTTP status depends on the exit status and stderr, in FirecREST v2's order
(`BaseCommandErrorHandling`): exit 124 is the remote `timeout` firing (408); then the first stderr
substring of `STDERR_ERRORS` that matches; else 500. The table extends v2's with the errors a request
causes by naming the wrong kind of file (a directory to read, a file as a directory, a too-long
name...), which are 400s rather than 500s.
"""

from __future__ import annotations

from services.common.errors import ApiError, BadRequest, Forbidden, InternalError, NotFound, RequestTimeout
from services.common.ssh.command import CommandResult

TIMED_OUT = 124  # coreutils `timeout`'s exit status when it killed the command

# stderr substring → error class, checked in this order after exit status 124.
STDERR_ERRORS: tuple[tuple[str, type[ApiError]], ...] = (
    ("No such file or directory", NotFound),
    ("Permission denied", Forbidden),
    ("Operation not permitted", Forbidden),
    ("File exists", BadRequest),
    ("invalid user", BadRequest),
    # The request names something that cannot be what the operation needs: 400 rather than 500.
    ("invalid group", BadRequest),
    ("Not a directory", BadRequest),
    ("Is a directory", BadRequest),
    ("File name too long", BadRequest),
    ("Too many levels of symbolic links", BadRequest),
    ("No such device or address", BadRequest),
    ("refusing to remove", BadRequest),  # rm of a path ending in `.`
)


def error_for(result: CommandResult) -> ApiError:
    """The ApiError FirecREST v2 answers for a failed remote command."""
    rc = result.exit_status
    stderr = result.error_text()
    message = f"Remote process failed with exit status:{rc}"
    if stderr:
        message += f" and error message:{stderr}"
    if rc == TIMED_OUT:
        return RequestTimeout(message)
    for needle, error in STDERR_ERRORS:
        if needle in stderr:
            return error(message)
    return InternalError(message)
