"""ops/ls: the `ls -l` entries of a path, read with two `find -printf` (format in `entries`).

The first `find` describes the path itself (depth 0); the second lists what is below it, pruning
hidden entries unless asked for them. When the path is a directory (after dereferencing with -L),
its entries are answered, sorted by name; otherwise the path's own entry is, named as given (like
`ls -l`).
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.utilities.commands import entries


def command(path: str, *, show_hidden: bool = False, recursive: bool = False,
            dereference: bool = False) -> list[list[str]]:
    """The two `find`s of a listing, to be chained with `&&` (the path first, then its entries)."""
    below = ["find", "-L" if dereference else "-P", path, "-mindepth", "1"]
    if not recursive:
        below += ["-maxdepth", "1"]
    if show_hidden:
        below += ["-printf", entries.PRINTF]
    else:
        below += ["(", "-name", ".*", "-prune", "-o", "-printf", entries.PRINTF, ")"]
    return [entries.describe(path, dereference), below]


def parse(stdout: bytes, path: str, numeric_uid: bool = False) -> list[utilities_pb2.File]:
    """The `ls -l` entries of `path` from the output of `command(path)`."""
    recs = entries.records(stdout)
    if not recs:
        return []
    top, below = recs[0], recs[1:]
    if entries.text(top[entries.MODE])[:1] != "d":
        return [entries.entry(top, path, numeric_uid)]
    below.sort(key=lambda r: r[entries.NAME])
    return [entries.entry(r, entries.text(r[entries.NAME]), numeric_uid) for r in below]
