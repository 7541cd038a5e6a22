"""ops/compress: a tar archive of a file or directory, optionally of only the files whose path
matches a regular expression (`find -regex`). Prints nothing on success; the answer is 204.
`compression_flags` is shared with `extract`."""

from __future__ import annotations

import posixpath

from services.common.errors import BadRequest

COMPRESSION_FLAGS = {"gzip": ["-z"], "bzip2": ["-j"], "xz": ["-J"], "none": []}
MAX_MATCH_PATTERN = 4096

# Fixed script for a match pattern: $1 directory, $2 regex, $3 archive, then the tar flags.
# Names come from `find .`, so they start with `./` and tar never mistakes one for an option.
_MATCHING = ('dir=$1 regex=$2 archive=$3; shift 3; cd -- "$dir" && '
             'find . -type f -regex "$regex" -print0 | tar -c "$@" -f "$archive" --null --files-from=-')


def compression_flags(compression: str) -> list[str]:
    """tar's flag for `compression` (default gzip); 400 for an unknown one."""
    try:
        return COMPRESSION_FLAGS[compression or "gzip"]
    except KeyError:
        raise BadRequest(f"Unsupported compression {compression!r}: expected one of "
                         f"{', '.join(COMPRESSION_FLAGS)}.") from None


def _pattern(match_pattern: str) -> str:
    if "\x00" in match_pattern or len(match_pattern) > MAX_MATCH_PATTERN:
        raise BadRequest(f"Invalid `matchPattern`: it must be at most {MAX_MATCH_PATTERN} characters "
                         f"without NUL bytes.")
    return match_pattern


def command(source: str, target: str, match_pattern: str = "", dereference: bool = False,
            compression: str = "gzip") -> list[str]:
    """`tar -c` of `source` into `target`, entries relative to the source's parent (or, with a
    `match_pattern`, the fixed `find | tar` script, entries relative to `source`)."""
    flags = compression_flags(compression) + (["--dereference"] if dereference else [])
    if match_pattern:
        return ["sh", "-c", _MATCHING, "sh", source, _pattern(match_pattern), target, *flags]
    stripped = source.rstrip("/") or "/"
    parent, name = posixpath.split(stripped)
    if not name:
        raise BadRequest("Cannot compress the root directory.")
    return ["tar", "-c", *flags, "-f", target, "-C", parent or "/", "--", name]
