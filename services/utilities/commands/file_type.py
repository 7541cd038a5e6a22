"""The type of a file as `file` names it (ops/file). `-E` makes a missing or unreadable file an
error (exit 1 with the reason on stderr) instead of a successful "cannot open" description."""

from __future__ import annotations


def argv(path: str) -> list[str]:
    return ["file", "-b", "-E", "--", path]


def parse(stdout: bytes) -> str:
    return stdout.decode("utf-8", errors="replace").rstrip("\n")
