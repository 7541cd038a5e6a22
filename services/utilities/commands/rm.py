"""Delete a file or a directory tree (ops/rm), without prompts and without `-f` (so that a missing
path is reported, as 404)."""

from __future__ import annotations


def argv(path: str) -> list[str]:
    return ["rm", "-r", "--interactive=never", "--", path]
