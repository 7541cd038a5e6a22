"""Running one filesystem command as the caller, and FirecREST v2's mapping of its failure.

Every command is wrapped in coreutils `timeout <command_execution>` on the system (exit 124 → 408);
the SSH call itself gets a little more time so that the remote timeout normally fires first.
A failed command becomes an ApiError whose HTTP status depends on its exit status and stderr, in
FirecREST v2's order (`BaseCommandErrorHandling`), extended with the errors a request can cause by
naming the wrong kind of file (a directory to read, a file as a directory, a too-long name...), which
are 400s rather than 500s.
"""

from __future__ import annotations

from typing import Sequence

from services.common.config import SystemConfig
from services.common.errors import ApiError, BadRequest, Forbidden, InternalError, NotFound, RequestTimeout
from services.common.identity import Caller
from services.common.ssh.command import CommandResult, shell_join, with_timeout
from services.common.ssh.pool import SshPool

SSH_GRACE_SECONDS = 2

# stderr substring → error class, checked in this order after exit status 124.
_STDERR_ERRORS: tuple[tuple[str, type[ApiError]], ...] = (
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
# sshd runs the command line as one argument of the user's shell (`sh -c <line>`), which Linux limits
# to 128 KiB; longer lines are refused before they reach the system.
MAX_COMMAND_LINE = 64 * 1024


def command_line(system: SystemConfig, *argvs: Sequence[str]) -> str:
    """One remote command line: each argv quoted and wrapped in `timeout`, chained with `&&`."""
    seconds = system.ssh.timeouts.command_execution
    line = " && ".join(shell_join(with_timeout(seconds, argv)) for argv in argvs)
    if len(line.encode("utf-8", errors="surrogatepass")) > MAX_COMMAND_LINE:
        raise BadRequest(f"The request's parameters are too long (more than {MAX_COMMAND_LINE} bytes "
                         f"in the command they make).")
    return line


def error_for(result: CommandResult) -> ApiError:
    """The ApiError FirecREST v2 answers for a failed remote command."""
    rc = result.exit_status
    stderr = result.error_text()
    message = f"Remote process failed with exit status:{rc}"
    if stderr:
        message += f" and error message:{stderr}"
    if rc == 124:
        return RequestTimeout(message)
    for needle, error in _STDERR_ERRORS:
        if needle in stderr:
            return error(message)
    return InternalError(message)


async def run(pool: SshPool, caller: Caller, system: SystemConfig, line: str, *,
              errors_on_stdout: bool = False,
              stdin: bytes | None = None, max_output: int | None = None) -> CommandResult:
    """Runs the quoted command `line`; returns its result when it succeeded, raises otherwise.

    `max_output` defaults to the system's `max_ops_file_size` (413 when stdout or stderr reach it).
    `errors_on_stdout`: the command reports failures on stdout (e.g. `file -E`), not on stderr.
    """
    result = await pool.run(caller, system, line, stdin=stdin,
                            timeout=system.ssh.timeouts.command_execution + SSH_GRACE_SECONDS,
                            max_output=max_output or system.max_ops_file_size)
    if not result.ok:
        if errors_on_stdout:
            result = CommandResult(result.exit_status, b"", result.stdout + result.stderr)
        raise error_for(result)
    return result
