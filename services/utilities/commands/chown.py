"""ops/chown: `chown`, then the file's new `ls -l` entry (`find`, format in `entries`).

A user or group is a name of printable characters without `:`, or a numeric id; whether it exists is
for the system to say (`chown` answers "invalid user"/"invalid group", a 400 in `errors`).
"""

from __future__ import annotations

from firecrest_mesh.utilities.v1 import utilities_pb2
from services.common.errors import BadRequest
from services.utilities.commands import entries

MAX_OWNER_LENGTH = 256


def _owner(value: str, field: str) -> str:
    if len(value) > MAX_OWNER_LENGTH or not value.isprintable() or ":" in value:
        raise BadRequest(f"invalid user or group in `{field}`: {value[:MAX_OWNER_LENGTH]!r}")
    return value


def command(path: str, owner: str, group: str) -> list[list[str]]:
    """`chown -- <owner>[:<group>] <path>`, then `find` describing `path` (chained with `&&`)."""
    if not owner and not group:
        raise BadRequest("Either `owner` or `group` must be specified.")
    owner, group = _owner(owner, "owner"), _owner(group, "group")
    spec = f"{owner}:{group}" if group else owner
    return [["chown", "--", spec, path], entries.describe(path)]


def parse(stdout: bytes, path: str) -> utilities_pb2.File:
    """The changed file's entry, named `path`."""
    return entries.single(stdout, path)
