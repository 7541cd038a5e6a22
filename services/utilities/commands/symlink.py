"""ops/symlink: `ln -s`, then the new link's `ls -l` entry (`find`, format in `entries`).

The target is stored as given; whether the caller may read through the link is for Unix permissions
on the system to decide when the link is used.
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.utilities.commands import entries


def command(target: str, link_path: str) -> list[list[str]]:
    """`ln -s -- <target> <link_path>`, then `find` describing the link (chained with `&&`)."""
    return [["ln", "-s", "--", target, link_path], entries.describe(link_path)]


def parse(stdout: bytes, link_path: str) -> utilities_pb2.File:
    """The new link's entry, named `link_path`."""
    return entries.single(stdout, link_path)
