"""The `ls -l` entry of a file, printed by `find -printf` with NUL-terminated fields: the format that
`ls` answers with, and that chmod, chown, mkdir and symlink answer with for the file they changed.

`find` prints one record of `FIELDS` per file, every field terminated by a NUL byte, so names with
spaces, newlines, quotes, leading dashes or invalid UTF-8 parse exactly.
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2

# depth, symbolic mode (`-rwxr-xr-x`), user, group, uid, gid, size, mtime, link target, relative name
FIELDS = ("%d", "%M", "%u", "%g", "%U", "%G", "%s", "%TY-%Tm-%TdT%TH:%TM:%TS", "%l", "%P")
PRINTF = "".join(f + "\\0" for f in FIELDS)
MODE, NAME = 1, 9  # positions in a record


def describe(path: str, dereference: bool = False) -> list[str]:
    """`find` printing the one record of `path` itself (like `ls -ld`)."""
    return ["find", "-L" if dereference else "-P", path, "-maxdepth", "0", "-printf", PRINTF]


def text(field: bytes) -> str:
    return field.decode("utf-8", errors="replace")


def records(stdout: bytes) -> list[list[bytes]]:
    """The NUL-separated records of `find -printf PRINTF` output."""
    if not stdout:
        return []
    if not stdout.endswith(b"\0"):
        raise ValueError("find output does not end with a NUL byte (truncated?)")
    parts = stdout[:-1].split(b"\0")
    n = len(FIELDS)
    if len(parts) % n:
        raise ValueError(f"find output has {len(parts)} fields, not a multiple of {n}")
    return [parts[i:i + n] for i in range(0, len(parts), n)]


def entry(record: list[bytes], name: str, numeric_uid: bool = False) -> utilities_pb2.File:
    """One `File` from a record, named `name`."""
    _depth, mode, user, group, uid, gid, size, mtime, link, _rel = record
    mode_text = text(mode)
    file = utilities_pb2.File(
        name=name, type=mode_text[:1], permissions=mode_text[1:],
        user=text(uid if numeric_uid else user), group=text(gid if numeric_uid else group),
        last_modified=text(mtime).split(".", 1)[0], size=text(size))
    if mode_text[:1] == "l" and link:
        file.link_target = text(link)
    return file


def single(stdout: bytes, path: str) -> utilities_pb2.File:
    """The one entry printed by `describe(path)`, named `path`."""
    recs = records(stdout)
    if len(recs) != 1:
        raise ValueError(f"expected one find record, got {len(recs)}")
    return entry(recs[0], path)
