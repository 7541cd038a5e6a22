"""ops/mkdir: `mkdir`, then the new directory's `ls -l` entry (`find`, format in `entries`)."""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.utilities.commands import entries


def command(path: str, parent: bool = False) -> list[list[str]]:
    """`mkdir [-p] -- <path>`, then `find` describing `path` (chained with `&&`)."""
    return [["mkdir", *(["-p"] if parent else []), "--", path], entries.describe(path)]


def parse(stdout: bytes, path: str) -> utilities_pb2.File:
    """The new directory's entry, named `path`."""
    return entries.single(stdout, path)
