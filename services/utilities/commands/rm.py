"""ops/rm: delete a file or a directory tree, without prompts and without `-f` (so that a missing
path is reported, as 404). Prints nothing on success; the answer is 204."""

from __future__ import annotations


def command(path: str) -> list[str]:
    return ["rm", "-r", "--interactive=never", "--", path]
