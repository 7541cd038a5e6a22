"""The remote commands of direct streaming (UploadStream, DownloadStream, GetUploadStreamStatus): fixed
POSIX sh scripts whose paths and numbers are positional parameters (never part of the script text;
`shell_join` quotes them), what they print, and how their failures become API errors.

Upload: the bytes are appended to `<dir>/.<name>.firecrest-partial` (a link as target resolved
first), under an exclusive `flock` on it (one upload per target); offset 0 empties it, any other
offset must equal its size. The script prints `ready` once the checks passed, then copies its input.
At EOF it checks the declared size, computes the partial's SHA-256 (resumed bytes included), checks
the declared digest, and only then renames the partial over the target (`mv -fT`; an existing
target's mode is kept) and prints `<size> <sha256>`. Killed before that (the stream cut), the partial
stays for a resume and the target is untouched.

Download: the file's size and SHA-256 first (`<size> <sha256>` on a line), then its bytes from the
offset (`tail -c +N`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import grpc

from services.common.errors import ApiError, BadRequest
from services.common.ssh.command import CommandResult
from services.utilities import errors as file_errors

PARTIAL_SUFFIX = ".firecrest-partial"
READY = b"ready\n"
# Exit statuses of the scripts' own refusals.
BEYOND_END, BUSY, OFFSET_MISMATCH, TOO_SHORT, TOO_LONG, DIGEST_MISMATCH = 74, 75, 76, 77, 78, 79
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_RESULT = re.compile(rb"^(\d+) ([0-9a-f]{64})\n$")
# How long an upload waits for the lock of its partial (a cut upload's process being stopped, a status
# probe holding it for a moment) before it answers 409.
LOCK_WAIT_SECONDS = 5

_RESOLVE = r'''if [ -L "$target" ]; then target=$(readlink -f -- "$target") || exit 1; fi
partial="${target%/*}/.${target##*/}.firecrest-partial"
if [ ! -d "${target%/*}/" ]; then echo "${target%/*}: No such file or directory" >&2; exit 1; fi
if [ ! -x "${target%/*}/" ]; then echo "${target%/*}: Permission denied" >&2; exit 1; fi
'''

_UPLOAD = r'''target=$1 offset=$2 want_sum=$3 want_size=$4
''' + _RESOLVE + r'''if [ -d "$target" ]; then echo "upload: $target: Is a directory" >&2; exit 1; fi
if [ -e "$target" ] && [ ! -w "$target" ]; then echo "upload: $target: Permission denied" >&2; exit 1; fi
exec 9>>"$partial" || exit 1
flock -w ''' + str(LOCK_WAIT_SECONDS) + r''' 9 || { echo "upload: another upload to $target is in progress" >&2; exit 75; }
if [ "$offset" -eq 0 ]; then : > "$partial" || exit 1; fi
have=$(stat -c %s -- "$partial") || exit 1
if [ "$have" -ne "$offset" ]; then
  echo "upload: $have bytes of this upload have arrived: resume from offset $have, or start over from offset 0" >&2
  exit 76
fi
trap 'exit 143' HUP INT TERM
echo ready
cat >&9 || exit 1
have=$(stat -c %s -- "$partial") || exit 1
if [ -n "$want_size" ] && [ "$have" -lt "$want_size" ]; then
  echo "upload: $have of $want_size bytes have arrived: resume from offset $have" >&2; exit 77
fi
if [ -n "$want_size" ] && [ "$have" -gt "$want_size" ]; then
  rm -f -- "$partial"; echo "upload: $have bytes arrived, more than the declared $want_size: nothing was written" >&2; exit 78
fi
sum=$(sha256sum < "$partial") || exit 1
sum=${sum%% *}
if [ -n "$want_sum" ] && [ "$sum" != "$want_sum" ]; then
  rm -f -- "$partial"
  echo "upload: the SHA-256 of the $have bytes that arrived is $sum, not the declared $want_sum: nothing was written" >&2
  exit 79
fi
if [ -e "$target" ]; then chmod --reference="$target" -- "$partial" || exit 1; fi
mv -fT -- "$partial" "$target" || exit 1
echo "$have $sum"'''

_STATUS = r'''target=$1
''' + _RESOLVE + r'''size=0 busy=0
if [ -e "$partial" ]; then
  size=$(stat -c %s -- "$partial") || exit 1
  flock -n -s "$partial" true || busy=1
fi
printf '%s\0%s\0%s\0' "$size" "$busy" "$partial"'''

_DOWNLOAD = r'''path=$1 offset=$2
if [ ! -e "$path" ]; then echo "download: $path: No such file or directory" >&2; exit 1; fi
if [ -d "$path" ]; then echo "download: $path: Is a directory" >&2; exit 1; fi
exec 8< "$path" || exit 1
size=$(stat -L -c %s -- "$path") || exit 1
if [ "$offset" -gt "$size" ]; then echo "download: offset $offset is beyond the end of the file ($size bytes)" >&2; exit 74; fi
sum=$(sha256sum <&8) || exit 1
exec 8<&-
echo "$size ${sum%% *}"
exec tail -c +$((offset + 1)) -- "$path"'''


class Conflict(ApiError):
    """409: the request clashes with an upload's state (another upload running, a wrong offset)."""
    http_status = 409
    grpc_code = grpc.StatusCode.ABORTED


