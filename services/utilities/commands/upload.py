"""ops/upload: a small file's bytes sent on the SSH channel's stdin and written to the target (binary-
safe, no base64). Prints nothing on success; the answer is 204.

The bytes go to a temporary file beside the target, which replaces the target (rename) only once it
holds exactly the bytes sent: an upload cut short (the connection lost, the service or sshd killed,
the remote `timeout` firing) leaves the existing file as it was and no partial file behind. What a
plain `cat > target` did is kept otherwise: a symbolic link is written through (its target is
replaced), a file the user may not write is refused ("Permission denied", 403), a directory is
refused ("Is a directory", 400), a new file gets the mode `cat` would have created it with (0666 less
the umask) and an existing one keeps its mode.
"""

from __future__ import annotations

from services.common.errors import PayloadTooLarge

# Fixed script: the target path and the expected size are its positional parameters $1 and $2, never
# part of the script text. POSIX sh and coreutils only (the login node's /bin/sh may be dash).
_WRITE_STDIN_TO = r'''target=$1 size=$2
if [ -L "$target" ]; then target=$(readlink -f -- "$target") || exit 1; fi
if [ -d "$target" ]; then echo "upload: $target: Is a directory" >&2; exit 1; fi
if [ -e "$target" ] && [ ! -w "$target" ]; then echo "upload: $target: Permission denied" >&2; exit 1; fi
tmp=$(mktemp -- "${target%/*}/.firecrest-upload.XXXXXXXX") || exit 1
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 143' HUP INT TERM
cat > "$tmp" || exit 1
if [ "$(wc -c < "$tmp")" -ne "$size" ]; then echo "upload: the upload was cut short" >&2; exit 1; fi
if [ -e "$target" ]; then chmod --reference="$target" -- "$tmp"
else chmod "$(printf %o $((0666 & ~$(umask))))" -- "$tmp"; fi || exit 1
mv -fT -- "$tmp" "$target" || exit 1
trap - EXIT'''


def command(target: str, data: bytes, max_size: int) -> list[str]:
    """`sh -c <script> sh <target> <size>`, replacing `target` with stdin (`data`, sent by the runner)
    once all of it has arrived; 413 when `data` is larger than `max_size`. `target` is absolute
    (validated by the caller), so its folder is the text before its last slash."""
    if len(data) > max_size:
        raise PayloadTooLarge("File to upload is too large.")
    return ["sh", "-c", _WRITE_STDIN_TO, "sh", target, str(len(data))]
