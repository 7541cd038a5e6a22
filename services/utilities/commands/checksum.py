"""ops/checksum: the SHA-256 of a file, with `sha256sum --zero` (no name escaping in the output)."""

from __future__ import annotations

import re

from firecrest_mesh.utilities.v1 import utilities_pb2

_DIGEST = re.compile(rb"\\?([0-9a-f]{64}) ")


def command(path: str) -> list[str]:
    return ["sha256sum", "--zero", "--", path]


def parse(stdout: bytes) -> utilities_pb2.FileChecksum:
    """The hex digest: the first field of `<digest>  <name>\\0`."""
    m = _DIGEST.match(stdout)
    if not m:
        raise ValueError(f"unexpected sha256sum output: {stdout[:100]!r}")
    return utilities_pb2.FileChecksum(algorithm="SHA256", checksum=m.group(1).decode())