@dataclass(frozen=True)
class FileDigest:
    """A file's size and SHA-256 (hex), as the system computed them."""
    size: int
    sha256: str


@dataclass(frozen=True)
class PartialStatus:
    """The partial file of an upload: its path, its size, whether an upload holds it now."""
    path: str
    size: int
    in_progress: bool


def checked_offset(offset: int) -> int:
    if offset < 0:
        raise BadRequest("The offset must not be negative.")
    return offset


def checked_sha256(value: str) -> str:
    """The declared digest in lower case ("" when none); 400 unless 64 hex digits."""
    if value and not _SHA256.match(value):
        raise BadRequest("The sha256 parameter must be 64 hexadecimal digits.")
    return value.lower()


def upload_command(target: str, offset: int, sha256: str, size: int | None) -> list[str]:
    if size is not None and size < 0:
        raise BadRequest("The size must not be negative.")
    return ["sh", "-c", _UPLOAD, "sh", target, str(checked_offset(offset)), checked_sha256(sha256),
            "" if size is None else str(size)]


def status_command(target: str) -> list[str]:
    return ["sh", "-c", _STATUS, "sh", target]


def download_command(path: str, offset: int) -> list[str]:
    return ["sh", "-c", _DOWNLOAD, "sh", path, str(checked_offset(offset))]


def parse_digest(line: bytes) -> FileDigest:
    """`<size> <sha256>\\n` (the upload's last line, the download's first)."""
    m = _RESULT.match(line)
    if not m:
        raise ValueError(f"unexpected digest line: {line[:200]!r}")
    return FileDigest(int(m.group(1)), m.group(2).decode())


def parse_status(stdout: bytes) -> PartialStatus:
    """`<size>\\0<busy>\\0<partial path>\\0`."""
    parts = stdout.split(b"\0")
    if len(parts) != 4 or parts[3] != b"":
        raise ValueError(f"unexpected status output: {stdout[:200]!r}")
    return PartialStatus(parts[2].decode("utf-8", errors="surrogateescape"), int(parts[0]), parts[1] == b"1")


def error_for(result: CommandResult) -> ApiError:
    """The scripts' own refusals by exit status (their message as is); the rest as the utilities
    service maps a failed file command ("Permission denied" 403, "No such file" 404, ...)."""
    message = result.error_text().removeprefix("upload: ").removeprefix("download: ")
    if result.exit_status in (BUSY, OFFSET_MISMATCH):
        return Conflict(message)
    if result.exit_status in (BEYOND_END, TOO_SHORT, TOO_LONG, DIGEST_MISMATCH):
        return BadRequest(message)
    return file_errors.error_for(result)
