"""ops/upload: a small file's bytes sent on the SSH channel's stdin and written to the target (binary-
safe, no base64). Prints nothing on success; the answer is 204."""

from __future__ import annotations

from services.common.errors import PayloadTooLarge

# Fixed script: the target path is its positional parameter $1, never part of the script text.
_WRITE_STDIN_TO = 'cat > "$1"'


def command(target: str, data: bytes, max_size: int) -> list[str]:
    """`sh -c 'cat > "$1"' sh <target>`, replacing `target` with stdin (`data`, sent by the runner);
    413 when `data` is larger than `max_size`."""
    if len(data) > max_size:
        raise PayloadTooLarge("File to upload is too large.")
    return ["sh", "-c", _WRITE_STDIN_TO, "sh", target]
