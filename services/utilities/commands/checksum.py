"""SHA-256 of a file (ops/checksum) with `sha256sum --zero` (no name escaping in the output)."""

from __future__ import annotations

import re

_DIGEST = re.compile(rb"\\?([0-9a-f]{64}) ")


def argv(path: str) -> list[str]:
    return ["sha256sum", "--zero", "--", path]


def parse(stdout: bytes) -> str:
    """The hex digest: the first field of `<digest>  <name>\\0`."""
    m = _DIGEST.match(stdout)
    if not m:
        raise ValueError(f"unexpected sha256sum output: {stdout[:100]!r}")
    return m.group(1).decode()
