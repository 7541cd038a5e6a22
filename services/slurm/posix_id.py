"""`id`: the caller's user, primary group and groups on the system (POSIX ids and names)."""

from __future__ import annotations

import re

from firecrest_mesh.status.v1 import status_pb2

_ID_ENTRY = re.compile(r"(\d+)\(([^)]*)\)")


def command() -> list[str]:
    return ["id"]


def parse(stdout: str) -> tuple[status_pb2.PosixIdentity, status_pb2.PosixIdentity,
                                list[status_pb2.PosixIdentity]]:
    """(user, group, groups) of `uid=1001(alice) gid=1001(alice) groups=1001(alice),100(users)` (names
    may hold spaces)."""
    text = stdout.strip()

    def ident(key: str) -> status_pb2.PosixIdentity:
        m = re.search(rf"(?:^|\s){key}=(\d+)\(([^)]*)\)", text)
        return status_pb2.PosixIdentity(id=m.group(1), name=m.group(2)) if m else status_pb2.PosixIdentity()
    groups_text = text.split(" groups=", 1)[1] if " groups=" in text else ""
    groups = [status_pb2.PosixIdentity(id=i, name=n) for i, n in _ID_ENTRY.findall(groups_text)]
    return ident("uid"), ident("gid"), groups
