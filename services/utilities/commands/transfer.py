"""Small direct transfers (ops/download, ops/upload): file bytes on the SSH channel's stdout/stdin.

Paramiko channels are binary-safe, so no base64 is needed (FirecREST v2 uses it and loses a quarter
of its size limit to it).
"""

from __future__ import annotations

from services.common.errors import PayloadTooLarge

# Fixed script: the target path is its positional parameter $1, never part of the script text.
_WRITE_STDIN_TO = 'cat > "$1"'


def download_argv(path: str, max_size: int) -> list[str]:
    """Reads at most `max_size` + 1 bytes: one more than allowed tells a too-large file apart."""
    return ["head", "-c", str(max_size + 1), "--", path]


def check_download(stdout: bytes, max_size: int) -> bytes:
    if len(stdout) > max_size:
        raise PayloadTooLarge("File to download is too large.")
    return stdout


def upload_argv(target: str) -> list[str]:
    """Writes stdin to `target`, replacing it (`sh -c 'cat > "$1"' sh <target>`)."""
    return ["sh", "-c", _WRITE_STDIN_TO, "sh", target]


def check_upload(data: bytes, max_size: int) -> bytes:
    if len(data) > max_size:
        raise PayloadTooLarge("File to upload is too large.")
    return data
