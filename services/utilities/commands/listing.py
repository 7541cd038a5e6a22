"""`ls -l` entries, read with `find -printf` and NUL-separated fields (ops/ls, and the entry
returned by chmod, chown, mkdir and symlink).

`find` prints one record of `FIELDS` per file, every field terminated by a NUL byte, so names with
spaces, newlines, quotes, leading dashes or invalid UTF-8 parse exactly. The listing runs two
`find`s: the first describes the path itself (depth 0); the second lists what is below it, pruning
hidden entries unless asked for them. When the path is a directory (after dereferencing with -L),
its entries are returned; otherwise the path's own entry is, named as given (like `ls -l`).
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2

# depth, symbolic mode (`-rwxr-xr-x`), user, group, uid, gid, size, mtime, link target, relative name
FIELDS = ("%d", "%M", "%u", "%g", "%U", "%G", "%s", "%TY-%Tm-%TdT%TH:%TM:%TS", "%l", "%P")
PRINTF = "".join(f + "\\0" for f in FIELDS)


def describe_argv(path: str, dereference: bool = False) -> list[str]:
    """`find` printing the one record of `path` itself (like `ls -ld`)."""
    return ["find", "-L" if dereference else "-P", path, "-maxdepth", "0", "-printf", PRINTF]


def children_argv(path: str, *, show_hidden: bool, recursive: bool, dereference: bool) -> list[str]:
    """`find` printing the records below `path` (nothing when `path` is not a directory)."""
    argv = ["find", "-L" if dereference else "-P", path, "-mindepth", "1"]
    if not recursive:
        argv += ["-maxdepth", "1"]
    if show_hidden:
        return argv + ["-printf", PRINTF]
    return argv + ["(", "-name", ".*", "-prune", "-o", "-printf", PRINTF, ")"]


def list_argvs(path: str, *, show_hidden: bool = False, recursive: bool = False,
               dereference: bool = False) -> list[list[str]]:
    """The commands of a listing, to be chained with `&&` (the path first, then its entries)."""
    return [describe_argv(path, dereference),
            children_argv(path, show_hidden=show_hidden, recursive=recursive, dereference=dereference)]


def _text(field: bytes) -> str:
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
    mode_text = _text(mode)
    file = utilities_pb2.File(
        name=name, type=mode_text[:1], permissions=mode_text[1:],
        user=_text(uid if numeric_uid else user), group=_text(gid if numeric_uid else group),
        last_modified=_text(mtime).split(".", 1)[0], size=_text(size))
    if mode_text[:1] == "l" and link:
        file.link_target = _text(link)
    return file


def parse_listing(stdout: bytes, path: str, numeric_uid: bool = False) -> list[utilities_pb2.File]:
    """The `ls -l` entries of `path` from the output of the `list_argvs` commands."""
    recs = records(stdout)
    if not recs:
        return []
    top, below = recs[0], recs[1:]
    if _text(top[1])[:1] != "d":
        return [entry(top, path, numeric_uid)]
    below.sort(key=lambda r: r[9])
    return [entry(r, _text(r[9]), numeric_uid) for r in below]


def parse_entry(stdout: bytes, path: str) -> utilities_pb2.File:
    """The single entry printed by `describe_argv`, named `path`."""
    recs = records(stdout)
    if len(recs) != 1:
        raise ValueError(f"expected one find record, got {len(recs)}")
    return entry(recs[0], path)
