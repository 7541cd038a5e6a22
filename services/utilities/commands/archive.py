"""tar archives: compress (ops/compress) and extract (ops/extract)."""

from __future__ import annotations

import posixpath

from services.common.errors import BadRequest

COMPRESSION_FLAGS = {"gzip": ["-z"], "bzip2": ["-j"], "xz": ["-J"], "none": []}

# Fixed script for a match pattern: $1 directory, $2 regex, $3 archive, then the tar flags.
# Names come from `find .`, so they start with `./` and tar never mistakes one for an option.
_MATCHING = ('dir=$1 regex=$2 archive=$3; shift 3; cd -- "$dir" && '
             'find . -type f -regex "$regex" -print0 | tar -c "$@" -f "$archive" --null --files-from=-')


def _flags(compression: str) -> list[str]:
    try:
        return COMPRESSION_FLAGS[compression or "gzip"]
    except KeyError:
        raise BadRequest(f"Unsupported compression {compression!r}: expected one of "
                         f"{', '.join(COMPRESSION_FLAGS)}.") from None


MAX_MATCH_PATTERN = 4096


def _pattern(match_pattern: str) -> str:
    if "\x00" in match_pattern or len(match_pattern) > MAX_MATCH_PATTERN:
        raise BadRequest(f"Invalid `matchPattern`: it must be at most {MAX_MATCH_PATTERN} characters "
                         f"without NUL bytes.")
    return match_pattern


def compress_argv(source: str, target: str, match_pattern: str = "", dereference: bool = False,
                  compression: str = "gzip") -> list[str]:
    flags = _flags(compression) + (["--dereference"] if dereference else [])
    if match_pattern:
        return ["sh", "-c", _MATCHING, "sh", source, _pattern(match_pattern), target, *flags]
    stripped = source.rstrip("/") or "/"
    parent, name = posixpath.split(stripped)
    if not name:
        raise BadRequest("Cannot compress the root directory.")
    return ["tar", "-c", *flags, "-f", target, "-C", parent or "/", "--", name]


def extract_argv(source: str, target: str, compression: str = "gzip") -> list[str]:
    return ["tar", "-x", *_flags(compression), "-f", source, "-C", target]
