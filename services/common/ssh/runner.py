"""The one remote-command runner: an argument list, run as the caller under coreutils `timeout`, its
failure mapped by the command's own rules.

Every service runs remote commands through `CommandRunner`: it quotes every argument at the one choke
point (`shell_join`), wraps each command in `timeout <seconds>` so a stuck process dies on the system
(exit 124 → 408) while the SSH channel stays usable, gives the SSH side a fixed grace beyond that so
the remote timeout fires first, and refuses command lines longer than sshd passes on. What counts as
a failure and which error it becomes belongs to the command's module (`failed`, `error_for`).

A caller declares a command `idempotent=True` when running it twice does no harm (reads: ls, stat,
head, checksum, squeue, sacct, scontrol show, id, getent...): if its SSH channel ends without an exit
status the pool runs it again. Anything that changes state (sbatch, scancel, writes, uploads) keeps
the default False and is reported as an unknown outcome instead (services/common/ssh/retry.py).
"""

from __future__ import annotations

from typing import Callable, Sequence

from services.common.config import SystemConfig
from services.common.errors import ApiError, BadRequest
from services.common.identity import Caller
from services.common.ssh.command import CommandResult, shell_join, with_timeout
from services.common.ssh.pool import SshPool

# The SSH deadline is the remote `timeout` plus this: the remote side normally gives up first.
SSH_GRACE_SECONDS = 3
# sshd runs the command line as one argument of the user's shell (`sh -c <line>`), which Linux limits
# to 128 KiB; longer lines are refused before they reach the system.
MAX_COMMAND_LINE = 64 * 1024

FailureTest = Callable[[CommandResult], bool]
ErrorMapper = Callable[[CommandResult], ApiError]


def exited_non_zero(result: CommandResult) -> bool:
    return not result.ok


def checked_length(line: str) -> str:
    """`line`, or 400 when it is longer than a remote command line may be (MAX_COMMAND_LINE)."""
    if len(line.encode("utf-8", errors="surrogatepass")) > MAX_COMMAND_LINE:
        raise BadRequest(f"The request's parameters are too long (more than {MAX_COMMAND_LINE} bytes "
                         f"in the command they make).")
    return line


def command_line(seconds: int, argvs: Sequence[Sequence[str]]) -> str:
    """One remote line: each argv quoted and wrapped in `timeout seconds`, chained with `&&`."""
    return checked_length(" && ".join(shell_join(with_timeout(seconds, argv)) for argv in argvs))


class CommandRunner:
    """Runs argument lists on a system as a verified caller over the service's SSH pool."""

    def __init__(self, pool: SshPool):
        self.pool = pool

    async def execute(self, caller: Caller, system: SystemConfig, *argvs: Sequence[str], timeout: int,
                      stdin: bytes | None = None, max_output: int | None = None,
                      idempotent: bool = False, stdout_sink=None) -> CommandResult:
        """The result of `argvs` (chained with `&&`), whatever its exit status. `stdout_sink` sees the
        output as it arrives (`SshPool.run`)."""
        line = command_line(timeout, argvs)
        return await self.pool.run(caller, system, line, stdin=stdin, timeout=timeout + SSH_GRACE_SECONDS,
                                   max_output=max_output, idempotent=idempotent, stdout_sink=stdout_sink)

    async def run(self, caller: Caller, system: SystemConfig, *argvs: Sequence[str], timeout: int,
                  error_for: ErrorMapper, failed: FailureTest = exited_non_zero,
                  stdin: bytes | None = None, max_output: int | None = None,
                  idempotent: bool = False, stdout_sink=None) -> CommandResult:
        """The result of `argvs` when it succeeded; otherwise raises `error_for(result)`."""
        result = await self.execute(caller, system, *argvs, timeout=timeout, stdin=stdin, max_output=max_output,
                                    idempotent=idempotent, stdout_sink=stdout_sink)
        if failed(result):
            raise error_for(result)
        return result
