"""Remote command lines: the one choke point where arguments are quoted.

Callers build argument lists; `shell_join` quotes every element, so no user-supplied text is ever
interpreted by the remote shell. Composite lines (pipes, `&&`) are built by joining already-quoted
parts with fixed operators written in code, never with user text.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Sequence


def shell_join(argv: Sequence[str]) -> str:
    """One shell-safe command line from an argument list (every element quoted)."""
    if not argv:
        raise ValueError("empty command")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"argument {arg!r} is not a string")
        if "\x00" in arg:
            raise ValueError("NUL byte in a command argument")
    return " ".join(shlex.quote(a) for a in argv)


def with_timeout(seconds: int, argv: Sequence[str]) -> list[str]:
    """`argv` wrapped in coreutils `timeout`, so the remote process dies on its own (exit 124)."""
    return ["timeout", str(int(seconds)), *argv]


@dataclass(frozen=True)
class CommandResult:
    """What a remote command produced."""

    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    def error_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace").strip()
