"""ops/file: the type of a file as `file` names it.

`-E` makes a missing or unreadable file an error (exit 1) instead of a successful "cannot open"
description; `file` writes that error on stdout, not stderr, so `error_for` reads it there.
"""

from __future__ import annotations

from services.common.errors import ApiError
from services.common.ssh.command import CommandResult
from services.utilities import errors


def command(path: str) -> list[str]:
    return ["file", "-b", "-E", "--", path]


def parse(stdout: bytes) -> str:
    """The description without its newline (`ASCII text`)."""
    return stdout.decode("utf-8", errors="replace").rstrip("\n")


def error_for(result: CommandResult) -> ApiError:
    """`errors.error_for` applied to what `file` printed, wherever it printed it."""
    return errors.error_for(CommandResult(result.exit_status, b"", result.stdout + result.stderr))
