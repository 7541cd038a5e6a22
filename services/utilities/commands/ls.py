"""ops/ls: the `ls -l` entries of a path, read with one `find -printf` (format in `entries`).

One process describes the path itself (depth 0, printed first) and what is below it: one level, or
every level when recursive, following symbolic links with `-L` when dereferencing. Hidden entries
are pruned (not printed, not descended into) unless asked for; the path itself is exempt from that
test (`-path` with the path as a literal pattern matches only the starting point), so a hidden
folder named by the request is listed like any other. When the path is a directory (after
dereferencing with -L), its entries are answered, sorted by name; otherwise the path's own entry is,
named as given (like `ls -l`).

The output is exactly that of the former `find -maxdepth 0` chained with a second `find -mindepth 1`
(same records, same order, same errors), at the cost of one process instead of four.
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.common.ssh.command import CommandResult
from services.utilities.commands import entries

_GLOB_SPECIAL = frozenset("\\*?[")


def literal_pattern(path: str) -> str:
    """`path` as an fnmatch pattern that matches exactly `path` (find's -path, -name)."""
    return "".join("\\" + c if c in _GLOB_SPECIAL else c for c in path)


def command(path: str, *, show_hidden: bool = False, recursive: bool = False,
            dereference: bool = False) -> list[list[str]]:
    """The one `find` of a listing: the path first, then its entries."""
    argv = ["find", "-L" if dereference else "-P", path]
    if not recursive:
        argv += ["-maxdepth", "1"]
    if not show_hidden:
        argv += ["(", "-name", ".*", "!", "-path", literal_pattern(path), "-prune", ")", "-o"]
    return [argv + ["-printf", entries.PRINTF]]


def failed(path: str):
    """The failure test of `command(path)`: find exits 1 when an entry below the path vanished between
    reading the directory and describing it (a file removed or renamed meanwhile, e.g. an upload's
    temporary file renamed into place); the listing is whole without that entry, as one taken a moment
    later would be. Any other error (the path itself missing, a permission) is a failure."""
    # find quotes the name with ASCII quotes in the C locale, with ‘…’ in a UTF-8 one.
    quotes = (("'", "'"), ("\u2018", "\u2019"))
    below = [(f"find: {left}{path.rstrip('/')}/", f"{right}: No such file or directory") for left, right in quotes]

    def test(result: CommandResult) -> bool:
        if result.ok:
            return False
        lines = result.error_text().splitlines()
        vanished_below = lines and all(any(line.startswith(prefix) and line.endswith(suffix) for prefix, suffix in below)
                                       for line in lines)
        return not (result.exit_status == 1 and result.stdout and vanished_below)
    return test


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
