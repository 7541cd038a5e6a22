"""ops/download: a small file's bytes on the SSH channel's stdout (at most `max_ops_file_size`).

Paramiko channels are binary-safe, so no base64 is needed (FirecREST v2 uses it and loses a quarter
of its size limit to it). The command reads one byte more than allowed, which tells a too-large file
apart; the servicer caps the output above that.
"""

from __future__ import annotations

from services.common.errors import PayloadTooLarge


def command(path: str, max_size: int) -> list[str]:
    """`head -c <max_size + 1> -- <path>`."""
    return ["head", "-c", str(max_size + 1), "--", path]


def parse(stdout: bytes, max_size: int) -> bytes:
    """The file's bytes; 413 when there are more than `max_size`."""
    if len(stdout) > max_size:
        raise PayloadTooLarge("File to download is too large.")
    return stdout
